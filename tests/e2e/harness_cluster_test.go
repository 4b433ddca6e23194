package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/coffer-csi/coffer/tests/harness"
)

const (
	nodeName   = "e2e-node"
	driverName = "secrets-store.csi.k8s.io"
	// nodeRegion is the node's topology.kubernetes.io/region label: the
	// region of SecretProviderClasses that name none.
	nodeRegion = "eu-west-1"
	// rotationPoll is the driver's --rotation-poll-interval: a republish
	// sooner than this after the last write is skipped by the driver.
	rotationPoll = 2 * time.Second
	// cofferCacheTTL is coffer's freshness bound (--max-staleness):
	// shorter than the rotation poll interval, as in a cluster with the
	// defaults (5s against 2m), so a pod started this long after a change
	// sees it while coffer's value cache still serves bursts of mounts
	// (remounts read AWS after their previous mount whatever the bound).
	cofferCacheTTL = time.Second
	audSTS         = "sts.amazonaws.com"
	audPodIdentity = "pods.eks.amazonaws.com"

	cofferNamespace = "coffer-system"
	cofferSA        = "coffer"
)

var (
	gvrSPC   = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"}
	gvrSPCPS = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasspodstatuses"}
	gvrCRD   = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// binaries are the programs the suite runs, from the environment that
// `make e2e` sets up.
type binaries struct {
	etcd, apiserver, controllerManager, driver, driverCRDs, coffer, fakeaws string
	// controller is coffer-controller, which runs coffer's sync controller.
	controller string
	// policies is the chart's ValidatingAdmissionPolicies, rendered for
	// coffer's ServiceAccounts here (make e2e renders them).
	policies string
}

var binaryEnv = []struct {
	name string
	dst  func(*binaries) *string
}{
	{"E2E_ETCD", func(b *binaries) *string { return &b.etcd }},
	{"E2E_KUBE_APISERVER", func(b *binaries) *string { return &b.apiserver }},
	{"E2E_KUBE_CONTROLLER_MANAGER", func(b *binaries) *string { return &b.controllerManager }},
	{"E2E_DRIVER", func(b *binaries) *string { return &b.driver }},
	{"E2E_DRIVER_CRDS", func(b *binaries) *string { return &b.driverCRDs }},
	{"E2E_COFFER", func(b *binaries) *string { return &b.coffer }},
	{"E2E_COFFER_CONTROLLER", func(b *binaries) *string { return &b.controller }},
	{"E2E_FAKEAWS", func(b *binaries) *string { return &b.fakeaws }},
	{"E2E_POLICIES", func(b *binaries) *string { return &b.policies }},
}

// binariesFromEnv reads every E2E_* path; missing lists those unset.
func binariesFromEnv() (b binaries, missing []string, err error) {
	for _, e := range binaryEnv {
		v := os.Getenv(e.name)
		if v == "" {
			missing = append(missing, e.name)
			continue
		}
		if _, serr := os.Stat(v); serr != nil {
			err = errors.Join(err, fmt.Errorf("%s=%s: %w", e.name, v, serr))
		}
		*e.dst(&b) = v
	}
	return b, missing, err
}

// cluster is everything a node of a real cluster runs for coffer, minus
// kubelet, which the tests play.
type cluster struct {
	bins binaries
	root string

	logDir, kubeletDir, providerDir, driverSocket string
	adminKubeconfig, cofferKubeconfig             string

	etcdURL    string
	apiURL     string
	caPEM      []byte
	adminToken string
	fakeURL    string
	agentURL   string // the fake Pod Identity agent's credentials URL

	etcd, apiserver, controllerManager, fake, coffer, driver *process
	cofferSync                                               *process // coffer-controller sync, the Secret sync controller
	cofferSyncKubeconfig                                     string
	eventsKubeconfig                                         string // coffer-controller events' (scenario_events_test.go)
	procs                                                    *harness.Group
	closers                                                  []func() // in-process helpers to stop

	kube    kubernetes.Interface
	dyn     dynamic.Interface
	csiConn *grpc.ClientConn
	node    csi.NodeClient

	teardownOnce sync.Once
}

// newCluster prepares a run's directory. Start brings the cluster up;
// teardown stops whatever started, whenever it is called.
func newCluster(bins binaries) (*cluster, error) {
	sweepStaleRuns()
	root, err := os.MkdirTemp("", "coffer-e2e-")
	if err != nil {
		return nil, err
	}
	c := &cluster{
		bins:         bins,
		root:         root,
		logDir:       filepath.Join(root, "logs"),
		kubeletDir:   filepath.Join(root, "kubelet"),
		providerDir:  filepath.Join(root, "providers"),
		driverSocket: filepath.Join(root, "driver", "csi.sock"),
		adminToken:   harness.RandomToken(),
	}
	c.procs = &harness.Group{LogDir: c.logDir}
	// Marks the run as alive for sweepStaleRuns of later runs.
	if err := os.WriteFile(filepath.Join(root, "pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return c, err
	}
	for _, d := range []string{c.logDir, c.kubeletDir, c.providerDir, filepath.Dir(c.driverSocket), c.path("pki"), c.path("etcd")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return c, err
		}
	}
	return c, nil
}

// start starts every component and returns once each is ready.
func (c *cluster) start(ctx context.Context, seed string) error {
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"etcd", c.startEtcd},
		{"kube-apiserver", c.startAPIServer},
		{"cluster objects", c.bootstrap},
		{"Secret sync RBAC", c.bootstrapSecretSync},
		{"change events RBAC", c.bootstrapChangeEvents},
		{"the chart's admission policies", c.applyPolicies},
		{"kube-controller-manager", c.startControllerManager},
		{"AWS fake", func(ctx context.Context) error { return c.startFake(ctx, seed) }},
		{"coffer", c.startCoffer},
		{"coffer-controller sync", c.startCofferSync},
		{"CSI driver", c.startDriver},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("starting %s: %w", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "e2e: %s ready in %s\n", s.name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func (c *cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.root}, elem...)...)
}

