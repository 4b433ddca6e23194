package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/cli"
)

// pages are the Markdown files whose links are checked: the README,
// CONTRIBUTING.md and every page under docs/.
func pages(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no pages under docs/: %v", err)
	}
	return append([]string{"../README.md", "../CONTRIBUTING.md"}, docs...)
}

// prose is a page's text outside fenced code blocks, line by line.
func prose(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	fence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fence = !fence
			continue
		}
		if !fence {
			lines = append(lines, line)
		}
	}
	return lines
}

var (
	headingPattern = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	linkPattern    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	codeSpan       = regexp.MustCompile("`[^`]*`")
)

// anchor is GitHub's anchor of a heading: lowercase, spaces to '-', every
// punctuation character but '-' and '_' dropped.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		"Rotation: events and restarts":                "rotation-events-and-restarts",
		"Kubernetes Secrets (`syncSecrets`)":           "kubernetes-secrets-syncsecrets",
		"Without pods: `coffer-controller sync`":       "without-pods-coffer-controller-sync",
		"`coffer serve` flags":                         "coffer-serve-flags",
		"Hostile tenants, and what the resources hold": "hostile-tenants-and-what-the-resources-hold",
		"1. The driver, with ServiceAccount tokens":    "1-the-driver-with-serviceaccount-tokens",
	} {
		if got := anchor(heading); got != want {
			t.Errorf("anchor(%q) = %q, want %q", heading, got, want)
		}
	}
}

