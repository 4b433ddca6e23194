package fetch

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/bounded"
	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/provider/spc"
)

const (
	opGetSecretValue      = "secretsmanager:GetSecretValue"
	opBatchGetSecretValue = "secretsmanager:BatchGetSecretValue"
)

// secrets fetches each target with GetSecretValue, concurrently.
func (f *Fetcher) secrets(ctx context.Context, clients Clients, scope, region string, objects []*spc.Object, targets []spc.Target) []outcome {
	res := make([]outcome, len(objects))
	jobs := make([]func(context.Context), len(objects))
	for i := range objects {
		jobs[i] = func(ctx context.Context) { res[i] = f.secret(ctx, clients, scope, region, objects[i], targets[i]) }
	}
	for i, err := range runBounded(ctx, f.concurrency(), jobs) {
		if err != nil {
			res[i] = outcome{err: internalError(objects[i], err)}
		}
	}
	return res
}

func (f *Fetcher) secret(ctx context.Context, clients Clients, scope, region string, o *spc.Object, t spc.Target) outcome {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(t.Name)}
	if t.Version != "" {
		in.VersionId = aws.String(t.Version)
	}
	if t.VersionLabel != "" {
		in.VersionStage = aws.String(t.VersionLabel)
	}
	key := strings.Join([]string{scope, region, "GetSecretValue", t.Name, t.Version, t.VersionLabel}, "\x00")
	out, at, err := coalesce(ctx, f, scope, key, func(ctx context.Context) (*secretsmanager.GetSecretValueOutput, error) {
		return paced(ctx, f, quota.GetSecretValue, false, func(ctx context.Context) (*secretsmanager.GetSecretValueOutput, error) {
			return clients.SecretsManager(region).GetSecretValue(ctx, in, f.smOptions()...)
		})
	})
	if err != nil {
		return outcome{err: newObjectError(o, opGetSecretValue, region, t, err)}
	}
	return outcome{value: Value{Object: o, Data: secretData(out.SecretBinary, out.SecretString), Version: aws.ToString(out.VersionId), Region: region}, at: at}
}

func secretData(binary []byte, str *string) []byte {
	if binary != nil {
		return binary
	}
	return []byte(aws.ToString(str))
}

// secretBatch fetches current versions with BatchGetSecretValue, or with
// GetSecretValue per secret where Quota plans so (the batch API's scarce
// quota has no headroom on this node). A role without
// secretsmanager:BatchGetSecretValue (it is optional: the AWS provider
// never needed it) falls back to GetSecretValue per secret, and the
// refusal is remembered for the identity. A batch that AWS throttles, or
// that the node's budget cannot pay before the deadline, is not retried:
// its secrets are read with single calls at once, which spend another
// quota.
func (f *Fetcher) secretBatch(ctx context.Context, clients Clients, scope, region string, objects []*spc.Object, targets []spc.Target) []outcome {
	if f.Quota.PlanSecrets(len(objects), f.batchDenied.denied(f.clock(), scope)) == quota.Singles {
		return f.secrets(ctx, clients, scope, region, objects, targets)
	}
	ids := uniqueNames(targets)
	key := scope + "\x00" + region + "\x00BatchGetSecretValue\x00" + strings.Join(ids, "\x00")
	out, at, err := coalesce(ctx, f, scope, key, func(ctx context.Context) (*secretsmanager.BatchGetSecretValueOutput, error) {
		return paced(ctx, f, quota.BatchGetSecretValue, true, func(ctx context.Context) (*secretsmanager.BatchGetSecretValueOutput, error) {
			return batchGetAll(ctx, clients.SecretsManager(region), ids, f.smOptions()...)
		})
	})
	if err != nil {
		switch Classify(err) {
		case KindAccessDenied:
			f.batchDenied.deny(f.clock(), scope)
			return f.secrets(ctx, clients, scope, region, objects, targets)
		case KindThrottled:
			if f.Quota != nil && ctx.Err() == nil {
				return f.secrets(ctx, clients, scope, region, objects, targets)
			}
		}
		res := make([]outcome, len(objects))
		for i, o := range objects {
			res[i] = outcome{err: newObjectError(o, opBatchGetSecretValue, region, targets[i], err)}
		}
		return res
	}
	res := make([]outcome, len(objects))
	for i, o := range objects {
		res[i] = matchSecret(out, o, region, targets[i])
		res[i].at = at
	}
	return res
}

// batchGetAll asks for ids and follows NextToken, should AWS page even an
// explicit id list.
func batchGetAll(ctx context.Context, client SecretsManagerAPI, ids []string, opts ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	all := &secretsmanager.BatchGetSecretValueOutput{}
	in := &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids}
	for page := 0; page < 20; page++ {
		out, err := client.BatchGetSecretValue(ctx, in, opts...)
		if err != nil {
			return nil, err
		}
		all.SecretValues = append(all.SecretValues, out.SecretValues...)
		all.Errors = append(all.Errors, out.Errors...)
		if aws.ToString(out.NextToken) == "" {
			return all, nil
		}
		in.NextToken = out.NextToken
	}
	return all, nil
}

