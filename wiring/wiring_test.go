package wiring

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/kube/kubetest"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/secretsync"
)

// noAWSConfig keeps the SDK from reading this machine's AWS settings.
func noAWSConfig(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
}

func fakeKubernetes() *Kubernetes {
	return &Kubernetes{
		Client: kubetest.Wrap(fake.NewClientset()),
		Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{secretsync.SPCResource: "SecretProviderClassList"}),
		Metadata: metadatafake.NewSimpleMetadataClient(metadatafake.NewTestScheme()),
	}
}

// events is an event recorder that records nothing.
type events struct{}

func (events) Eventf(runtime.Object, string, string, string, ...any) {}

// TestNewBuildsWhatConfigSays: each setting reaches the piece it
// configures, and a piece that is off is not built.
func TestNewBuildsWhatConfigSays(t *testing.T) {
	noAWSConfig(t)
	d := Defaults()
	d.NodeCredentials = true
	d.Region = "eu-west-1"
	c, err := New(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, f := c.Provider, c.Provider.Fetcher
	if _, ok := p.Identities.(auth.NodeCredentials); !ok || p.Region != provider.StaticRegion("eu-west-1") {
		t.Errorf("node credentials: identities %T, region %v", p.Identities, p.Region)
	}
	if f.Quota == nil || f.Cache == nil || p.Marks == nil || p.Evaluator == nil {
		t.Errorf("serve's defaults: quota %v, cache %v, marks %v, evaluator %v; want all", f.Quota, f.Cache, p.Marks, p.Evaluator)
	}
	if f.Reuse != 5*time.Second || f.MaxBytes != FetchAllowance*d.Limits.MaxResponseBytes || f.MaxCallsPerIdentity != 16 || f.Concurrency != 8 {
		t.Errorf("fetcher %+v", f)
	}
	if p.MaxObjects != 256 || p.MaxValueBytes != 1<<20 || p.MaxAttributesBytes != 256<<10 || p.MaxResponseBytes != d.Limits.MaxResponseBytes {
		t.Errorf("provider limits %+v", p)
	}
	if cap(c.Server.Slots) != 64 || c.Server.MountTimeout != 30*time.Second || c.Server.Mounter != p {
		t.Errorf("server: %d slots, timeout %v", cap(c.Server.Slots), c.Server.MountTimeout)
	}
	if p.AfterMount != nil || c.Sync != nil || c.Restarts != nil {
		t.Error("built Secret sync or rotation events nobody asked for")
	}

	off := Defaults()
	off.NodeCredentials, off.Cache, off.Quota, off.Evaluator.Workers = true, Cache{}, nil, 0
	c, err = New(context.Background(), off)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p, f := c.Provider, c.Provider.Fetcher; f.Quota != nil || f.Cache != nil || p.Marks != nil || p.Evaluator != nil {
		t.Errorf("all off: quota %v, cache %v, marks %v, evaluator %v; want none", f.Quota, f.Cache, p.Marks, p.Evaluator)
	}
}

// TestNewWithKubernetes: workload identity, Secret sync at mount, rotation
// events and the controllers, on the Kubernetes API given (or, without
// one, refused for want of a cluster).
func TestNewWithKubernetes(t *testing.T) {
	noAWSConfig(t)
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		wantErr string
		check   func(*testing.T, *Coffer)
	}{
		{name: "workload identity", check: func(t *testing.T, c *Coffer) {
			if _, ok := c.Provider.Identities.(*auth.Resolver); !ok {
				t.Errorf("identities %T, want the resolver", c.Provider.Identities)
			}
			if _, ok := c.Provider.Region.(*auth.NodeRegion); !ok {
				t.Errorf("region %T, want the node's", c.Provider.Region)
			}
		}},
		{name: "no cluster", change: func(c *Config) { c.Kubernetes = nil }, wantErr: "connecting to the Kubernetes API"},
		{name: "no cluster needed", change: func(c *Config) { c.Kubernetes, c.NodeCredentials = nil, true }},
		{name: "sync at mount", change: func(c *Config) { c.SyncAtMount = true }, check: func(t *testing.T, c *Coffer) {
			if c.Provider.AfterMount == nil {
				t.Error("no after-mount hook")
			}
		}},
		{name: "rotation events", change: func(c *Config) { c.RotationEvents = true }, check: func(t *testing.T, c *Coffer) {
			if c.Provider.AfterMount == nil {
				t.Error("no after-mount hook")
			}
		}},
		{name: "no rotation events on unverified pods", change: func(c *Config) { c.RotationEvents, c.NodeCredentials = true, true }, check: func(t *testing.T, c *Coffer) {
			if c.Provider.AfterMount != nil {
				t.Error("rotation events with --insecure-node-credentials")
			}
		}},
		{name: "controller", change: func(c *Config) {
			cc := DefaultController()
			c.Controller, c.Events = &cc, events{}
		}, check: func(t *testing.T, c *Coffer) {
			if c.Sync == nil || c.Restarts != nil || c.Sync.Engine.Evaluator != c.Provider.Evaluator {
				t.Errorf("sync %v, restarts %v", c.Sync, c.Restarts)
			}
		}},
		{name: "controller and restarts", change: func(c *Config) {
			cc := DefaultController()
			cc.RestartWorkloads = true
			c.Controller, c.Events = &cc, events{}
		}, check: func(t *testing.T, c *Coffer) {
			if c.Sync == nil || c.Restarts == nil || c.Restarts.Secrets != c.Sync.Secrets {
				t.Errorf("sync %v, restarts %v: want both, sharing one watch of Secrets", c.Sync, c.Restarts)
			}
		}},
		{name: "controller without events", change: func(c *Config) {
			cc := DefaultController()
			c.Controller = &cc
		}, wantErr: "need an event recorder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Kubernetes = fakeKubernetes()
			if tc.change != nil {
				tc.change(&cfg)
			}
			c, err := New(context.Background(), cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

// TestNewGivesTheClock: the value cache keeps time by Config.Clock.
func TestNewGivesTheClock(t *testing.T) {
	noAWSConfig(t)
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	cfg := Defaults()
	cfg.NodeCredentials, cfg.Clock = true, clk
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	values := c.Provider.Fetcher.Cache
	values.Put("k", cache.Entry{Data: []byte("v"), At: start})
	if _, ok := values.Get("k", start); !ok {
		t.Fatal("a value read now is not in the cache")
	}
	clk.Step(cfg.Cache.keep() + time.Second)
	if _, ok := values.Get("k", start); ok {
		t.Error("the value outlived the cache's window on the given clock")
	}
}

// TestConnect: one kubeconfig gives every client a process uses, and the
// configuration they were made from, which the controller's election and
// event recorder are made from too.
func TestConnect(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://198.18.0.9:6443"}
users:
- name: u
  user: {token: "t"}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := Connect(kubeconfig, true)
	if err != nil {
		t.Fatal(err)
	}
	if k.Client == nil || k.Dynamic == nil || k.Metadata == nil || k.Config == nil {
		t.Fatalf("Connect = %+v, want every client and the configuration", k)
	}
	if typed, err := Connect(kubeconfig, false); err != nil || typed.Client == nil || typed.Config == nil || typed.Dynamic != nil || typed.Metadata != nil {
		t.Fatalf("Connect(typed only) = %+v, %v; want the typed client and the configuration only", typed, err)
	}
	if k.Config.Host != "https://198.18.0.9:6443" || !strings.HasPrefix(k.Config.UserAgent, "coffer/") {
		t.Errorf("configuration: host %q, user agent %q", k.Config.Host, k.Config.UserAgent)
	}
	if _, err := Connect(filepath.Join(t.TempDir(), "none"), true); err == nil || !strings.Contains(err.Error(), "connecting to the Kubernetes API") {
		t.Errorf("Connect(no such file) = %v", err)
	}
}
