package fetch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/coffer-csi/coffer/internal/sdkhttp"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

const region = "us-east-1"

// env is the AWS fake and real SDK clients per identity.
type env struct {
	fake *fakeaws.Server
	url  string
}

func newEnv(t *testing.T) *env {
	fake, ts := fakeaws.NewTestServer(t)
	return &env{fake: fake, url: ts.URL}
}

// clients returns SDK clients signing as an identity the fake knows.
func (e *env) clients(id fakeaws.Identity) fetch.Clients {
	e.fake.AddIdentity(id)
	cfg := aws.Config{
		Region:           region,
		BaseEndpoint:     aws.String(e.url),
		Credentials:      credentials.NewStaticCredentialsProvider(id.AccessKeyID, id.SecretAccessKey, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       sdkhttp.New(),
	}
	return awsapi.NewClients(cfg, cfg.Credentials)
}

func config(t *testing.T, objects string) *spc.Config {
	t.Helper()
	cfg, err := spc.Parse(map[string]string{"objects": objects, "region": region}, spc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func secretObjects(n int, prefix string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- {objectName: %s%02d, objectType: secretsmanager}\n", prefix, i)
	}
	return b.String()
}

func TestBatchesCurrentSecretsByTwenty(t *testing.T) {
	e := newEnv(t)
	for i := range 25 {
		e.fake.PutSecretString(region, fmt.Sprintf("s%02d", i), fmt.Sprintf("v%02d", i))
	}
	_, pinned := e.fake.PutSecretString(region, "pinned", "p")
	cfg := config(t, secretObjects(25, "s")+"- {objectName: pinned, objectType: secretsmanager, objectVersion: \""+pinned+"\"}\n")
	f := &fetch.Fetcher{}
	values, err := f.Fetch(context.Background(), cfg, e.clients(fakeaws.AllowAll("AKID1", "k1")), "id-1")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values[:25] {
		if want := fmt.Sprintf("v%02d", i); string(v.Data) != want {
			t.Errorf("value %d = %q, want %q", i, v.Data, want)
		}
	}
	if n := e.fake.Count(fakeaws.ServiceSecretsManager, "BatchGetSecretValue"); n != 2 {
		t.Errorf("BatchGetSecretValue calls = %d, want 2 (20 + 5)", n)
	}
	if n := e.fake.Count(fakeaws.ServiceSecretsManager, "GetSecretValue"); n != 1 {
		t.Errorf("GetSecretValue calls = %d, want 1 (the pinned version)", n)
	}
}

func TestBatchFallsBackWhenDeniedAndRemembers(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.fake.PutSecretString(region, fmt.Sprintf("s%02d", i), "v")
	}
	clients := e.clients(fakeaws.Identity{
		AccessKeyID: "AKIDNOBATCH", SecretAccessKey: "k",
		Actions: []string{"secretsmanager:GetSecretValue"}, Resources: []string{"*"},
	})
	cfg := config(t, secretObjects(3, "s"))
	f := &fetch.Fetcher{}
	for range 3 {
		if _, err := f.Fetch(context.Background(), cfg, clients, "nobatch"); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.fake.Count(fakeaws.ServiceSecretsManager, "BatchGetSecretValue"); n != 1 {
		t.Errorf("BatchGetSecretValue calls = %d, want 1: the denial must be remembered", n)
	}
	if n := e.fake.Count(fakeaws.ServiceSecretsManager, "GetSecretValue"); n != 9 {
		t.Errorf("GetSecretValue calls = %d, want 9 (3 mounts x 3 secrets)", n)
	}
}

func TestBatchPerSecretErrorsReadLikeSingleCalls(t *testing.T) {
	e := newEnv(t)
	e.fake.PutSecretString(region, "team/ok", "v")
	e.fake.PutSecretString(region, "other/denied", "v")
	clients := e.clients(fakeaws.Identity{
		AccessKeyID: "AKIDTEAM", SecretAccessKey: "k", ARN: "arn:aws:iam::123456789012:role/team",
		Actions: []string{"secretsmanager:GetSecretValue"}, Resources: []string{"arn:aws:secretsmanager:*:*:secret:team/*"},
		Statements: []fakeaws.Statement{{Actions: []string{"secretsmanager:BatchGetSecretValue"}, Resources: []string{"*"}}},
	})
	cfg := config(t, `
- {objectName: team/ok, objectType: secretsmanager}
- {objectName: team/missing, objectType: secretsmanager}
- {objectName: other/denied, objectType: secretsmanager}
`)
	_, err := (&fetch.Fetcher{}).Fetch(context.Background(), cfg, clients, "team")
	errs, ok := err.(fetch.Errors)
	if !ok || len(errs) != 2 {
		t.Fatalf("err = %v, want 2 object errors", err)
	}
	if errs[0].Kind != fetch.KindNotFound || !strings.Contains(errs[0].Error(), `objects[1] (team/missing): secretsmanager:GetSecretValue in us-east-1: secret "team/missing" not found`) {
		t.Errorf("missing secret: %v", errs[0])
	}
	if errs[1].Kind != fetch.KindAccessDenied || !strings.Contains(errs[1].Error(), "access denied") || !strings.Contains(errs[1].Error(), "grant the pod's IAM role secretsmanager:GetSecretValue") {
		t.Errorf("denied secret: %v", errs[1])
	}
	if n := e.fake.Count(fakeaws.ServiceSecretsManager, "GetSecretValue"); n != 0 {
		t.Errorf("per-secret errors caused %d extra GetSecretValue calls", n)
	}
}

func TestCacheServesRepeatMountsButNeverAnotherIdentity(t *testing.T) {
	e := newEnv(t)
	e.fake.PutSecretString(region, "team-a/db", "a-secret")
	e.fake.PutParameter(region, "/team-a/host", "a-host", "String")
	teamA := e.clients(fakeaws.Identity{AccessKeyID: "AKIDA", SecretAccessKey: "ka", Actions: []string{"*"}, Resources: []string{"*"}})
	teamB := e.clients(fakeaws.Identity{
		AccessKeyID: "AKIDB", SecretAccessKey: "kb", ARN: "arn:aws:iam::123456789012:role/team-b",
		Actions: []string{"*"}, Resources: []string{"arn:aws:secretsmanager:*:*:secret:team-b/*", "arn:aws:ssm:*:*:parameter/team-b/*"},
	})
	cfg := config(t, `
- {objectName: team-a/db, objectType: secretsmanager}
- {objectName: /team-a/host, objectType: ssmparameter}
`)
	f := &fetch.Fetcher{Cache: cache.New(time.Minute, 1<<20), Reuse: time.Minute}
	ctx := context.Background()
	for range 5 {
		if _, err := f.Fetch(ctx, cfg, teamA, "identity-a"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.fake.Calls()); n != 2 {
		t.Errorf("5 mounts of one identity made %d AWS calls, want 2 (then cached)", n)
	}
	// Right after team A fetched, team B asks for the same objects: the
	// cache must not answer, AWS must, and AWS refuses.
	values, err := f.Fetch(ctx, cfg, teamB, "identity-b")
	if err == nil || len(values) != 0 {
		t.Fatalf("identity B got %d values from A's cache (err %v)", len(values), err)
	}
	for _, oe := range err.(fetch.Errors) {
		if oe.Kind != fetch.KindAccessDenied {
			t.Errorf("identity B: %v, want access denied", oe)
		}
	}
	if s := f.Cache.Stats(); s.Hits != 8 {
		t.Errorf("cache hits = %d, want 8 (4 repeat mounts x 2 objects)", s.Hits)
	}
}

func TestConcurrentIdenticalFetchesShareOneCall(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.fake.PutSecretString(region, fmt.Sprintf("s%02d", i), "v")
	}
	e.fake.PutParameter(region, "/p", "v", "String")
	e.fake.SetLatency(200 * time.Millisecond)
	clients := e.clients(fakeaws.AllowAll("AKIDBURST", "k"))
	cfg := config(t, secretObjects(3, "s")+"- {objectName: /p, objectType: ssmparameter}\n")
	f := &fetch.Fetcher{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := f.Fetch(context.Background(), cfg, clients, "burst"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(e.fake.Calls()); n != 2 {
		t.Errorf("50 concurrent identical mounts made %d AWS calls, want 2 (one batch per service)", n)
	}

	// A caller with a short deadline does not wait for the shared call.
	calling := &signalling{Clients: clients, want: 2, reached: make(chan struct{})}
	go f.Fetch(context.Background(), cfg, calling, "burst") // starts the shared calls
	<-calling.reached                                       // one per service
	start := time.Now()
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := f.Fetch(short, cfg, calling, "burst")
	if err == nil {
		t.Fatal("a 20ms fetch against 200ms latency succeeded")
	}
	if waited := time.Since(start); waited > 150*time.Millisecond {
		t.Errorf("caller waited %v, past its own deadline", waited)
	}
	calling.mu.Lock()
	defer calling.mu.Unlock()
	if calling.calls != 2 {
		t.Errorf("%d calls, want the 2 shared ones: the short caller called on its own", calling.calls)
	}
}

// signalling wraps clients to close reached once want calls have reached
// them.
type signalling struct {
	fetch.Clients
	want    int
	mu      sync.Mutex
	calls   int
	reached chan struct{}
}

func (s *signalling) called() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls++; s.calls == s.want {
		close(s.reached)
	}
}

func (s *signalling) SecretsManager(region string) fetch.SecretsManagerAPI {
	return signalledSM{s.Clients.SecretsManager(region), s}
}

func (s *signalling) ParameterStore(region string) fetch.ParameterStoreAPI {
	return signalledSSM{s.Clients.ParameterStore(region), s}
}

type signalledSM struct {
	fetch.SecretsManagerAPI
	s *signalling
}

func (c signalledSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	c.s.called()
	return c.SecretsManagerAPI.GetSecretValue(ctx, in, opts...)
}

func (c signalledSM) BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	c.s.called()
	return c.SecretsManagerAPI.BatchGetSecretValue(ctx, in, opts...)
}

type signalledSSM struct {
	fetch.ParameterStoreAPI
	s *signalling
}

func (c signalledSSM) GetParameters(ctx context.Context, in *ssm.GetParametersInput, opts ...func(*ssm.Options)) (*ssm.GetParametersOutput, error) {
	c.s.called()
	return c.ParameterStoreAPI.GetParameters(ctx, in, opts...)
}

func (c signalledSSM) GetParametersByPath(ctx context.Context, in *ssm.GetParametersByPathInput, opts ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error) {
	c.s.called()
	return c.ParameterStoreAPI.GetParametersByPath(ctx, in, opts...)
}

// gauge wraps real SDK clients to record the most calls in flight at once.
type gauge struct {
	fetch.Clients
	mu        sync.Mutex
	now, peak int
}

func (g *gauge) SecretsManager(region string) fetch.SecretsManagerAPI {
	return gaugedSM{g.Clients.SecretsManager(region), g}
}

type gaugedSM struct {
	fetch.SecretsManagerAPI
	g *gauge
}

func (s gaugedSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	s.g.mu.Lock()
	s.g.now++
	s.g.peak = max(s.g.peak, s.g.now)
	s.g.mu.Unlock()
	defer func() { s.g.mu.Lock(); s.g.now--; s.g.mu.Unlock() }()
	return s.SecretsManagerAPI.GetSecretValue(ctx, in, opts...)
}

func TestCallsPerIdentityAreBounded(t *testing.T) {
	e := newEnv(t)
	var objects strings.Builder
	for i := range 12 {
		_, v := e.fake.PutSecretString(region, fmt.Sprintf("pinned%02d", i), "v")
		fmt.Fprintf(&objects, "- {objectName: pinned%02d, objectType: secretsmanager, objectVersion: %q}\n", i, v)
	}
	e.fake.SetLatency(20 * time.Millisecond)
	g := &gauge{Clients: e.clients(fakeaws.AllowAll("AKIDLIMIT", "k"))}
	f := &fetch.Fetcher{Concurrency: 8, MaxCallsPerIdentity: 3}
	var wg sync.WaitGroup
	for range 3 { // three mounts of one identity at once
		wg.Go(func() {
			if _, err := f.Fetch(context.Background(), config(t, objects.String()), g, "one-identity"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if g.peak > 3 {
		t.Errorf("peak calls in flight for one identity = %d, bound is 3", g.peak)
	}
	if g.peak < 2 {
		t.Errorf("peak = %d: calls did not run concurrently at all", g.peak)
	}
}

// heldSecrets answers GetSecretValue with the number of the call, holding
// the first call until released.
type heldSecrets struct {
	fetch.SecretsManagerAPI
	mu      sync.Mutex
	calls   int
	started chan struct{}
	release chan struct{}
}

func (h *heldSecrets) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	h.mu.Lock()
	h.calls++
	n := h.calls
	h.mu.Unlock()
	if n == 1 {
		close(h.started)
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(fmt.Sprintf("read-%d", n)), VersionId: aws.String(fmt.Sprintf("v%d", n))}, nil
}

func (h *heldSecrets) SecretsManager(string) fetch.SecretsManagerAPI { return h }
func (h *heldSecrets) ParameterStore(string) fetch.ParameterStoreAPI { return nil }

// A pod whose previous mount ended while a shared call was in flight must
// not take that call's answer: AWS may have answered from before the mount.
// Pods without such a bound still share the call.
func TestSharedCallStartedBeforePreviousMountIsNotTaken(t *testing.T) {
	sm := &heldSecrets{started: make(chan struct{}), release: make(chan struct{})}
	f := &fetch.Fetcher{}
	cfg := config(t, "- {objectName: app/db, objectType: secretsmanager}")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first := make(chan string, 2)
	fetchInto := func(ctx context.Context, out chan<- string) {
		values, err := f.Fetch(ctx, cfg, sm, "identity")
		if err != nil {
			out <- err.Error()
			return
		}
		out <- string(values[0].Data)
	}
	go fetchInto(ctx, first)
	<-sm.started
	go fetchInto(ctx, first) // joins the held call
	// Let the joiner reach the shared call before anything else happens:
	// scheduled after the held call ended, it would make a call of its own
	// (nothing here can observe a caller waiting on a flight).
	time.Sleep(100 * time.Millisecond)
	remount := make(chan string, 1)
	go fetchInto(fetch.WithFreshness(ctx, fetch.Freshness{NotBefore: time.Now()}), remount)
	if got := <-remount; got != "read-2" {
		t.Fatalf("remount got %q, want its own read (read-2)", got)
	}
	close(sm.release)
	for range 2 {
		if got := <-first; got != "read-1" {
			t.Errorf("sharing caller got %q, want read-1", got)
		}
	}
	if sm.calls != 2 {
		t.Errorf("%d calls, want 2", sm.calls)
	}
}

// A secret scheduled for deletion (its recovery window) is gone for every
// purpose: not found, single reads and batches alike, with a hint to restore
// it. Other InvalidRequestExceptions stay invalid requests.
func TestSecretScheduledForDeletionIsNotFound(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"app/a", "app/b", "app/kept"} {
		e.fake.PutSecretString(region, name, "v")
	}
	clients := e.clients(fakeaws.AllowAll("AKIDADMIN", "k"))
	sm := secretsmanager.NewFromConfig(fakeaws.AWSConfig(e.url, region, "AKIDADMIN", "k", ""))
	for _, name := range []string{"app/a", "app/b"} {
		if _, err := sm.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
	}
	for name, objects := range map[string]string{
		"GetSecretValue":      "- {objectName: app/a, objectType: secretsmanager}",
		"BatchGetSecretValue": "- {objectName: app/a, objectType: secretsmanager}\n- {objectName: app/b, objectType: secretsmanager}\n- {objectName: app/kept, objectType: secretsmanager}",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := (&fetch.Fetcher{}).Fetch(context.Background(), config(t, objects), clients, "admin")
			var errs fetch.Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("err = %v", err)
			}
			for _, oe := range errs {
				if oe.Kind != fetch.KindNotFound || !strings.Contains(oe.Error(), "scheduled for deletion") || !strings.Contains(oe.Error(), "RestoreSecret") {
					t.Errorf("%s: kind %s: %v", oe.Object.Name, oe.Kind, oe)
				}
			}
			if n := e.fake.Count(fakeaws.ServiceSecretsManager, name); n == 0 {
				t.Errorf("no %s call", name)
			}
		})
	}
	invalid := &smithy.GenericAPIError{Code: "InvalidRequestException", Message: "You can't perform this operation on the secret because it was disabled."}
	if k := fetch.Classify(invalid); k != fetch.KindInvalid {
		t.Errorf("other InvalidRequestException: %s", k)
	}
}
