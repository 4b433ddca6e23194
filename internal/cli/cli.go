// Package cli implements coffer's subcommands. Each parses its own flags
// into a config, wires the parts once, and returns an error: nothing below
// Run exits the process.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/coffer-csi/coffer/internal/version"
)

const usage = `coffer: AWS Secrets Manager and Parameter Store for the Secrets Store CSI Driver

Usage:
  coffer [serve] [flags]          serve the provider on its Unix socket (default)
  coffer validate FILE...         check SecretProviderClass manifests or parameter files
  coffer mount --spc FILE --out DIR
                                  fetch with your local AWS credentials and write the files
  coffer sync [flags]             sync the Kubernetes Secrets SecretProviderClasses declare
                                  (syncSecrets), without pods
  coffer version                  print the version

Run "coffer COMMAND -h" for a command's flags.
`

// errUsage marks errors already explained by the flag package.
var errUsage = errors.New("usage")

// Run runs the subcommand named by args and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, args, stderr)
	case "validate":
		err = runValidate(args, stdout, stderr)
	case "mount":
		err = runMount(ctx, args, stdout, stderr)
	case "sync":
		err = runSync(ctx, args, stderr)
	case "version":
		fmt.Fprintln(stdout, version.Version)
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "coffer: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "coffer %s: %v\n", cmd, err)
		return 1
	}
}

// newFlagSet returns a flag set that reports errors to stderr and returns
// them rather than exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("coffer "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// logFlags are the logging flags every long-running command shares.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) register(fs *flag.FlagSet) {
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
