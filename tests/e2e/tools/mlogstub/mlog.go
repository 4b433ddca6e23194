// Package mlog is a local stand-in for monis.app/mlog, which the Secrets
// Store CSI Driver imports but the Go module proxy here does not serve. It
// provides the few names the driver's main uses, over klog.
package mlog

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"

	"k8s.io/klog/v2"
)

// LogFormat selects text or JSON output; the stand-in writes klog text.
type LogFormat string

const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

// Setup returns the function that flushes logs at exit.
func Setup() func() { return klog.Flush }

// ValidateAndSetKlogLevelAndFormatGlobally applies the verbosity level.
func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, level klog.Level, _ LogFormat) error {
	if level < 0 {
		return fmt.Errorf("invalid log level %d", level)
	}
	if f := flag.Lookup("v"); f != nil {
		return f.Value.Set(strconv.Itoa(int(level)))
	}
	return nil
}

// Error logs an error with a message.
func Error(msg string, err error, keysAndValues ...any) { klog.ErrorS(err, msg, keysAndValues...) }

// Fatal logs err and exits.
func Fatal(err error, keysAndValues ...any) {
	klog.ErrorS(err, "fatal", keysAndValues...)
	klog.Flush()
	os.Exit(1)
}
