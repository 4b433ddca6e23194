package cli

import (
	"reflect"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/coffer-csi/coffer/wiring"
)

// TestServeConfigDefaults: coffer serve's flags default to wiring's
// Defaults, and the environment fills what the help says it does.
func TestServeConfigDefaults(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("NODE_NAME", "")
	got, err := ServeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if want := wiring.Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("serve's flag defaults:\n%+v\nwiring.Defaults:\n%+v", got, want)
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("NODE_NAME", "node-7")
	if got, err := ServeConfig(); err != nil || got.Region != "eu-west-1" || got.NodeName != "node-7" {
		t.Errorf("ServeConfig() with $AWS_REGION and $NODE_NAME: region %q, node %q, %v", got.Region, got.NodeName, err)
	}
}

// TestServeConfigFlags: flags land in the Config, and bad ones are refused
// with the flag's name.
func TestServeConfigFlags(t *testing.T) {
	got, err := ServeConfig("--max-staleness=0", "--cache-ttl=1m", "--aws-quota-node-share=0.25", "--evaluator-workers=0",
		"--service-account-issuer=https://a", "--service-account-issuer=https://b", "--sts-session-scope=serviceaccount", "--max-concurrent-mounts=3")
	if err != nil {
		t.Fatal(err)
	}
	if got.Cache.MaxStaleness != 0 || got.Cache.TTL != time.Minute || got.Quota.NodeShare != 0.25 || got.Evaluator.Workers != 0 ||
		!reflect.DeepEqual(got.Identity.Issuers, []string{"https://a", "https://b"}) || got.Identity.SessionScope != "serviceaccount" || got.Server.MaxConcurrentMounts != 3 {
		t.Errorf("ServeConfig(flags) = %+v", got)
	}
	if _, err := ServeConfig("--max-objects=0"); err == nil {
		t.Error("ServeConfig(--max-objects=0) accepted")
	}
}

// TestSyncConfig: coffer-controller sync shares serve's identity and limits
// defaults, and runs with no value cache and no node quota.
func TestSyncConfig(t *testing.T) {
	var c syncConfig
	c.register(pflag.NewFlagSet("sync", pflag.ContinueOnError))
	got, d := c.config(), wiring.Defaults()
	if !reflect.DeepEqual(got.Identity, d.Identity) || !reflect.DeepEqual(got.Evaluator, d.Evaluator) {
		t.Errorf("sync's identity or evaluator defaults differ from serve's:\n%+v\n%+v", got, d)
	}
	if got.Limits.MaxObjects != d.Limits.MaxObjects || got.Limits.MaxValueBytes != d.Limits.MaxValueBytes || got.Limits.FetchConcurrency != d.Limits.FetchConcurrency {
		t.Errorf("sync's limits %+v, serve's %+v", got.Limits, d.Limits)
	}
	if got.Cache != (wiring.Cache{}) || got.Quota != nil || got.Controller == nil {
		t.Errorf("sync: cache %+v, quota %v, controller %v; want none, none, set", got.Cache, got.Quota, got.Controller)
	}
	if cc, want := *got.Controller, wiring.DefaultController(); !reflect.DeepEqual(cc, want) {
		t.Errorf("sync's controller defaults %+v, want %+v", cc, want)
	}
}

// TestSyncConfigFlags: coffer-controller sync's flags land in the Config
// as serve's do, the flags both commands share included.
func TestSyncConfigFlags(t *testing.T) {
	var c syncConfig
	fs := pflag.NewFlagSet("sync", pflag.ContinueOnError)
	c.register(fs)
	if err := fs.Parse([]string{"--kubeconfig=/k", "--region=eu-west-1", "--node-name=n", "--fips", "--dual-stack", "--max-objects=7",
		"--workers=3", "--token-ttl=20m", "--restart-workloads", "--namespaces=a,b", "--namespace=c", "--evaluator-workers=0", "--sts-audience=x"}); err != nil {
		t.Fatal(err)
	}
	got := c.config()
	if got.Kubeconfig != "/k" || got.Region != "eu-west-1" || got.NodeName != "n" || got.AWS != (wiring.AWS{FIPS: true, DualStack: true}) ||
		got.Limits.MaxObjects != 7 || got.Evaluator.Workers != 0 || got.Identity.STSAudience != "x" {
		t.Errorf("config %+v", got)
	}
	if cc := got.Controller; cc.Workers != 3 || cc.TokenTTL != 20*time.Minute || !cc.RestartWorkloads || !reflect.DeepEqual(cc.Namespaces, []string{"c", "a", "b"}) {
		t.Errorf("controller %+v", cc)
	}
	// serve registers the shared flags through the same function.
	sc, err := ServeConfig("--kubeconfig=/k", "--region=eu-west-1", "--node-name=n", "--fips", "--dual-stack")
	if err != nil || sc.Kubeconfig != got.Kubeconfig || sc.Region != got.Region || sc.NodeName != got.NodeName || sc.AWS != got.AWS {
		t.Errorf("serve's shared flags: %+v, %v", sc, err)
	}
}
