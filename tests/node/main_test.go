package node

import (
	"context"
	"errors"
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

// env is the node every test uses. Tests run one at a time.
var env *cluster

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	bins, missing, err := binariesFromEnv()
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "node: SKIP: %s not set. Run `make node-test` from the repository root (as root): "+
			"it provisions every part of the node, builds the images and sets them.\n", strings.Join(missing, ", "))
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "node: FAIL: %v\n", err)
		return 1
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "node: SKIP: the node tier must run as root (kubelet, containerd, mounts, network namespaces). Run `sudo make node-test`.")
		return 0
	}
	if os.Getenv(envInner) == "" {
		return supervise()
	}

	start := time.Now()
	env = newCluster(bins, os.Getenv(envRoot))
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\nnode: %v: stopping the node\n", s)
		env.teardown()
		os.Exit(2)
	}()
	if d := harness.TestTimeout(); d > 0 {
		margin := min(45*time.Second, d/10)
		t := time.AfterFunc(d-margin, func() {
			fmt.Fprintf(os.Stderr, "\nnode: FAIL: about to exceed -timeout %s; component logs:\n%s", d, env.g.LogTailsSince(nil, 40))
			env.teardown()
			os.Exit(1)
		})
		defer t.Stop()
	}
	if err := env.start(context.Background()); err != nil {
		var se *startError
		if errors.As(err, &se) {
			fmt.Fprintf(os.Stderr, "node: FAIL: %s did not start: %v\n", se.component, se.err)
			if se.log != "" {
				fmt.Fprintf(os.Stderr, "----- %s: last lines of its log -----\n%s\n", se.component, se.log)
			}
		} else {
			fmt.Fprintf(os.Stderr, "node: FAIL: %v\n", err)
		}
		fmt.Fprintf(os.Stderr, "node: rerun one scenario with: %s\n", rerunHint("TestReadFiles"))
		env.teardown()
		return 1
	}
	fmt.Fprintf(os.Stderr, "node: node up in %s (dir %s)\n", time.Since(start).Round(time.Millisecond), env.root)
	code := m.Run()
	if leaks := env.secretValuesInLogs(); leaks != "" {
		fmt.Fprintf(os.Stderr, "node: FAIL: secret values appear in component logs:\n%s", leaks)
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "node: rerun one scenario with: %s (a failed test's name from above)\n", rerunHint("TestReadFiles"))
	}
	env.teardown()
	fmt.Fprintf(os.Stderr, "node: total %s\n", time.Since(start).Round(time.Millisecond))
	return code
}

func rerunHint(test string) string {
	return fmt.Sprintf("sudo make node-test NODE_RUN='^%s$'", test)
}
