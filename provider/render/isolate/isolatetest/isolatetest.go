// Package isolatetest runs a test binary as an evaluator worker whose
// accounting can be switched off, so tests of the pool
// (provider/render/isolate) and of the whole stack (tests/socket) show the
// backstop holding where the budgets would not.
package isolatetest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/render/isolate"
)

// workerEnv makes the test binary a worker (ServeIfWorker).
const workerEnv = "COFFER_ISOLATE_TEST_WORKER"

// Expressions the hostile worker evaluates with no accounting at all, as an
// evaluation the budgets underestimate would (each a valid jmesPath
// identifier, so a class can name it): allocate without bound, spin,
// recurse, exit, or answer past the output limit.
const (
	Alloc = "hostile_alloc"
	Spin  = "hostile_spin"
	Stack = "hostile_stack"
	Exit  = "hostile_exit"
	Large = "hostile_large"
)

// ServeIfWorker serves as a hostile worker and exits when the test binary
// was started as one (by a pool from NewPool); otherwise it returns. Call
// it first in TestMain.
func ServeIfWorker() {
	if os.Getenv(workerEnv) != "1" {
		return
	}
	if err := isolate.Serve(os.Stdin, os.Stdout, hostile()); err != nil {
		os.Exit(3)
	}
	os.Exit(0)
}

// Worker is the command and environment (isolate.Config's Command and
// Env) that start this test binary as a hostile worker (ServeIfWorker).
func Worker() (command, env []string) {
	return []string{os.Args[0]}, []string{workerEnv + "=1"}
}

// NewPool is a pool whose workers are this test binary, serving hostile
// jobs (see ServeIfWorker), closed when the test ends.
func NewPool(t testing.TB, cfg isolate.Config) *isolate.Pool {
	t.Helper()
	cfg.Command, cfg.Env = Worker()
	p := isolate.New(cfg)
	t.Cleanup(p.Close)
	return p
}

// hostile is coffer's own evaluation, except for a job whose first
// jmesPath entry is one of the hostile expressions.
func hostile() isolate.Handler {
	var kept [][]byte // what Alloc holds on to: resident, never freed
	return func(ctx context.Context, job *render.Job) *render.Outcome {
		if job.Extract == nil || len(job.Extract.Entries) == 0 {
			return render.Run(ctx, job)
		}
		switch job.Extract.Entries[0].Expression {
		case Alloc:
			for {
				b := make([]byte, 1<<20)
				for i := range b {
					b[i] = 1 // resident, not just reserved
				}
				kept = append(kept, b)
			}
		case Spin:
			for i := 0; ; i++ {
				_ = strconv.Itoa(i)
			}
		case Stack:
			return recurse(0)
		case Exit:
			os.Exit(7)
		case Large:
			return &render.Outcome{Extract: &render.ExtractOutcome{Files: []render.EntryData{{Data: make([]byte, 8<<20)}}}}
		}
		return render.Run(ctx, job)
	}
}

// recurse recurses until the stack or memory limit ends the worker (the
// bound is never reached).
func recurse(n int) *render.Outcome {
	if n > 1<<40 {
		return nil
	}
	var pad [128]byte
	pad[n%128] = byte(n)
	if out := recurse(n + 1); out != nil || pad[0] == 1 {
		return out
	}
	return nil
}

// PeakRSS is this process's peak resident memory (VmHWM), in bytes.
func PeakRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
