package socket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/coffer-csi/coffer/cli"
	"github.com/coffer-csi/coffer/provider/render/isolate/isolatetest"
	"github.com/coffer-csi/coffer/provider/server"
	"github.com/coffer-csi/coffer/tests/fakeaws"
	"github.com/coffer-csi/coffer/wiring"
)

const (
	primary  = "us-east-1"
	failover = "us-west-2"
	testKey  = "AKIDTEST"
	testPass = "test-secret-key"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is coffer built by wiring.New from coffer serve's default
// configuration (cli.ServeConfig), served over a real Unix socket, reading
// from the AWS fake through the real SDK, configured as in production
// through the SDK's standard environment settings. Only what points it at
// the fakes differs from serve's defaults (pointAtFakes).
type harness struct {
	fake   *fakeaws.Server
	url    string
	client v1alpha1.CSIDriverProviderClient
	logs   *syncBuffer
	socket string
	// cfg is the configuration coffer was built from.
	cfg wiring.Config
	// metrics is the provider's registry, for scraping in tests.
	metrics *prometheus.Registry
	// stop shuts the server down and waits for Serve to return.
	stop func(t *testing.T)
}

type harnessOptions struct {
	// config changes serve's configuration for one test (a flag set
	// differently), after the harness pointed it at the fakes.
	config func(c *wiring.Config)
	// fakeNow is the AWS fake's clock (default: real time).
	fakeNow func() time.Time
	// credentialLifetime is the fake STS's session lifetime (0: its
	// default).
	credentialLifetime time.Duration
	// workload points coffer at the fake cluster (newWorkloadHarness);
	// without it, coffer reads AWS with the node's credentials.
	workload func(f *fakeaws.Server, c *wiring.Config)
}

// serveDefaults is coffer serve's configuration with no flags, and no
// region or node name from the environment.
func serveDefaults(t *testing.T) wiring.Config {
	t.Helper()
	t.Setenv("AWS_REGION", "")
	t.Setenv("NODE_NAME", "")
	cfg, err := cli.ServeConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// retryBackoff replaces the SDK's 2 s bound between retries: the same
// retries, sooner, so that tests of throttling and outages take
// milliseconds.
const retryBackoff = 10 * time.Millisecond

// pointAtFakes is every difference between what the harness builds and
// coffer serve's defaults, besides what one test sets: the logs, the
// evaluator's workers (this test binary, see TestMain), two waits
// (the SDK's between retries, and the remount jitter: nearly every
// mount here remounts one pod, and would wait up to a second for
// nothing; provider/fetch's TestRemountJitterSpreadsReads shows what it
// spreads), and either the node's credentials (the fake's test key) or,
// in newWorkloadHarness, the fake cluster, its keys and Pod Identity
// agent.
func pointAtFakes(cfg *wiring.Config, log *slog.Logger) {
	cfg.Logger = log
	cfg.Evaluator.Command, cfg.Evaluator.Env = isolatetest.Worker()
	cfg.AWS.MaxBackoff = retryBackoff
	cfg.Quota.RemountJitter = 0
	cfg.NodeCredentials = true
}

func newHarness(t *testing.T, opts ...harnessOptions) *harness {
	t.Helper()
	var o harnessOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	fake, ts := fakeaws.NewTestServer(t, fakeaws.Options{Now: o.fakeNow})
	fake.AddIdentity(fakeaws.AllowAll(testKey, testPass))

	t.Setenv("AWS_ENDPOINT_URL", ts.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", testKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testPass)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := serveDefaults(t)
	pointAtFakes(&cfg, log)
	if o.workload != nil {
		o.workload(fake, &cfg)
	}
	if o.config != nil {
		o.config(&cfg)
	}
	coffer, err := wiring.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(shortTempDir(t), "aws.sock")
	lis, err := server.Listen(socket)
	if err != nil {
		coffer.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- coffer.Serve(ctx, lis)
	}()

	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func(t *testing.T) {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			coffer.Close()
		})
	}
	t.Cleanup(func() {
		conn.Close()
		stop(t)
	})
	return &harness{fake: fake, url: ts.URL, client: v1alpha1.NewCSIDriverProviderClient(conn), logs: logs, socket: socket, stop: stop, cfg: cfg, metrics: coffer.Registry}
}

// shortTempDir returns a temporary directory with a short path: Unix socket
// paths are limited to about 100 bytes, and t.TempDir can be longer.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "coffer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// attrs builds the attributes the driver sends for a pod mounting a class.
func attrs(params map[string]string) string {
	a := map[string]string{
		"secretProviderClass":                    "app-secrets",
		"csi.storage.k8s.io/pod.name":            "app-0",
		"csi.storage.k8s.io/pod.namespace":       "default",
		"csi.storage.k8s.io/pod.uid":             "0b7f4f4c-0000-4000-8000-000000000001",
		"csi.storage.k8s.io/serviceAccount.name": "app",
		"csi.storage.k8s.io/ephemeral":           "false",
		"region":                                 primary,
	}
	for k, v := range params {
		a[k] = v
	}
	b, _ := json.Marshal(a)
	return string(b)
}

func (h *harness) mount(t *testing.T, params map[string]string, current ...*v1alpha1.ObjectVersion) (*v1alpha1.MountResponse, error) {
	t.Helper()
	return h.mountAttrs(t, attrs(params), current...)
}

// mountAttrs sends a Mount with attributes as given.
func (h *harness) mountAttrs(t *testing.T, attributes string, current ...*v1alpha1.ObjectVersion) (*v1alpha1.MountResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return h.client.Mount(ctx, &v1alpha1.MountRequest{
		Attributes:           attributes,
		Secrets:              "null",
		TargetPath:           "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/secrets/mount",
		Permission:           "420",
		CurrentObjectVersion: current,
	})
}

// files indexes a response's files and versions by path.
func files(resp *v1alpha1.MountResponse) (map[string]*v1alpha1.File, map[string]string) {
	fs := map[string]*v1alpha1.File{}
	for _, f := range resp.GetFiles() {
		fs[f.GetPath()] = f
	}
	vs := map[string]string{}
	for _, v := range resp.GetObjectVersion() {
		vs[v.GetId()] = v.GetVersion()
	}
	return fs, vs
}

// TestHarnessRunsServeDefaults: both harnesses build coffer from coffer
// serve's default flags (cli.ServeConfig) and differ from them only in
// what points coffer at the fakes (pointAtFakes, newWorkloadHarness), so
// the suite runs what ships: serve's quota, byte limits, cache, evaluator
// pool and server. It fails if a harness sets anything else by default.
func TestHarnessRunsServeDefaults(t *testing.T) {
	want := serveDefaults(t)
	plain := newHarness(t)
	workload, _ := newWorkloadHarness(t)
	for name, h := range map[string]*harness{"newHarness": plain, "newWorkloadHarness": workload} {
		got := h.cfg
		if got.AWS.MaxBackoff != retryBackoff || got.Logger == nil || got.Evaluator.Command == nil {
			t.Errorf("%s: retry wait %v, logger %v, evaluator command %q: not pointed at the fakes", name, got.AWS.MaxBackoff, got.Logger, got.Evaluator.Command)
		}
		// The fakes, and nothing else.
		got.Logger = nil
		got.Evaluator.Command, got.Evaluator.Env = want.Evaluator.Command, want.Evaluator.Env
		got.AWS.MaxBackoff = want.AWS.MaxBackoff
		if got.Quota != nil {
			q := *got.Quota
			q.RemountJitter = want.Quota.RemountJitter
			got.Quota = &q
		}
		got.NodeCredentials = want.NodeCredentials
		got.Kubernetes, got.NodeName = want.Kubernetes, want.NodeName
		id := &got.Identity
		id.JWKSURL, id.Issuers = want.Identity.JWKSURL, want.Identity.Issuers
		id.PodIdentityIPv4URL, id.PodIdentityIPv6URL = want.Identity.PodIdentityIPv4URL, want.Identity.PodIdentityIPv6URL
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s builds coffer from\n%s\nnot coffer serve's defaults\n%s", name, describe(got), describe(want))
		}
	}
	if plain.cfg.Quota == nil || plain.cfg.Cache.MaxStaleness == 0 || plain.cfg.Limits.MaxValueBytes == 0 || plain.cfg.Evaluator.Workers == 0 {
		t.Errorf("serve's defaults have no quota, cache, value limit or evaluator workers: %s", describe(plain.cfg))
	}
}

// describe prints a Config with its quota.
func describe(c wiring.Config) string {
	s := fmt.Sprintf("%+v", c)
	if c.Quota != nil {
		s += fmt.Sprintf("\nquota %+v", *c.Quota)
	}
	return s
}
