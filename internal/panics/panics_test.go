package panics

import (
	"errors"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	const canary = "CANARY-panic-1a"
	err := Run("testing", func() { panic(canary) })
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "internal error in coffer while testing") || len(pe.Stack) == 0 {
		t.Fatalf("Run = %v, want an *Error with a stack", err)
	}
	if strings.Contains(err.Error(), canary) {
		t.Errorf("error holds the panic's value: %v", err)
	}
	if err := Run("testing", func() {}); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}
