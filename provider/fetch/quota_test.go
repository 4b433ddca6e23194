package fetch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/internal/sdkhttp"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// retryingClients are SDK clients with the standard retryer (3 attempts),
// as coffer serve configures them, signing as id.
func (e *env) retryingClients(id fakeaws.Identity) fetch.Clients {
	e.fake.AddIdentity(id)
	cfg := aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(e.url),
		HTTPClient:   sdkhttp.New(),
		Credentials:  credentials.NewStaticCredentialsProvider(id.AccessKeyID, id.SecretAccessKey, ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = 5 * time.Millisecond
			})
		},
	}
	return awsapi.NewClients(cfg, cfg.Credentials)
}

type callCounts struct{ batch, single, params int }

func (e *env) counts() callCounts {
	return callCounts{
		batch:  e.fake.Count(fakeaws.ServiceSecretsManager, "BatchGetSecretValue"),
		single: e.fake.Count(fakeaws.ServiceSecretsManager, "GetSecretValue"),
		params: e.fake.Count(fakeaws.ServiceSSM, "GetParameters"),
	}
}

func (c callCounts) minus(d callCounts) callCounts {
	return callCounts{c.batch - d.batch, c.single - d.single, c.params - d.params}
}

// TestThrottledBatchShiftsToSingleCallsAndBack: when the account's
// BatchGetSecretValue quota is spent (the fake's token bucket answers
// ThrottlingException), the batch is not retried: its secrets are read
// with GetSecretValue at once and the mount succeeds. While the cooldown
// lasts, mounts use single calls without trying the batch; once AWS stops
// throttling and the cooldown passes, they batch again.
func TestThrottledBatchShiftsToSingleCallsAndBack(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.fake.PutSecretString(region, fmt.Sprintf("s%02d", i), fmt.Sprintf("v%02d", i))
	}
	clients := e.retryingClients(fakeaws.AllowAll("AKIDQUOTA", "k"))
	// The controller's time is a fake clock, stepped past each cooldown:
	// real sleeps against a 300 ms cooldown failed on a loaded machine.
	clock := clocktesting.NewFakeClock(time.Now())
	q, err := quota.New(quota.Options{Quotas: quota.Published(false), Cooldown: 300 * time.Millisecond, Clock: clock}, quota.Events{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fetch.Fetcher{Quota: q}
	cfg := config(t, secretObjects(5, "s"))
	mount := func(step string, want callCounts) {
		t.Helper()
		before := e.counts()
		values, err := f.Fetch(context.Background(), cfg, clients, "quota")
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		for i, v := range values {
			if string(v.Data) != fmt.Sprintf("v%02d", i) {
				t.Fatalf("%s: value %d = %q", step, i, v.Data)
			}
		}
		if got := e.counts().minus(before); got != want {
			t.Errorf("%s: calls %+v, want %+v", step, got, want)
		}
	}
	mount("quota free", callCounts{batch: 1})

	// The account's batch quota is gone (other nodes spend it).
	e.fake.SetQuotas(fakeaws.Quota{Service: fakeaws.ServiceSecretsManager, Operations: []string{"BatchGetSecretValue"}, Rate: 0.001, Burst: 1})
	if _, err := clients.SecretsManager(region).BatchGetSecretValue(context.Background(), &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"s00"}}); err != nil {
		t.Fatal(err) // another node takes the bucket's last token
	}
	mount("batch throttled", callCounts{batch: 1, single: 5})
	if s := q.State(quota.BatchGetSecretValue); !s.Avoided {
		t.Errorf("after a throttled batch the API is not avoided: %+v", s)
	}
	mount("within the cooldown", callCounts{single: 5})

	// Throttling goes on: the probe after the cooldown is throttled too, and
	// shifts again, with a cooldown twice as long.
	clock.Step(350 * time.Millisecond)
	mount("probe, still throttled", callCounts{batch: 1, single: 5})
	clock.Step(350 * time.Millisecond)
	mount("longer cooldown", callCounts{single: 5})

	// AWS stops throttling: after the cooldown, batches again.
	e.fake.SetQuotas()
	clock.Step(300 * time.Millisecond)
	mount("recovered", callCounts{batch: 1})
	mount("stays recovered", callCounts{batch: 1})
}

// TestWithoutQuotaThrottledBatchIsRetried: without a Controller the
// batch keeps the SDK's retries (the previous behaviour), so the shift is
// what the Controller adds.
func TestWithoutQuotaThrottledBatchIsRetried(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.fake.PutSecretString(region, fmt.Sprintf("s%02d", i), "v")
	}
	clients := e.retryingClients(fakeaws.AllowAll("AKIDNOQ", "k"))
	e.fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Operation: "BatchGetSecretValue", Kind: fakeaws.FaultThrottle, Times: 1})
	f := &fetch.Fetcher{}
	if _, err := f.Fetch(context.Background(), config(t, secretObjects(3, "s")), clients, "noq"); err != nil {
		t.Fatal(err)
	}
	if got := e.counts(); got != (callCounts{batch: 2}) {
		t.Errorf("calls %+v, want the batch retried once and no single calls", got)
	}
}

