// Package docs holds the user documentation; its test keeps the security
// model honest: every test a claim names must exist.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// packages maps the names used in security.md to directories.
var packages = map[string]string{
	"auth": "../auth", "spc": "../provider/spc", "fetch": "../provider/fetch", "render": "../provider/render",
	"server": "../provider/server", "cache": "../provider/cache", "awsapi": "../provider/awsapi",
	"cli": "../internal/cli", "secretsync": "../secretsync", "e2e": "../tests/e2e", "fuzz": "..",
	"deploy": "../tests/deploy",
}

func TestSecurityClaimsNameRealTests(t *testing.T) {
	doc, err := os.ReadFile("security.md")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile("`(\\w+): ((?:Test|Fuzz)\\w+)").FindAllStringSubmatch(string(doc), -1)
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
