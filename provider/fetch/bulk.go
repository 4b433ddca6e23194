package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/provider/spc"
)

// Member is one entry selected by a path or filter object.
type Member struct {
	// Name is the member's name relative to the selection: the parameter
	// name below the path, or the secret's name.
	Name    string
	Data    []byte
	Version string
}

const (
	opGetParametersByPath = "ssm:GetParametersByPath"
	// Filtered batch reads need secretsmanager:ListSecrets too.
	opBatchGetByFilter = "secretsmanager:BatchGetSecretValue (with filters)"
)

// bulk fetches a path or filter object in one region, through the cache.
func (f *Fetcher) bulk(ctx context.Context, clients Clients, scope, region string, o *spc.Object) outcome {
	key := bulkKey(scope, region, o)
	if e, ok := f.Cache.Get(key, f.freshAfter(ctx)); ok {
		if v, ok := entryValue(o, region, e); ok {
			return outcome{value: v, at: e.At}
		}
	}
	var members []Member
	var at time.Time
	var err *ObjectError
	if o.ParameterPath != "" {
		members, at, err = f.byPath(ctx, clients, scope, region, o)
	} else {
		members, at, err = f.byFilters(ctx, clients, scope, region, o)
	}
	if err != nil {
		return outcome{err: err}
	}
	if len(members) == 0 {
		what := fmt.Sprintf("path %q matched no parameters", o.ParameterPath)
		if !o.Recursive && o.ParameterPath != "" {
			what += " directly below it (set recursive: true for the whole tree)"
		}
		if o.ParameterPath == "" {
			what = "the filters matched no secrets"
		}
		return outcome{err: &ObjectError{Object: o, Entry: -1, Region: region, Kind: KindNotFound, Detail: what, Hint: "check the selection and the region"}}
	}
	if data, jerr := json.Marshal(members); jerr == nil {
		f.Cache.Put(key, cache.Entry{Data: data, At: at})
	}
	return outcome{value: Value{Object: o, Members: members, Region: region}, at: at}
}

func bulkKey(scope, region string, o *spc.Object) string {
	sel := "path:" + o.ParameterPath + ":" + strconv.FormatBool(o.Recursive)
	if o.ParameterPath == "" {
		sel = o.Name
	}
	return strings.Join([]string{scope, region, string(o.Type), sel, strconv.Itoa(o.MaxMembers)}, "\x00")
}

func tooMany(o *spc.Object, region, op string) *ObjectError {
	return &ObjectError{Object: o, Entry: -1, Operation: op, Region: region, Kind: KindInvalid,
		Detail: fmt.Sprintf("selects more than maxMembers (%d) entries", o.MaxMembers),
		Hint:   fmt.Sprintf("narrow the selection or raise maxMembers (at most %d)", spc.MaxMaxMembers)}
}

// byPath reads every parameter under a path, page by page (10 a page).
func (f *Fetcher) byPath(ctx context.Context, clients Clients, scope, region string, o *spc.Object) ([]Member, time.Time, *ObjectError) {
	path := o.ParameterPath
	if path != "/" {
		path = strings.TrimSuffix(path, "/")
	}
	target := spc.Target{Name: o.ParameterPath}
	key := strings.Join([]string{scope, region, "GetParametersByPath", path, strconv.FormatBool(o.Recursive), strconv.Itoa(o.MaxMembers)}, "\x00")
	members, at, err := coalesce(ctx, f, scope, key, func(ctx context.Context) ([]Member, error) {
		var out []Member
		size := 0
		in := &ssm.GetParametersByPathInput{Path: aws.String(path), Recursive: aws.Bool(o.Recursive), WithDecryption: aws.Bool(true), MaxResults: aws.Int32(10)}
		for {
			page, err := paced(ctx, f, quota.GetParametersByPath, false, func(ctx context.Context) (*ssm.GetParametersByPathOutput, error) {
				return clients.ParameterStore(region).GetParametersByPath(ctx, in, f.ssmOptions()...)
			})
			if err != nil {
				return nil, err
			}
			for _, p := range page.Parameters {
				name := strings.TrimPrefix(strings.TrimPrefix(aws.ToString(p.Name), path), "/")
				out = append(out, Member{Name: name, Data: []byte(aws.ToString(p.Value)), Version: strconv.FormatInt(p.Version, 10)})
				size += len(aws.ToString(p.Value))
			}
			if len(out) > o.MaxMembers {
				return nil, errTooMany
			}
			if f.overBudget(int64(size)) {
				return nil, errTooLarge
			}
			if aws.ToString(page.NextToken) == "" {
				return out, nil
			}
			in.NextToken = page.NextToken
		}
	})
	switch {
	case err == errTooMany:
		return nil, at, tooMany(o, region, opGetParametersByPath)
	case err == errTooLarge:
		return nil, at, tooLarge(o, region, opGetParametersByPath, f.MaxBytes)
	case err != nil:
		return nil, at, newObjectError(o, opGetParametersByPath, region, target, err)
	}
	return members, at, nil
}

