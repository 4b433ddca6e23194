// Package cli implements coffer's subcommands (cobra commands, pflag flags:
// commands.go). Each registers its flags into a config, wires the parts
// once, and returns an error: nothing below Run exits the process.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/coffer-csi/coffer/secretsync"
)

// Run runs the subcommand named by args and returns the process exit code:
// 0, 1 when the command failed, 2 when the command line is wrong (unknown
// command or flag, missing argument).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return execute(ctx, newRootCommand(stdout, stderr), args, stderr)
}

// ControllerParts are what the sync command takes from the controller
// binary (cli/controller): client-go's Lease election and event recorder,
// which link every API group's scheme and so stay out of the node's
// binary.
type ControllerParts struct {
	// Elect runs fn while this process holds the Lease e names. It returns
	// nil when ctx ends (the Lease released), fn's error, or an error when
	// the Lease is lost, after fn has returned.
	Elect func(ctx context.Context, rc *rest.Config, e Election, fn func(context.Context) error, log *slog.Logger) error
	// Events returns the recorder of the controller's events, and stop,
	// which ends it (events still queued then may be dropped).
	Events func(rc *rest.Config, scheme *runtime.Scheme, source corev1.EventSource, log *slog.Logger) (rec secretsync.EventRecorder, stop func(), err error)
	// Consumer builds coffer-controller events' consumer and returns its
	// run. It holds the changefeed package and the AWS SDK's SQS client,
	// which the node's binary leaves out: their packages' state costs
	// memory in every DaemonSet pod (bench S1).
	Consumer func(ctx context.Context, c ConsumerConfig) (run func(context.Context) error, err error)
}

// RunController runs the controller binary's subcommand named by args, as
// Run does the node's.
func RunController(ctx context.Context, args []string, stdout, stderr io.Writer, parts ControllerParts) int {
	return execute(ctx, newControllerRootCommand(stdout, stderr, parts), args, stderr)
}

func execute(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var cmdErr *commandError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &cmdErr):
		fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), cmdErr.err)
		if cmdErr.code != 0 {
			return cmdErr.code
		}
		return 1
	default:
		// Everything else comes from parsing the command line.
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
		return 2
	}
}

// commandError marks the errors of a command's own work, so that Run tells
// them from the command-line errors cobra and pflag return. code is the
// exit status when not 1 (coffer convert exits 2 when it dropped fields).
type commandError struct {
	err  error
	code int
}

func (e *commandError) Error() string { return e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// failed marks err, if any, as the command's own failure.
func failed(err error) error {
	if err == nil {
		return nil
	}
	return &commandError{err: err}
}

// logFlags are the logging flags every long-running command shares.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", l.format)
}

// encodeAttributes renders attributes as the driver does: a JSON object.
func encodeAttributes(attrs map[string]string) string {
	b, err := json.Marshal(attrs)
	if err != nil {
		panic(err) // a map of strings always encodes
	}
	return string(b)
}
