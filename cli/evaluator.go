package cli

import (
	"errors"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/render/isolate"
	"github.com/coffer-csi/coffer/wiring"
)

// registerEvaluator registers the flags of the worker processes that
// evaluate classes' jmesPath and templates (provider/render/isolate), for serve,
// sync and mount.
func registerEvaluator(fs *pflag.FlagSet, e *wiring.Evaluator, d wiring.Evaluator) {
	fs.IntVar(&e.Workers, "evaluator-workers", d.Workers, "worker processes that evaluate jmesPath and templates, each one evaluation at a time; one namespace holds at most all but one (0: evaluate in this process, without the memory backstop)")
	fs.Int64Var(&e.MemoryBytes, "evaluator-memory-bytes", d.MemoryBytes, "memory one evaluator worker may allocate; the kernel ends a worker past it and only its evaluation fails")
	fs.DurationVar(&e.Timeout, "evaluator-timeout", d.Timeout, "longest one evaluation (one object's jmesPath, or a class's or Secret's templates) may run, within the mount's deadline")
}

func validateEvaluator(e wiring.Evaluator) []error {
	var errs []error
	if e.Workers < 0 {
		errs = append(errs, errors.New("--evaluator-workers must not be negative"))
	}
	if e.MemoryBytes < 16<<20 {
		errs = append(errs, errors.New("--evaluator-memory-bytes must be at least 16777216 (16 MiB): a worker needs that much to evaluate anything"))
	}
	if e.Timeout <= 0 {
		errs = append(errs, errors.New("--evaluator-timeout must be positive"))
	}
	return errs
}

// limitMemory sets the Go runtime's soft memory limit of a long-running
// command from the container's memory limit (the cgroup's memory.max, or
// GOMEMLIMIT, which the chart sets to the container's limit): 90% of what
// the evaluator workers, which share the container, leave. The collector
// then works harder as the limit nears instead of the kernel killing the
// container. It only ever lowers the limit.
func limitMemory(e wiring.Evaluator, log *slog.Logger) {
	container := cgroupMemoryMax()
	if current := debug.SetMemoryLimit(-1); current != mathMaxInt64 && (container == 0 || current < container) {
		container = current // GOMEMLIMIT
	}
	if container <= 0 {
		return
	}
	if own := softLimit(container, e.Workers, e.MemoryBytes); own < debug.SetMemoryLimit(-1) {
		debug.SetMemoryLimit(own)
		log.Info("memory limit", "containerBytes", container, "evaluatorWorkers", e.Workers, "goMemLimitBytes", own)
	}
}

// softLimit is coffer's own share of a container's memory: 90% of what
// the workers leave (each its limit plus its runtime), and never less than
// a quarter of the container (a misconfigured pool must not starve coffer
// into collecting constantly).
func softLimit(container int64, workers int, memory int64) int64 {
	reserved := int64(workers) * (memory + workerOverhead)
	return max(container-reserved, container/4) / 10 * 9
}

const mathMaxInt64 = 1<<63 - 1

// workerOverhead is a worker's memory besides what it may allocate: the
// Go runtime and coffer's own packages, about 30 MiB resident at start.
const workerOverhead = 32 << 20

// cgroupMemoryMax is the memory limit of this process's cgroup (v2, or
// v1), or 0 when there is none or it cannot be read.
func cgroupMemoryMax() int64 {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 { // "max", or v1's "unlimited" huge number
			return 0
		}
		return n
	}
	return 0
}

// newEvaluatorCommand is the hidden worker command the evaluator pool
// starts (this binary, re-executed): it reads jobs on stdin and answers on
// stdout, within the memory limit the pool gives it.
func newEvaluatorCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "evaluator",
		Short:  "Evaluate jmesPath and templates for the provider (internal; started by coffer itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return failed(isolate.Serve(os.Stdin, os.Stdout, render.Run))
		},
	}
}
