// Package fetch reads the objects of a SecretProviderClass from AWS Secrets
// Manager and Parameter Store: batched where the API allows, concurrent
// within a bound, with failover to a second region only when the first is in
// trouble. Every object either yields a value or an error that says which
// object failed, why, and how to fix it.
package fetch

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/coffer-csi/coffer/provider/spc"
)

// SecretsManagerAPI is the part of the Secrets Manager client coffer uses.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// ParameterStoreAPI is the part of the SSM client coffer uses.
type ParameterStoreAPI interface {
	GetParameters(ctx context.Context, in *ssm.GetParametersInput, optFns ...func(*ssm.Options)) (*ssm.GetParametersOutput, error)
}

// Clients hands out AWS clients of one workload identity, per region.
type Clients interface {
	SecretsManager(region string) SecretsManagerAPI
	ParameterStore(region string) ParameterStoreAPI
}

// Value is the fetched content of one object.
type Value struct {
	Object *spc.Object
	Data   []byte
	// Version identifies the content: the Secrets Manager VersionId or the
	// Parameter Store version number. It is never derived from the data.
	Version string
	// Region is the region that answered.
	Region string
}

// Fetcher fetches objects. The zero value is usable.
type Fetcher struct {
	// Concurrency bounds the AWS calls one Fetch has in flight (default 8).
	Concurrency int
	// PrimaryShare is the share of the remaining deadline the primary region
	// may use when a failover region is configured, so a hanging primary
	// leaves time for the failover (default 0.5).
	PrimaryShare float64
}

// parameterBatch is the most names GetParameters accepts.
const parameterBatch = 10

// Fetch reads every object of cfg. It returns the values that were fetched,
// in object order, and Errors listing every object that failed. Callers must
// treat any error as a failed mount: the values are returned only so that
// problems in them can be reported together with the fetch failures.
func (f *Fetcher) Fetch(ctx context.Context, cfg *spc.Config, clients Clients) ([]Value, error) {
	values := make([]Value, len(cfg.Objects))
	errs := make([]*ObjectError, len(cfg.Objects))

	var jobs []func(context.Context)
	var params []int // indexes of Parameter Store objects
	for i, o := range cfg.Objects {
		switch o.Type {
		case spc.SecretsManager:
			jobs = append(jobs, func(ctx context.Context) {
				values[i], errs[i] = f.secret(ctx, cfg, clients, o)
			})
		case spc.ParameterStore:
			params = append(params, i)
		}
	}
	for start := 0; start < len(params); start += parameterBatch {
		idx := params[start:min(start+parameterBatch, len(params))]
		batch := make([]*spc.Object, len(idx))
		for j, i := range idx {
			batch[j] = cfg.Objects[i]
		}
		jobs = append(jobs, func(ctx context.Context) {
			vals, batchErrs := f.parameters(ctx, cfg, clients, batch)
			for j, i := range idx {
				values[i], errs[i] = vals[j], batchErrs[j]
			}
		})
	}
	f.run(ctx, jobs)

	var failed Errors
	fetched := values[:0]
	for i, e := range errs {
		if e != nil {
			failed = append(failed, e)
		} else {
			fetched = append(fetched, values[i])
		}
	}
	if len(failed) > 0 {
		return fetched, failed
	}
	return fetched, nil
}

// run executes jobs with at most Concurrency in flight.
func (f *Fetcher) run(ctx context.Context, jobs []func(context.Context)) {
	limit := f.Concurrency
	if limit <= 0 {
		limit = 8
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, job := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			job(ctx)
		}()
	}
	wg.Wait()
}

