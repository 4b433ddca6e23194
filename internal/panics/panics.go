// Package panics turns a panic in a goroutine coffer starts into an error
// for whoever waits on that goroutine. A bug hit by one pod's mount (or one
// sync) must fail that work only, never the process every pod on the node
// depends on: a panic in a goroutine without a recover ends the process.
package panics

import (
	"errors"
	"runtime/debug"
)

// Error is a recovered panic. Its message says what was being done, never
// the panic's value, which may hold data; Stack is for the log (Go prints
// arguments as raw words, not contents).
type Error struct {
	Doing string
	Stack []byte
}

func (e *Error) Error() string {
	return "internal error in coffer while " + e.Doing + " (a bug; please report it with the provider's log)"
}

// Catch, deferred directly, turns a panic of the function it is deferred in
// into an *Error in *err:
//
//	defer panics.Catch(&err, "fetching")
func Catch(err *error, doing string) {
	if r := recover(); r != nil {
		*err = &Error{Doing: doing, Stack: debug.Stack()}
	}
}

// Stack is the stack of a recovered panic in err's chain, for the log
// ("" when there is none).
func Stack(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return string(pe.Stack)
	}
	return ""
}

// Run calls fn and returns its panic as an *Error (nil when it returns).
func Run(doing string, fn func()) (err error) {
	defer Catch(&err, doing)
	fn()
	return nil
}
