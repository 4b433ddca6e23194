// Package scripts_test runs the repository's scripts as a user would.
package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildDemo builds coffer and the AWS fake into a temporary directory, as
// make build would into ./bin.
func buildDemo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, pkg := range []string{"./cmd/coffer", "./tests/fakeaws/cmd/fakeaws"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir
}

// demoEnv is the environment without NO_COLOR and TERM, plus extra.
func demoEnv(bin, out string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NO_COLOR=") && !strings.HasPrefix(kv, "TERM=") {
			env = append(env, kv)
		}
	}
	return append(append(env, "DEMO_BIN="+bin, "DEMO_OUT="+out), extra...)
}

// TestDemo runs make demo's script as a user would, in a pipe and on a
// terminal.
func TestDemo(t *testing.T) {
	bin := buildDemo(t)
	t.Run("in a pipe", func(t *testing.T) { demoInAPipe(t, bin) })
	t.Run("on a terminal", func(t *testing.T) { demoOnATerminal(t, bin) })
}

// demoInAPipe: with its output in a pipe the demo succeeds, prints no ANSI
// escape (a pipe or log is not a terminal), has a heading that says what
// the broken example shows, and explains its call count.
func demoInAPipe(t *testing.T, bin string) {
	cmd := exec.Command("bash", "scripts/demo.sh")
	cmd.Dir = ".."
	cmd.Env = demoEnv(bin, filepath.Join(t.TempDir(), "out"), "TERM=xterm-256color")
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("the demo printed an ANSI escape into a pipe:\n%q", out)
	}
	for _, want := range []string{
		"ok, 8 objects, 12 files",
		"== coffer validate lists every mistake at once: a misspelt key (leaving objectType unset), a bad file mode, an alias escaping the mount",
		"4 problem(s)",
		"/.pgpass db.prod.internal.example:5432:*:app:s3cr3t-demo",
		`did you mean "objectType"?`,
		`field "objectType": is required`,
		`"999" is not a file permission`,
		`"../escape" becomes the file path ".._escape"`,
		"12 files written",
		"=> 3 AWS calls for 8 objects (12 files); one call per object would be 8, and the AWS provider makes 5 (4 GetSecretValue, 1 GetParameters) plus an STS call",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
}

// demoOnATerminal runs the script on a pseudo-terminal (script(1), when
// installed): bold headings there, none with NO_COLOR or a dumb terminal.
func demoOnATerminal(t *testing.T, bin string) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) is not installed: no pseudo-terminal to run the demo on")
	}
	for _, tc := range []struct {
		env  []string
		bold bool
	}{
		{[]string{"TERM=xterm-256color"}, true},
		{[]string{"TERM=xterm-256color", "NO_COLOR=1"}, false},
		{[]string{"TERM=dumb"}, false},
	} {
		cmd := exec.Command("script", "-q", "-e", "-c", "bash scripts/demo.sh", "/dev/null")
		cmd.Dir = ".."
		cmd.Env = demoEnv(bin, filepath.Join(t.TempDir(), "out"), tc.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: demo.sh on a terminal: %v\n%s", tc.env, err, out)
		}
		if got := strings.Contains(string(out), "\x1b[1m== "); got != tc.bold {
			t.Errorf("%v: bold headings %v, want %v", tc.env, got, tc.bold)
		}
	}
}