// withFailover runs attempt in the primary region and, when that fails for a
// regional reason and a failover region is configured, in the failover
// region. The primary gets only part of the deadline when failover exists.
func withFailover[T any](ctx context.Context, f *Fetcher, cfg *spc.Config, attempt func(ctx context.Context, region string, failover bool) (T, *ObjectError)) (T, *ObjectError) {
	primaryCtx := ctx
	if cfg.FailoverRegion != "" {
		if deadline, ok := ctx.Deadline(); ok {
			share := f.PrimaryShare
			if share <= 0 || share >= 1 {
				share = 0.5
			}
			var cancel context.CancelFunc
			primaryCtx, cancel = context.WithTimeout(ctx, time.Duration(float64(time.Until(deadline))*share))
			defer cancel()
		}
	}
	v, err := attempt(primaryCtx, cfg.Region, false)
	if err == nil || cfg.FailoverRegion == "" || !err.Kind.Regional() || ctx.Err() != nil {
		return v, err
	}
	v2, err2 := attempt(ctx, cfg.FailoverRegion, true)
	if err2 != nil {
		err.Failover = err2
		return v, err
	}
	return v2, nil
}

func (f *Fetcher) secret(ctx context.Context, cfg *spc.Config, clients Clients, o *spc.Object) (Value, *ObjectError) {
	return withFailover(ctx, f, cfg, func(ctx context.Context, region string, failover bool) (Value, *ObjectError) {
		t := o.Primary()
		if failover {
			t = *o.Failover
		}
		in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(t.Name)}
		if t.Version != "" {
			in.VersionId = aws.String(t.Version)
		}
		if t.VersionLabel != "" {
			in.VersionStage = aws.String(t.VersionLabel)
		}
		out, err := clients.SecretsManager(region).GetSecretValue(ctx, in)
		if err != nil {
			return Value{}, newObjectError(o, "secretsmanager:GetSecretValue", region, t, err)
		}
		v := Value{Object: o, Version: aws.ToString(out.VersionId), Region: region}
		if out.SecretBinary != nil {
			v.Data = out.SecretBinary
		} else {
			v.Data = []byte(aws.ToString(out.SecretString))
		}
		return v, nil
	})
}

// parameters fetches up to ten parameters with one GetParameters call (per
// region tried). Failover is decided for the whole batch: a regional failure
// affects every name in it alike.
func (f *Fetcher) parameters(ctx context.Context, cfg *spc.Config, clients Clients, batch []*spc.Object) ([]Value, []*ObjectError) {
	type result struct {
		values []Value
		errs   []*ObjectError
	}
	res, callErr := withFailover(ctx, f, cfg, func(ctx context.Context, region string, failover bool) (result, *ObjectError) {
		targets := make([]spc.Target, len(batch))
		names := make([]string, 0, len(batch))
		seen := map[string]bool{}
		for i, o := range batch {
			targets[i] = o.Primary()
			if failover {
				targets[i] = *o.Failover
			}
			if n := selectorName(targets[i]); !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
		out, err := clients.ParameterStore(region).GetParameters(ctx, &ssm.GetParametersInput{Names: names, WithDecryption: aws.Bool(true)})
		if err != nil {
			// The call failed as a whole; report it against the first
			// object and let the caller spread it over the batch.
			return result{}, newObjectError(batch[0], "ssm:GetParameters", region, targets[0], err)
		}
		r := result{values: make([]Value, len(batch)), errs: make([]*ObjectError, len(batch))}
		for i, o := range batch {
			p, ok := matchParameter(out, targets[i])
			if !ok {
				r.errs[i] = &ObjectError{
					Object: o, Entry: -1, Operation: "ssm:GetParameters", Region: region, Kind: KindNotFound,
					Detail: describeTarget(spc.ParameterStore, targets[i]) + " not found (AWS listed it under InvalidParameters)",
					Hint:   "check objectName, objectVersion/objectVersionLabel and the region",
				}
				continue
			}
			r.values[i] = Value{Object: o, Data: []byte(aws.ToString(p.Value)), Version: strconv.FormatInt(p.Version, 10), Region: region}
		}
		return r, nil
	})
	if callErr != nil {
		errs := make([]*ObjectError, len(batch))
		for i, o := range batch {
			e := *callErr
			e.Object = o
			if callErr.Failover != nil {
				fe := *callErr.Failover
				fe.Object = o
				e.Failover = &fe
			}
			errs[i] = &e
		}
		return make([]Value, len(batch)), errs
	}
	return res.values, res.errs
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
