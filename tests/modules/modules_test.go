// Package modules holds the repository-wide check that every Go module in
// the tree requires one version of each dependency.
package modules

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestOneVersionOfEachDependency: the root module and the test modules
// (tests/e2e, tests/deploy, tests/node, ...) build against the same
// client-go, Helm, AWS SDK and every other shared requirement, direct or
// indirect, so a test tier never passes against a library the binary does
// not ship with. `make align-modules` restores it after an upgrade.
func TestOneVersionOfEachDependency(t *testing.T) {
	root := filepath.Join("..", "..")
	mods := goModFiles(t, root)
	if len(mods) < 2 {
		t.Fatalf("found %d go.mod files under %s; the walk is broken", len(mods), root)
	}
	versions := map[string]map[string][]string{} // module path -> version -> go.mod files
	for _, mod := range mods {
		for _, req := range requirements(t, mod) {
			if versions[req.Path] == nil {
				versions[req.Path] = map[string][]string{}
			}
			versions[req.Path][req.Version] = append(versions[req.Path][req.Version], mod)
		}
	}
	if len(versions["k8s.io/client-go"]) == 0 {
		t.Fatal("no go.mod requires k8s.io/client-go; the parse is broken")
	}
	paths := make([]string, 0, len(versions))
	for p := range versions {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if len(versions[p]) < 2 {
			continue
		}
		var lines []string
		for v, files := range versions[p] {
			lines = append(lines, v+" in "+strings.Join(files, ", "))
		}
		sort.Strings(lines)
		t.Errorf("%s is required at %d versions: %s; run make align-modules", p, len(lines), strings.Join(lines, "; "))
	}
}

type requirement struct{ Path, Version string }

func goModFiles(t *testing.T, root string) []string {
	t.Helper()
	var mods []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "go.mod" {
			rel, _ := filepath.Rel(root, path)
			mods = append(mods, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mods
}

// requirements reads a go.mod through `go mod edit -json`, the go command's
// own parser, rather than a second one.
func requirements(t *testing.T, mod string) []requirement {
	t.Helper()
	cmd := exec.Command("go", "mod", "edit", "-json", filepath.Base(mod))
	cmd.Dir = filepath.Join("..", "..", filepath.Dir(mod))
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod edit -json %s: %v", mod, err)
	}
	var file struct {
		Require []struct {
			Path, Version string
		}
	}
	if err := json.Unmarshal(out, &file); err != nil {
		t.Fatalf("%s: %v", mod, err)
	}
	reqs := make([]requirement, 0, len(file.Require))
	for _, r := range file.Require {
		reqs = append(reqs, requirement{r.Path, r.Version})
	}
	return reqs
}
