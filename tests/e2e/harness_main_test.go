package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/tests/harness"
)

// env is the cluster every test shares. Tests run one at a time (none calls
// t.Parallel): some change cluster-wide state (the CSIDriver, coffer's
// process).
var env *cluster

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	bins, missing, err := binariesFromEnv()
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: SKIP: %s not set. Run `make e2e` from the repository root: it provisions etcd, "+
			"kube-apiserver, kube-controller-manager and the Secrets Store CSI Driver, builds coffer and the AWS fake, and sets them.\n",
			strings.Join(missing, ", "))
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
		return 1
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: SKIP: the suite must run as root: the CSI driver mounts a tmpfs for every volume, as it does on a node. "+
			"Run `sudo make e2e` (CI runs as root).")
		return 0
	}

	ctx := context.Background()
	start := time.Now()
	if env, err = newCluster(bins); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
		if env != nil {
			env.teardown(false)
		}
		return 1
	}
	// Whatever ends the run, nothing may be left running or mounted.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\ne2e: %v: stopping the cluster\n", s)
		env.teardown(false)
		os.Exit(2)
	}()
	if d := harness.TestTimeout(); d > 0 {
		// go test's own timeout panics without running any cleanup: stop
		// the cluster a little before it fires.
		margin := min(30*time.Second, d/10)
		t := time.AfterFunc(d-margin, func() {
			fmt.Fprintf(os.Stderr, "\ne2e: FAIL: the suite is about to exceed -timeout %s; component logs:\n%s", d, env.logTailsSince(nil, 60))
			env.teardown(true)
			os.Exit(1)
		})
		defer t.Stop()
	}
	if err := env.start(ctx, fakeSeed()); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\ncomponent logs:\n%s", err, env.logTailsSince(nil, 40))
		env.teardown(true)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: cluster up in %s (dir %s)\n", time.Since(start).Round(time.Millisecond), env.root)

	code := m.Run()
	if leaks := env.secretValuesInLogs(); leaks != "" {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: secret values appear in component logs:\n%s", leaks)
		code = 1
	}
	env.teardown(code != 0)
	fmt.Fprintf(os.Stderr, "e2e: total %s\n", time.Since(start).Round(time.Millisecond))
	return code
}
