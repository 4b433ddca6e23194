package socket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/server"
	"github.com/coffer-csi/coffer/tests/fakeaws"
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

// harness is a provider served over a real Unix socket, reading from the
// AWS fake through the real SDK, configured as in production through the
// SDK's standard environment settings.
type harness struct {
	fake   *fakeaws.Server
	url    string
	client v1alpha1.CSIDriverProviderClient
	logs   *syncBuffer
	socket string
	// metrics is the provider's registry, for scraping in tests.
	metrics *prometheus.Registry
	// stop shuts the server down and waits for Serve to return.
	stop func(t *testing.T)
}

type harnessOptions struct {
	mountTimeout     time.Duration
	maxResponseBytes int
	// identities builds the identity source from the SDK configuration
	// (default: the node's credentials, the fake's test key).
	identities func(fake *fakeaws.Server, cfg aws.Config, m *metrics.Metrics) provider.IdentitySource
	region     provider.RegionSource
	// cache holds values across mounts (default: off); with it, pods'
	// mounts are marked as in production.
	cache *cache.Cache
	// reuse is the freshness bound (default with a cache: a minute);
	// serveStale the outage allowance (default: off).
	reuse, serveStale time.Duration
	// fakeNow is the AWS fake's clock (default: real time).
	fakeNow func() time.Time
	// Workload identity: credential refresh margin and the fake's session
	// lifetime (0: defaults).
	refreshMargin, credentialLifetime time.Duration
	// Limits (0: none).
	maxAttributesBytes, maxValueBytes, maxMounts, maxCallsPerIdentity int
	// sessionScope is the workload harness's STS session scope (default:
	// per pod).
	sessionScope auth.SessionScope
	// evaluator runs jmesPath and templates (default: in process).
	evaluator render.Evaluator
}

func newHarness(t *testing.T, opts ...harnessOptions) *harness {
	t.Helper()
	var o harnessOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.mountTimeout == 0 {
		o.mountTimeout = 10 * time.Second
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
	awsCfg, err := awsapi.LoadConfig(context.Background(), awsapi.Settings{MaxAttempts: 2, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	registry := prometheus.NewRegistry()
	var cacheStats func() metrics.CacheStats
	if o.cache != nil {
		cacheStats = func() metrics.CacheStats {
			s := o.cache.Stats()
			return metrics.CacheStats{Hits: s.Hits, Misses: s.Misses, Evictions: s.Evictions, Entries: s.Entries, Bytes: s.Bytes}
		}
	}
	m := metrics.New(registry, metrics.Options{Version: "test", CacheStats: cacheStats})
	awsapi.Instrument(&awsCfg, m.AWSCall)

	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var identities provider.IdentitySource = auth.NodeCredentials{Credentials: awsCfg.Credentials}
	if o.identities != nil {
		identities = o.identities(fake, awsCfg, m)
	}
	var marks *cache.Marks
	if o.cache != nil {
		marks = cache.NewMarks(time.Hour, 1024)
		if o.reuse == 0 {
			o.reuse = time.Minute
		}
	}
	p := &provider.Mounter{
		Marks:      marks,
		Identities: identities,
		Region:     o.region,
		Clients: func(_ context.Context, id auth.Identity) fetch.Clients {
			return awsapi.NewClients(awsCfg, id.Credentials)
		},
		Fetcher:            &fetch.Fetcher{Concurrency: 4, Cache: o.cache, Reuse: o.reuse, ServeStale: o.serveStale, MaxCallsPerIdentity: o.maxCallsPerIdentity},
		MaxValueBytes:      o.maxValueBytes,
		MaxAttributesBytes: o.maxAttributesBytes,
		MaxObjects:         50,
		MaxResponseBytes:   o.maxResponseBytes,
		Logger:             log,
		Metrics:            m,
		Evaluator:          o.evaluator,
	}
	socket := filepath.Join(shortTempDir(t), "aws.sock")
	lis, err := server.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &server.Server{Mounter: p, MountTimeout: o.mountTimeout, BuildVersion: "test", Logger: log, Slots: server.NewSlots(o.maxMounts)}
	go func() {
		done <- server.Serve(ctx, lis, srv, server.ServeOptions{Logger: log, ShutdownTimeout: 5 * time.Second})
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
		})
	}
	t.Cleanup(func() {
		conn.Close()
		stop(t)
	})
	return &harness{fake: fake, url: ts.URL, client: v1alpha1.NewCSIDriverProviderClient(conn), logs: logs, socket: socket, stop: stop, metrics: registry}
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