// anchors are the anchors of a page's headings; a repeated heading gets
// -1, -2, ... as on GitHub.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	seen := map[string]int{}
	out := map[string]bool{}
	for _, line := range prose(t, path) {
		m := headingPattern.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a := anchor(m[1])
		if n := seen[a]; n > 0 {
			out[a+"-"+strconv.Itoa(n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// TestLinksResolve: every relative link in the README, CONTRIBUTING.md and
// docs/*.md names a file that exists, and every #anchor a heading of that
// file.
func TestLinksResolve(t *testing.T) {
	headings := map[string]map[string]bool{}
	checked := 0
	for _, page := range pages(t) {
		for n, line := range prose(t, page) {
			for _, m := range linkPattern.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, "``"), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				path, frag, _ := strings.Cut(target, "#")
				file := page
				if path != "" {
					file = filepath.Join(filepath.Dir(page), path)
					if _, err := os.Stat(file); err != nil {
						t.Errorf("%s, prose line %d: the link %s names no file (%v)", page, n+1, target, err)
						continue
					}
				}
				if frag == "" {
					continue
				}
				if !strings.HasSuffix(file, ".md") {
					t.Errorf("%s, prose line %d: the link %s has an anchor into a file that is not Markdown", page, n+1, target)
					continue
				}
				if headings[file] == nil {
					headings[file] = anchors(t, file)
				}
				if !headings[file][frag] {
					t.Errorf("%s, prose line %d: the link %s names no heading of %s", page, n+1, target, file)
				}
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d relative links found", checked)
	}
}

// TestEveryPageLinkedFromReadme: a newcomer reaches every page under docs/
// from the README.
func TestEveryPageLinkedFromReadme(t *testing.T) {
	linked := map[string]bool{}
	for _, line := range prose(t, "../README.md") {
		for _, m := range linkPattern.FindAllStringSubmatch(line, -1) {
			path, _, _ := strings.Cut(m[1], "#")
			linked[filepath.Clean(path)] = true
		}
	}
	docs, _ := filepath.Glob("*.md")
	for _, doc := range docs {
		if !linked[filepath.Join("docs", doc)] {
			t.Errorf("README.md does not link docs/%s", doc)
		}
	}
	if !linked["CONTRIBUTING.md"] {
		t.Error("README.md does not link CONTRIBUTING.md")
	}
}

// TestReadmeInstallFirst: the README shows how to install in its first
// screen, and stays short.
func TestReadmeInstallFirst(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	install := -1
	for i, line := range lines {
		if line == "## Install" {
			install = i
			break
		}
	}
	if install < 0 || install > 40 || !strings.Contains(strings.Join(lines[install:min(install+25, len(lines))], "\n"), "helm install coffer") {
		t.Errorf("README.md's ## Install (line %d) must start in its first screen and show helm install coffer", install+1)
	}
	if len(lines) > 320 {
		t.Errorf("README.md has %d lines; the rest belongs under docs/", len(lines))
	}
}

// table returns the rows of the first Markdown table in the section of
// page under heading, each split into trimmed cells.
func table(t *testing.T, page, heading string) [][]string {
	t.Helper()
	var rows [][]string
	in := false
	for _, line := range prose(t, page) {
		if strings.HasPrefix(line, "#") {
			if in {
				break
			}
			in = strings.TrimSpace(line) == heading
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if len(rows) > 0 {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) < 3 {
		t.Fatalf("%s has no table under %q", page, heading)
	}
	return rows[2:] // no header, no separator
}

var (
	flagName  = regexp.MustCompile("`--([a-z0-9-]+\\*?)`")
	backticks = regexp.MustCompile("`([^`]*)`")
)

// sameDefault: the table's default (as written: 2m, 0, off) is the flag's.
func sameDefault(doc string, f *pflag.Flag) bool {
	def := f.DefValue
	if doc == def {
		return true
	}
	if strings.HasPrefix(doc, "$") { // from the environment: no default of its own
		return def == "" || def == "[]"
	}
	if f.Value.Type() == "duration" {
		a, err1 := time.ParseDuration(doc)
		if doc == "0" {
			a, err1 = 0, nil
		}
		b, err2 := time.ParseDuration(def)
		return err1 == nil && err2 == nil && a == b
	}
	return false
}

// zero: a default the table gives in words (off, all, in-cluster, the
// Kubernetes API's ...) is the flag's zero value.
func zero(f *pflag.Flag) bool {
	switch f.DefValue {
	case "", "false", "0", "0s", "[]":
		return true
	}
	return false
}

// TestFlagTables: every row of the `coffer serve`, `coffer-controller sync`, `coffer-controller events` and `coffer convert` flag
// tables in cli.md names flags the command has, with the defaults it has,
// and every flag of each command is in its table.
func TestFlagTables(t *testing.T) {
	serve := cli.CommandFlags("serve")
	for _, c := range []struct{ command, heading string }{
		{"serve", "## `coffer serve` flags"},
		{"sync", "## `coffer-controller sync` flags"},
		{"events", "## `coffer-controller events` flags"},
		{"convert", "## `coffer convert` flags"},
	} {
		flags := cli.CommandFlags(c.command)
		if flags == nil {
			t.Fatalf("coffer has no command %s", c.command)
		}
		documented := map[string]bool{}
		for _, row := range table(t, "cli.md", c.heading) {
			if len(row) < 3 {
				t.Errorf("%s: a row with %d cells: %v", c.heading, len(row), row)
				continue
			}
			var named []*pflag.Flag
			for _, m := range flagName.FindAllStringSubmatch(row[0], -1) {
				prefix, wildcard := strings.CutSuffix(m[1], "*")
				n := 0
				flags.VisitAll(func(f *pflag.Flag) {
					if f.Name == prefix || wildcard && strings.HasPrefix(f.Name, prefix) {
						named = append(named, f)
						documented[f.Name] = true
						n++
					}
				})
				if n == 0 {
					t.Errorf("%s: coffer %s has no flag --%s", c.heading, c.command, m[1])
				}
			}
			if len(named) == 0 {
				t.Errorf("%s: a row names no flag: %s", c.heading, row[0])
				continue
			}
			def := row[1]
			switch {
			case strings.Contains(def, "as `coffer serve`"):
				for _, f := range named {
					if s := serve.Lookup(f.Name); s == nil || s.DefValue != f.DefValue {
						t.Errorf("%s: --%s is documented as coffer serve's, which differs or is missing", c.heading, f.Name)
					}
				}
			case strings.HasPrefix(def, "`"):
				values := backticks.FindAllStringSubmatch(def, -1)
				if len(values) != len(named) && len(values) != 1 {
					t.Errorf("%s: %s: %d defaults for %d flags", c.heading, row[0], len(values), len(named))
					continue
				}
				for i, f := range named {
					v := values[0][1]
					if len(values) > 1 {
						v = values[i][1]
					}
					if !sameDefault(v, f) {
						t.Errorf("%s: --%s defaults to %q, the table says %q", c.heading, f.Name, f.DefValue, v)
					}
				}
			default:
				for _, f := range named {
					if !zero(f) {
						t.Errorf("%s: --%s defaults to %q, the table says %q", c.heading, f.Name, f.DefValue, def)
					}
				}
			}
		}
		flags.VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && f.Name != "help" && !documented[f.Name] {
				t.Errorf("%s: --%s of coffer %s is missing", c.heading, f.Name, c.command)
			}
		})
	}
}

// TestHelmValuesTable: every value install.md's Helm table names is a key
// of the chart's values.yaml, and every value of values.yaml is in the
// table, by its own name or under a key the table names (`livenessProbe`,
// `awsQuota.*`).
func TestHelmValuesTable(t *testing.T) {
	b, err := os.ReadFile("../deployment/charts/coffer/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	n := 0
	named := map[string]bool{}
	for _, row := range table(t, "install.md", "## 2a. coffer with Helm") {
		for _, m := range backticks.FindAllStringSubmatch(row[0], -1) {
			n++
			key, wildcard := strings.CutSuffix(m[1], ".*")
			named[key] = true
			v, ok := lookup(values, key)
			if !ok {
				t.Errorf("install.md's Helm table names %s, which values.yaml does not have", m[1])
			} else if sub, isMap := v.(map[string]any); wildcard && (!isMap || len(sub) == 0) {
				t.Errorf("install.md's Helm table names %s, but %s has no keys", m[1], key)
			}
		}
	}
	if n < 30 {
		t.Fatalf("only %d values in install.md's Helm table", n)
	}
	for _, key := range leaves(values, "") {
		covered := false
		for k := key; k != "" && !covered; {
			covered = named[k]
			i := strings.LastIndex(k, ".")
			if i < 0 {
				break
			}
			k = k[:i]
		}
		if !covered {
			t.Errorf("values.yaml's %s is not in install.md's Helm table", key)
		}
	}
}

// leaves are the keys (a.b.c) of values whose values are not maps with
// keys, sorted.
func leaves(values map[string]any, prefix string) []string {
	var keys []string
	for k, v := range values {
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			keys = append(keys, leaves(sub, prefix+k+".")...)
		} else {
			keys = append(keys, prefix+k)
		}
	}
	slices.Sort(keys)
	return keys
}

// lookup: the value of key (a.b.c) in values, and whether the key exists
// (its value may be null).
func lookup(values map[string]any, key string) (any, bool) {
	var node any = values
	for _, part := range strings.Split(key, ".") {
		mapping, ok := node.(map[string]any)
		if !ok {
			return nil, false
		}
		if node, ok = mapping[part]; !ok {
			return nil, false
		}
	}
	return node, true
}
