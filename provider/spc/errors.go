package spc

import (
	"fmt"
	"strings"

	"github.com/coffer-csi/coffer/internal/yamlcheck"
)

// ValidationError lists every problem found in one SecretProviderClass, so a
// user fixes them all in one round instead of one per pod restart.
type ValidationError struct {
	// Source names what was validated: the SecretProviderClass name when the
	// driver sent it, or a file name for the CLI.
	Source   string
	Problems []yamlcheck.Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	src := e.Source
	if src == "" {
		src = "SecretProviderClass"
	}
	if len(e.Problems) == 1 {
		fmt.Fprintf(&b, "invalid %s: %s", src, e.Problems[0])
		return b.String()
	}
	fmt.Fprintf(&b, "invalid %s: %d problems:", src, len(e.Problems))
	for i, p := range e.Problems[:min(len(e.Problems), maxListedProblems)] {
		fmt.Fprintf(&b, " (%d) %s;", i+1, p)
	}
	if more := len(e.Problems) - maxListedProblems; more > 0 {
		fmt.Fprintf(&b, " and %d more (coffer validate lists them all);", more)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// maxListedProblems bounds the message of a class with thousands of
// problems (its size is bounded, not its problem count): the message goes
// into the pod's events and the class's status.
const maxListedProblems = 100

// Invalid returns the *ValidationError of the SecretProviderClass named
// class ("" when the driver did not send the name) with problems, or nil
// when there are none.
func Invalid(class string, problems []yamlcheck.Problem) error {
	if len(problems) == 0 {
		return nil
	}
	return &ValidationError{Source: sourceName(class), Problems: problems}
}
