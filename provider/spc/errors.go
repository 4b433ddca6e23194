package spc

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a SecretProviderClass. Where names the
// object ("objects[2] (prod/db)") or "parameters" for top-level keys, Field is
// the key at fault, and Message says what is wrong and how to fix it.
//
// Problems never carry secret values: parameters hold names and settings only.
type Problem struct {
	Where   string
	Field   string
	Message string
}

func (p Problem) String() string {
	switch {
	case p.Where == "" && p.Field == "":
		return p.Message
	case p.Field == "":
		return p.Where + ": " + p.Message
	default:
		return fmt.Sprintf("%s: field %q: %s", p.Where, p.Field, p.Message)
	}
}

// ValidationError lists every problem found in one SecretProviderClass, so a
// user fixes them all in one round instead of one per pod restart.
type ValidationError struct {
	// Source names what was validated: the SecretProviderClass name when the
	// driver sent it, or a file name for the CLI.
	Source   string
	Problems []Problem
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
	for i, p := range e.Problems {
		fmt.Fprintf(&b, " (%d) %s;", i+1, p)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// problems collects Problems while parsing.
type problems struct {
	list []Problem
}

func (ps *problems) add(where, field, format string, args ...any) {
	ps.list = append(ps.list, Problem{Where: where, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (ps *problems) err(source string) error {
	if len(ps.list) == 0 {
		return nil
	}
	return &ValidationError{Source: source, Problems: ps.list}
}