func uniqueNames(targets []spc.Target) []string {
	seen := map[string]bool{}
	var ids []string
	for _, t := range targets {
		if !seen[t.Name] {
			seen[t.Name] = true
			ids = append(ids, t.Name)
		}
	}
	return ids
}

// matchSecret finds a target's value, or its error, in a batch response.
// AWS answers with the secret's name and full ARN; the request may have
// used either, or a partial ARN (without the random suffix).
func matchSecret(out *secretsmanager.BatchGetSecretValueOutput, o *spc.Object, region string, t spc.Target) outcome {
	for _, v := range out.SecretValues {
		if sameSecret(t.Name, aws.ToString(v.Name), aws.ToString(v.ARN)) {
			return outcome{value: Value{Object: o, Data: secretData(v.SecretBinary, v.SecretString), Version: aws.ToString(v.VersionId), Region: region}}
		}
	}
	for _, e := range out.Errors {
		if id := aws.ToString(e.SecretId); id == t.Name || sameSecret(t.Name, id, id) {
			// A per-secret error is what GetSecretValue would have said:
			// report it the same way, against the permission that matters.
			apiErr := &smithy.GenericAPIError{Code: aws.ToString(e.ErrorCode), Message: aws.ToString(e.Message)}
			return outcome{err: newObjectError(o, opGetSecretValue, region, t, apiErr)}
		}
	}
	missing := &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "BatchGetSecretValue returned neither a value nor an error for it"}
	return outcome{err: newObjectError(o, opBatchGetSecretValue, region, t, missing)}
}

func sameSecret(requested, name, arn string) bool {
	if requested == name || requested == arn {
		return true
	}
	// A partial ARN lacks the "-xxxxxx" suffix AWS appends to secret ARNs.
	return strings.HasPrefix(requested, "arn:") && strings.HasPrefix(arn, requested+"-") && len(arn) == len(requested)+7
}

// smOptions and ssmOptions are the per-call SDK options: with a Quota,
// the SDK does not retry throttled requests, which paced either shifts to
// another API or sends again within the node's budget (nil without one:
// the SDK's retries as configured).
func (f *Fetcher) smOptions() []func(*secretsmanager.Options) {
	if f.Quota == nil {
		return nil
	}
	return []func(*secretsmanager.Options){func(o *secretsmanager.Options) { o.Retryer = noThrottleRetry{o.Retryer} }}
}

func (f *Fetcher) ssmOptions() []func(*ssm.Options) {
	if f.Quota == nil {
		return nil
	}
	return []func(*ssm.Options){func(o *ssm.Options) { o.Retryer = noThrottleRetry{o.Retryer} }}
}

// noThrottleRetry is the SDK's retryer, except that a throttled request is
// not retried by it: retrying the same call at once spends more of the
// quota that is already gone; coffer shifts or paces instead.
type noThrottleRetry struct{ aws.Retryer }

func (r noThrottleRetry) IsErrorRetryable(err error) bool {
	return Classify(err) != KindThrottled && r.Retryer.IsErrorRetryable(err)
}

// GetAttemptToken keeps the wrapped retryer's per-attempt token, which the
// SDK asks of retryers that have one.
func (r noThrottleRetry) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	if v2, ok := r.Retryer.(aws.RetryerV2); ok {
		return v2.GetAttemptToken(ctx)
	}
	return r.GetInitialToken(), nil
}

// denyList remembers, for denyFor, identities refused an optional API.
type denyList struct {
	once sync.Once
	// entries holds at most maxDenied identities, each until denyFor after
	// its refusal; when full, the identity least recently checked or refused
	// is forgotten (its next mount asks the API once more).
	entries *bounded.LRU[struct{}]
}

// denyFor is how long a refusal is remembered: a role's policy may be fixed,
// and retrying once an hour costs nothing.
const denyFor = time.Hour

// maxDenied bounds the identities remembered: far more than one node mounts
// for.
const maxDenied = 10000

// list returns the entries, made on first use (the Fetcher's zero value is
// usable).
func (d *denyList) list(clk clock.PassiveClock) *bounded.LRU[struct{}] {
	d.once.Do(func() { d.entries = bounded.NewLRU[struct{}](maxDenied, clk) })
	return d.entries
}

func (d *denyList) denied(clk clock.PassiveClock, scope string) bool {
	_, ok := d.list(clk).Get(scope)
	return ok
}

func (d *denyList) deny(clk clock.PassiveClock, scope string) {
	d.list(clk).AddUntil(scope, struct{}{}, clk.Now().Add(denyFor))
}
