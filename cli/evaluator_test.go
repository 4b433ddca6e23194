package cli

import (
	"strings"
	"testing"
)

func TestEvaluatorFlags(t *testing.T) {
	tests := map[string]struct {
		args []string
		code int
		want string
	}{
		"serve lists them":         {args: []string{"serve", "-h"}, code: 0, want: "--evaluator-memory-bytes"},
		"sync lists them":          {args: []string{"sync", "-h"}, code: 0, want: "--evaluator-workers"},
		"mount lists them":         {args: []string{"mount", "-h"}, code: 0, want: "--evaluator-timeout"},
		"serve, tiny memory":       {args: []string{"serve", "--evaluator-memory-bytes=1024"}, code: 1, want: "--evaluator-memory-bytes must be at least 16777216"},
		"sync, negative":           {args: []string{"sync", "--evaluator-workers=-1"}, code: 1, want: "--evaluator-workers must not be negative"},
		"mount, no time":           {args: []string{"mount", "--spc=x", "--out=y", "--evaluator-timeout=0s"}, code: 1, want: "--evaluator-timeout must be positive"},
		"the worker needs a limit": {args: []string{"evaluator"}, code: 1, want: "COFFER_EVALUATOR_MEMORY must be a positive number of bytes"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			t.Setenv("COFFER_EVALUATOR_MEMORY", "")
			code, stdout, stderr := runBinary(t, tc.args...)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Errorf("exit %d, want %d; output %q does not contain %q", code, tc.code, stdout+stderr, tc.want)
			}
		})
	}
}

// TestEvaluatorIsHidden: the worker command is coffer's own, not the
// user's.
func TestEvaluatorIsHidden(t *testing.T) {
	_, out, _ := run(t, "help")
	if strings.Contains(out, "evaluator") {
		t.Errorf("help lists the evaluator command:\n%s", out)
	}
}

func TestSoftLimit(t *testing.T) {
	const mi = 1 << 20
	tests := []struct {
		container int64
		workers   int
		memory    int64
		want      int64
	}{
		{384 * mi, 2, 40 * mi, (384 - 2*72) * mi / 10 * 9}, // the chart's
		{256 * mi, 0, 40 * mi, 256 * mi / 10 * 9},
		{128 * mi, 4, 64 * mi, 32 * mi / 10 * 9}, // workers take it all: a quarter is left
	}
	for _, tc := range tests {
		if got := softLimit(tc.container, tc.workers, tc.memory); got != tc.want {
			t.Errorf("softLimit(%d MiB, %d, %d MiB) = %d, want %d", tc.container/mi, tc.workers, tc.memory/mi, got, tc.want)
		}
	}
}