// errTooMany and errTooLarge stop paging once a selection exceeds its
// bound of members or the Fetch's of bytes.
var (
	errTooMany  = errors.New("too many members")
	errTooLarge = errors.New("too many bytes")
)

func tooLarge(o *spc.Object, region, op string, limit int) *ObjectError {
	return &ObjectError{Object: o, Entry: -1, Operation: op, Region: region, Kind: KindInvalid, Err: errTooLarge,
		Detail: fmt.Sprintf("selects more than %d bytes of values", limit),
		Hint:   "narrow the selection"}
}

// byFilters reads the secrets the filters select, page by page (20 a page).
func (f *Fetcher) byFilters(ctx context.Context, clients Clients, scope, region string, o *spc.Object) ([]Member, time.Time, *ObjectError) {
	filters := make([]smtypes.Filter, len(o.Filters))
	for i, flt := range o.Filters {
		filters[i] = smtypes.Filter{Key: smtypes.FilterNameStringType(flt.Key), Values: flt.Values}
	}
	key := strings.Join([]string{scope, region, "BatchGetSecretValue", o.Name, strconv.Itoa(o.MaxMembers)}, "\x00")
	type result struct {
		members []Member
		errs    []smtypes.APIErrorType
	}
	res, at, err := coalesce(ctx, f, scope, key, func(ctx context.Context) (result, error) {
		var r result
		size := 0
		in := &secretsmanager.BatchGetSecretValueInput{Filters: filters, MaxResults: aws.Int32(20)}
		for {
			page, err := paced(ctx, f, quota.BatchGetSecretValue, false, func(ctx context.Context) (*secretsmanager.BatchGetSecretValueOutput, error) {
				return clients.SecretsManager(region).BatchGetSecretValue(ctx, in, f.smOptions()...)
			})
			if err != nil {
				return result{}, err
			}
			for _, v := range page.SecretValues {
				m := Member{Name: aws.ToString(v.Name), Data: secretData(v.SecretBinary, v.SecretString), Version: aws.ToString(v.VersionId)}
				r.members = append(r.members, m)
				size += len(m.Data)
			}
			r.errs = append(r.errs, page.Errors...)
			if len(r.members)+len(r.errs) > o.MaxMembers {
				return result{}, errTooMany
			}
			if f.overBudget(int64(size)) {
				return result{}, errTooLarge
			}
			if aws.ToString(page.NextToken) == "" {
				return r, nil
			}
			in.NextToken = page.NextToken
		}
	})
	switch {
	case err == errTooMany:
		return nil, at, tooMany(o, region, opBatchGetByFilter)
	case err == errTooLarge:
		return nil, at, tooLarge(o, region, opBatchGetByFilter, f.MaxBytes)
	case err != nil:
		e := newObjectError(o, opBatchGetByFilter, region, spc.Target{Name: o.Name}, err)
		if e.Kind == KindAccessDenied {
			e.Hint = "selecting by filters needs secretsmanager:BatchGetSecretValue and secretsmanager:ListSecrets (resource *), and secretsmanager:GetSecretValue on each secret"
		}
		return nil, at, e
	}
	if len(res.errs) > 0 {
		// A selected secret that cannot be read fails the object, as a
		// listed one would: a mount is everything or nothing.
		first := res.errs[0]
		apiErr := &smithy.GenericAPIError{Code: aws.ToString(first.ErrorCode), Message: aws.ToString(first.Message)}
		e := newObjectError(o, opGetSecretValue, region, spc.Target{Name: aws.ToString(first.SecretId)}, apiErr)
		if len(res.errs) > 1 {
			e.Detail += fmt.Sprintf(" (and %d more selected secrets failed)", len(res.errs)-1)
		}
		return nil, at, e
	}
	return res.members, at, nil
}
