package cli

import (
	"context"
	"os"
	"testing"
)

// TestMain lets the test binary serve as the evaluator worker that coffer
// mount, serve and sync re-execute (/proc/self/exe evaluator), as the
// coffer binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "evaluator" {
		os.Exit(Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