func (c *cluster) spawn(name, bin string, env []string, args ...string) (*process, error) {
	return c.procs.Spawn(name, bin, env, args...)
}

// logMarks remembers where each log ended, for logTails after a failure.
func (c *cluster) logMarks() map[string]int64 { return c.procs.Marks() }

// logTailsSince returns the last lines every component logged since marks
// (nil: since it started).
func (c *cluster) logTailsSince(marks map[string]int64, lines int) string {
	return c.procs.LogTailsSince(marks, lines)
}

// teardown stops every process (newest first), unmounts whatever the
// driver left mounted and removes the run's directory; with keepLogs the
// logs stay for inspection. It runs once, whoever calls it first (the end
// of TestMain, a signal, the timeout watchdog).
func (c *cluster) teardown(keepLogs bool) {
	c.teardownOnce.Do(func() {
		if c.csiConn != nil {
			_ = c.csiConn.Close()
		}
		c.procs.StopAll(10 * time.Second)
		for _, f := range c.closers {
			f()
		}
		if err := harness.UnmountUnder(c.root); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: cleanup: %v\n", err)
		}
		if !keepLogs {
			_ = os.RemoveAll(c.root)
			return
		}
		entries, _ := os.ReadDir(c.root)
		for _, e := range entries {
			if e.Name() != "logs" {
				_ = os.RemoveAll(filepath.Join(c.root, e.Name()))
			}
		}
		fmt.Fprintf(os.Stderr, "e2e: logs kept in %s\n", c.logDir)
	})
}

// poll calls fn until it succeeds or timeout passes, returning its last
// error.
func poll(ctx context.Context, timeout time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// process is one component, run by the shared harness.
type process = harness.Process
