// Package docs holds the user documentation; its tests keep it honest: every
// test a security claim names must exist, every link and anchor resolves,
// and the flag and Helm value tables match the commands and values.yaml.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// packages maps the names used in security.md to directories.
var packages = map[string]string{
	"auth": "../auth", "changes": "../provider/changes", "changefeed": "../changefeed", "spc": "../provider/spc", "fetch": "../provider/fetch", "render": "../provider/render",
	"server": "../provider/server", "cache": "../provider/cache", "awsapi": "../provider/awsapi",
	"cli": "../cli", "isolate": "../provider/render/isolate", "secretsync": "../secretsync", "e2e": "../tests/e2e", "fuzz": "..",
	"jmes": "../internal/jmes", "flight": "../internal/flight", "panics": "../internal/panics", "provider": "../provider",
	"deploy": "../tests/deploy", "socket": "../tests/socket",
	"rotationevent": "../provider/rotationevent", "restart": "../secretsync/restart", "kube": "../internal/kube",
	"tmpl": "../internal/tmpl", "yamlcheck": "../internal/yamlcheck",
}

func TestSecurityClaimsNameRealTests(t *testing.T) {
	doc, err := os.ReadFile("security.md")
	if err != nil {
		t.Fatal(err)
	}
	// \s+: a reference may wrap onto the next line.
	refs := regexp.MustCompile("`(\\w+):\\s+((?:Test|Fuzz)\\w+)").FindAllStringSubmatch(string(doc), -1)
	if len(refs) < 30 {
		t.Fatalf("only %d test references found", len(refs))
	}
	for _, ref := range refs {
		pkg, name := ref[1], ref[2]
		dir, ok := packages[pkg]
		if !ok {
			t.Errorf("unknown package %q in `%s: %s`", pkg, pkg, name)
			continue
		}
		if !defined(t, dir, "func "+name+"(") {
			t.Errorf("security.md names %s: %s, which does not exist", pkg, name)
		}
	}
}

func defined(t *testing.T, dir, decl string) bool {
	found := false
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || found {
			return nil
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != dir {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err == nil && strings.Contains(string(b), decl) {
				found = true
			}
		}
		return nil
	})
	return found
}

// TestLayoutListsEveryPackage: CONTRIBUTING.md's Layout table names every
// directory of Go code down to two levels (cmd/coffer, provider/spc, ...).
func TestLayoutListsEveryPackage(t *testing.T) {
	contributing, err := os.ReadFile("../CONTRIBUTING.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(contributing), "\n## Layout\n")
	if !ok {
		t.Fatal(`CONTRIBUTING.md has no "## Layout" section`)
	}
	layout, _, _ = strings.Cut(layout, "\n## ")
	listed := map[string]bool{}
	for _, line := range strings.Split(layout, "\n") {
		if cells := strings.Split(line, "|"); len(cells) > 2 {
			for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cells[1], -1) {
				listed[strings.TrimSuffix(m[1], "/")] = true
			}
		}
	}
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" || rel == "bin" || strings.Count(rel, "/") > 1) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			if dir := filepath.Dir(rel); dir != "." && !listed[dir] {
				t.Errorf("CONTRIBUTING.md's Layout table does not list %s", dir)
				listed[dir] = true // once
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMakeFuzzExploresEveryTarget: make fuzz explores every fuzz target in
// the module, and make test runs no exploration (so the same commit always
// gives the same answer; the corpora run as ordinary tests).
func TestMakeFuzzExploresEveryTarget(t *testing.T) {
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(Fuzz\w+):\./`).FindAllStringSubmatch(string(makefile), -1) {
		listed[m[1]] = true
	}
	found := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != ".." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "tests" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`).FindAllStringSubmatch(string(src), -1) {
			found++
			if !listed[m[1]] {
				t.Errorf("%s (%s) is not in the Makefile's FUZZ_TARGETS", m[1], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("no fuzz targets found")
	}
	test := regexp.MustCompile(`(?m)^test:(.*)$`).FindSubmatch(makefile)
	if test == nil || strings.Contains(string(test[1]), "fuzz") {
		t.Errorf("make test must not explore: its prerequisites are %q", test)
	}
}
