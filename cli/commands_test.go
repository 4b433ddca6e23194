package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/internal/version"
)

var subcommands = []string{"serve", "validate", "mount", "convert", "version", "completion", "help"}

// TestHelpListsSubcommands: "coffer", "coffer --help" and "coffer help"
// print the same overview on stdout, and "coffer" alone starts nothing
// (it used to start the server and fail outside a cluster).
func TestHelpListsSubcommands(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, args := range [][]string{nil, {"--help"}, {"-h"}, {"help"}} {
		t.Run(strings.Join(append([]string{"coffer"}, args...), " "), func(t *testing.T) {
			code, stdout, stderr := run(t, args...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for _, c := range subcommands {
				if !regexp.MustCompile(`(?m)^  ` + c + ` +\S`).MatchString(stdout) {
					t.Errorf("help does not list %q:\n%s", c, stdout)
				}
			}
		})
	}
}

// TestSubcommandHelp: every subcommand has --help with examples, and flags
// are shown the POSIX way, --cache-ttl, as docs/cli.md writes them.
func TestSubcommandHelp(t *testing.T) {
	singleDash := regexp.MustCompile(`(?m)^\s+-[a-z][a-z-]+`)
	tests := map[string][]string{
		"serve":    {"Examples:", "coffer serve --provider-dir", "--cache-ttl duration", "--provider-name string", "--insecure-node-credentials"},
		"sync":     {"Examples:", "coffer-controller sync --kubeconfig", "--leader-elect ", "--token-ttl duration"},
		"validate": {"Examples:", "coffer validate secretproviderclass.yaml", "--region string"},
		"mount":    {"Examples:", "coffer mount --spc", "--set stringArray", "--timeout duration"},
		"convert":  {"Examples:", "coffer convert -f externalsecret.yaml", "--service-account string", "DROPPED <kind>/<name> <field>", "2 when any"},
	}
	for cmd, want := range tests {
		t.Run(cmd, func(t *testing.T) {
			code, stdout, stderr := runBinary(t, cmd, "--help")
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for _, w := range want {
				if !strings.Contains(stdout, w) {
					t.Errorf("coffer %s --help lacks %q:\n%s", cmd, w, stdout)
				}
			}
			if m := singleDash.FindString(stdout); m != "" {
				t.Errorf("coffer %s --help shows a single-dash flag %q", cmd, m)
			}
		})
	}
}

// TestCommandLineErrors: a wrong command line exits 2 with a message naming
// the command and the mistake, and where to find the usage.
func TestCommandLineErrors(t *testing.T) {
	tests := map[string]struct {
		args []string
		want []string
	}{
		"unknown flag":             {[]string{"serve", "--cache-tll=1m"}, []string{"coffer serve: unknown flag: --cache-tll", "Run 'coffer serve --help' for usage."}},
		"single-dash long flag":    {[]string{"serve", "-cache-ttl=1m"}, []string{"coffer serve: unknown shorthand flag: 'c' in -cache-ttl=1m"}},
		"bad value":                {[]string{"serve", "--cache-ttl=soon"}, []string{`coffer serve: invalid argument "soon" for "--cache-ttl" flag`}},
		"unknown command":          {[]string{"frobnicate"}, []string{`coffer: unknown command "frobnicate"`, "Run 'coffer --help' for usage."}},
		"misspelt command":         {[]string{"serv"}, []string{`unknown command "serv" (did you mean "serve"?)`}},
		"serve flag without serve": {[]string{"--provider-dir=/tmp"}, []string{"unknown flag: --provider-dir: it is a flag of serve; start the server with coffer serve [flags]"}},
		"other flag at the root":   {[]string{"--nope"}, []string{"coffer: unknown flag: --nope\n"}},
		"argument to serve":        {[]string{"serve", "extra"}, []string{`coffer serve: unknown command "extra"`}},
		"validate without files":   {[]string{"validate"}, []string{"coffer validate: name at least one FILE to check"}},
		"mount without its flags":  {[]string{"mount"}, []string{`coffer mount: required flag(s) "out", "spc" not set`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}

// TestVersion: both binaries' roots print the bare version for --version
// and "version", and their help without a subcommand.
func TestVersion(t *testing.T) {
	old := version.Version
	version.Version = "v9.8.7-test"
	t.Cleanup(func() { version.Version = old })
	for _, bin := range []struct {
		name string
		run  func(*testing.T, ...string) (int, string, string)
	}{{"coffer", run}, {"coffer-controller", runController}} {
		for _, args := range [][]string{{"--version"}, {"version"}} {
			code, stdout, stderr := bin.run(t, args...)
			if code != 0 || stdout != "v9.8.7-test\n" || stderr != "" {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", bin.name, args[0], code, stdout, stderr)
			}
		}
		if code, stdout, stderr := bin.run(t); code != 0 || !strings.Contains(stdout, "Usage:\n  "+bin.name+" [flags]") || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want its help", bin.name, code, stdout, stderr)
		}
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_coffer", "zsh": "#compdef coffer", "fish": "complete -c coffer"} {
		code, stdout, stderr := run(t, "completion", shell)
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("coffer completion %s: exit %d, stderr %q, script lacks %q", shell, code, stderr, want)
		}
	}
	// The completion itself: cobra's hidden __complete command lists the
	// subcommands and the flags of serve.
	_, stdout, _ := run(t, "__complete", "serve", "--cache-")
	if !strings.Contains(stdout, "--cache-ttl") || !strings.Contains(stdout, "--cache-max-bytes") {
		t.Errorf("completing serve --cache-: %q", stdout)
	}
}
