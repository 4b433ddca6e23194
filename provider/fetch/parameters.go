package fetch

import (
	"context"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/provider/spc"
)

const opGetParameters = "ssm:GetParameters"

// parameters fetches up to ten parameters with one GetParameters call.
func (f *Fetcher) parameters(ctx context.Context, clients Clients, scope, region string, objects []*spc.Object, targets []spc.Target) []outcome {
	names := make([]string, 0, len(targets))
	seen := map[string]bool{}
	for _, t := range targets {
		if n := selectorName(t); !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	key := scope + "\x00" + region + "\x00GetParameters\x00" + strings.Join(names, "\x00")
	out, at, err := coalesce(ctx, f, scope, key, func(ctx context.Context) (*ssm.GetParametersOutput, error) {
		return paced(ctx, f, quota.GetParameters, false, func(ctx context.Context) (*ssm.GetParametersOutput, error) {
			return clients.ParameterStore(region).GetParameters(ctx, &ssm.GetParametersInput{Names: names, WithDecryption: aws.Bool(true)}, f.ssmOptions()...)
		})
	})
	res := make([]outcome, len(objects))
	for i, o := range objects {
		if err != nil {
			res[i] = outcome{err: newObjectError(o, opGetParameters, region, targets[i], err)}
			continue
		}
		p, ok := matchParameter(out, targets[i])
		if !ok {
			res[i] = outcome{err: &ObjectError{
				Object: o, Entry: -1, Operation: opGetParameters, Region: region, Kind: KindNotFound,
				Detail: describeTarget(spc.ParameterStore, targets[i]) + " not found (AWS listed it under InvalidParameters)",
				Hint:   "check objectName, objectVersion/objectVersionLabel and the region",
			}}
			continue
		}
		res[i] = outcome{value: Value{Object: o, Data: []byte(aws.ToString(p.Value)), Version: strconv.FormatInt(p.Version, 10), Region: region}, at: at}
	}
	return res
}

// selectorName is the GetParameters name for a target: name, name:version or
// name:label.
func selectorName(t spc.Target) string {
	switch {
	case t.Version != "":
		return t.Name + ":" + t.Version
	case t.VersionLabel != "":
		return t.Name + ":" + t.VersionLabel
	}
	return t.Name
}

// matchParameter finds a target's parameter in a GetParameters response. AWS
// answers with the parameter's name (or ARN, when asked by ARN) and the
// selector used.
func matchParameter(out *ssm.GetParametersOutput, t spc.Target) (*ssmtypes.Parameter, bool) {
	want := ""
	switch {
	case t.Version != "":
		want = ":" + t.Version
	case t.VersionLabel != "":
		want = ":" + t.VersionLabel
	}
	for i := range out.Parameters {
		p := &out.Parameters[i]
		if aws.ToString(p.Name) != t.Name && aws.ToString(p.ARN) != t.Name {
			continue
		}
		if aws.ToString(p.Selector) != want {
			continue
		}
		return p, true
	}
	return nil, false
}