// TestBudgetPacesParametersAndFailsFastPastDeadline: GetParameters, which
// has no alternative API, waits for the node's budget; a mount whose
// deadline the budget cannot meet fails at once as throttled, naming the
// budget and not AWS, and sends nothing.
func TestBudgetPacesParametersAndFailsFastPastDeadline(t *testing.T) {
	e := newEnv(t)
	e.fake.PutParameter(region, "/p", "v", "String")
	clients := e.retryingClients(fakeaws.AllowAll("AKIDPARAM", "k"))
	q, err := quota.New(quota.Options{Quotas: quota.Published(false), Rates: map[quota.API]float64{quota.GetParameters: 0.1}}, quota.Events{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fetch.Fetcher{Quota: q}
	cfg := config(t, "- {objectName: /p, objectType: ssmparameter}")
	if _, err := f.Fetch(context.Background(), cfg, clients, "param"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = f.Fetch(ctx, cfg, clients, "param")
	var errs fetch.Errors
	if !errors.As(err, &errs) || errs.MostActionable() != fetch.KindThrottled || !strings.Contains(err.Error(), "this node's budget") {
		t.Fatalf("Fetch = %v, want throttled by the node's budget", err)
	}
	if n := e.fake.Count(fakeaws.ServiceSSM, "GetParameters"); n != 1 {
		t.Errorf("GetParameters calls = %d, want 1: the second was not sent", n)
	}
}

// TestRemountJitterSpreadsReads: remounts of many identities that the
// driver sends in the same instant reach AWS spread over the jitter, not
// in one burst.
func TestRemountJitterSpreadsReads(t *testing.T) {
	e := newEnv(t)
	e.fake.PutSecretString(region, "s00", "v")
	clients := e.retryingClients(fakeaws.AllowAll("AKIDJIT", "k"))
	q, err := quota.New(quota.Options{Quotas: quota.Published(false), Jitter: 400 * time.Millisecond}, quota.Events{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fetch.Fetcher{Quota: q, Cache: cache.New(time.Minute, 1<<20), Reuse: 5 * time.Second}
	cfg := config(t, secretObjects(1, "s"))
	ctx := fetch.WithFreshness(context.Background(), fetch.Freshness{NotBefore: time.Now().Add(-time.Minute)})
	done := make(chan error, 20)
	for i := range 20 {
		go func() {
			_, err := f.Fetch(ctx, cfg, clients, fmt.Sprintf("identity-%d", i))
			done <- err
		}()
	}
	for range 20 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var first, last time.Time
	for _, c := range e.fake.Calls() {
		if first.IsZero() || c.Time.Before(first) {
			first = c.Time
		}
		if c.Time.After(last) {
			last = c.Time
		}
	}
	// 20 uniform delays in [0, 400 ms) span less than 100 ms with a
	// probability below 1e-9.
	if spread := last.Sub(first); spread < 100*time.Millisecond {
		t.Errorf("20 remounts reached AWS within %v: not spread by the jitter", spread)
	}
}

// TestThrottledParametersWaitAndRetryWithinDeadline: GetParameters has no
// alternative API; when AWS throttles it past the SDK's retries, coffer
// waits a jittered backoff and sends it again while the mount's deadline
// leaves room, so a burst of throttling delays the mount instead of
// failing it. With no room left it fails, as throttled.
func TestThrottledParametersWaitAndRetryWithinDeadline(t *testing.T) {
	e := newEnv(t)
	e.fake.PutParameter(region, "/p", "v", "String")
	clients := e.retryingClients(fakeaws.AllowAll("AKIDRETRY", "k"))
	q, err := quota.New(quota.Options{Quotas: quota.Published(false), Backoff: 10 * time.Millisecond}, quota.Events{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fetch.Fetcher{Quota: q}
	cfg := config(t, "- {objectName: /p, objectType: ssmparameter}")
	// Three SDK attempts per send: 7 throttles outlast two sends.
	e.fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSSM, Operation: "GetParameters", Kind: fakeaws.FaultThrottle, Times: 7})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	values, err := f.Fetch(ctx, cfg, clients, "retry")
	if err != nil || len(values) != 1 || string(values[0].Data) != "v" {
		t.Fatalf("Fetch = %v, %v; want the value after the throttling", values, err)
	}
	if n := e.fake.Count(fakeaws.ServiceSSM, "GetParameters"); n != 8 {
		t.Errorf("GetParameters calls = %d, want 8 (7 throttled, then the answer)", n)
	}

	// No room in the deadline for another wait: throttled.
	e.fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSSM, Operation: "GetParameters", Kind: fakeaws.FaultThrottle})
	defer e.fake.ClearFaults()
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	_, err = f.Fetch(short, cfg, clients, "retry-short")
	var errs fetch.Errors
	if !errors.As(err, &errs) || errs.MostActionable() != fetch.KindThrottled {
		t.Fatalf("Fetch with AWS throttling to the end = %v, want throttled", err)
	}
}
