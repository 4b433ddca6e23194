// Package layers holds the test that keeps coffer's imports pointing down:
// every production package has a layer (the table below, which
// docs/architecture.md draws), and a package imports only from layers
// below its own, or from its own where the table says so.
package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// A layer is a set of packages that import only from the layers below it,
// and from their own only where within allows.
type layer struct {
	name string
	// what the layer does, for the drawing.
	what string
	// packages are import paths under the module: "x/..." is x and every
	// package below it, so a place in the tree can decide the layer
	// (internal/... is ground level).
	packages []string
	// within lists the imports allowed inside the layer, importer to
	// imported (exact paths); anyWithin allows all of them.
	within    map[string][]string
	anyWithin bool
}

// layers, top to bottom.
var layers = []layer{
	{
		name:      "commands",
		what:      "binaries, flags and the wiring of the pieces below",
		packages:  []string{"cmd/...", "cli", "cli/...", "wiring/..."},
		anyWithin: true,
	},
	{
		name:     "sync",
		what:     "Kubernetes Secrets from `syncSecrets`, restarts, ExternalSecrets converted, and the change events' consumer",
		packages: []string{"secretsync", "secretsync/restart", "secretsync/esoconvert", "changefeed"},
		within:   map[string][]string{"secretsync/restart": {"secretsync"}, "secretsync/esoconvert": {"secretsync"}},
	},
	{
		name:     "mount",
		what:     "the driver's API and one mount: identity, fetch, render",
		packages: []string{"provider/server", "provider", "provider/rotationevent"},
		within:   map[string][]string{"provider/server": {"provider"}},
	},
	{
		name:     "fetch and render",
		what:     "the class's schema, AWS reads, files and the evaluator processes",
		packages: []string{"provider/render", "provider/render/isolate", "provider/render/isolate/isolatetest", "provider/fetch", "provider/spc"},
		within: map[string][]string{
			"provider/render":                     {"provider/fetch", "provider/spc"},
			"provider/render/isolate":             {"provider/render"},
			"provider/render/isolate/isolatetest": {"provider/render", "provider/render/isolate"},
			"provider/fetch":                      {"provider/spc"},
		},
	},
	{
		name:     "identity",
		what:     "who the workload is, and its credentials",
		packages: []string{"auth"},
	},
	{
		name:     "AWS access",
		what:     "SDK configuration, the AWS operations coffer calls, per-identity clients",
		packages: []string{"provider/awsapi"},
	},
	{
		name:     "state",
		what:     "the value cache, the node's AWS budgets and the change ledger, without I/O",
		packages: []string{"provider/cache", "provider/quota", "provider/changes"},
		within:   map[string][]string{"provider/cache": {"provider/changes"}},
	},
	{
		name:     "ground",
		what:     "helpers the layers above share, importing none of them",
		packages: []string{"internal/..."},
		within: map[string][]string{
			"internal/flight":        {"internal/panics"},
			"internal/jmes":          {"internal/work"},
			"internal/kube":          {"internal/panics"},
			"internal/kube/kubetest": {"internal/kube"},
			"internal/tmpl":          {"internal/jmes", "internal/work"},
		},
	},
}

// exempt are test code: they may import anything, and nothing may import
// them. Packages of test files only (docs, scripts, this one) are exempt
// too.
var exempt = []string{"tests/..."}

// pkg is what go list says of one package of the module.
type pkg struct {
	ImportPath string
	Imports    []string
	GoFiles    []string
	CgoFiles   []string
	Module     struct{ Path string }
}

// module lists the module's packages, keyed by path under the module.
func module(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,GoFiles,CgoFiles,Module", "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[relative(p.Module.Path, p.ImportPath)] = p
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// relative is path under module ("." for the module's root), or "" for a
// package outside it.
func relative(module, path string) string {
	switch {
	case path == module:
		return "."
	case strings.HasPrefix(path, module+"/"):
		return strings.TrimPrefix(path, module+"/")
	}
	return ""
}

// matches reports whether pattern ("x" or "x/...") names path.
func matches(pattern, path string) bool {
	if dir, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == dir || strings.HasPrefix(path, dir+"/")
	}
	return pattern == path
}

// layerOf is the index of path's layer (0 is the top), or -1: the layer
// that names path exactly, else the one whose "x/..." has the longest x.
func layerOf(path string) int {
	found, longest := -1, -1
	for i, l := range layers {
		for _, p := range l.packages {
			if p == path {
				return i
			}
			if dir, ok := strings.CutSuffix(p, "/..."); ok && matches(p, path) && len(dir) > longest {
				found, longest = i, len(dir)
			}
		}
	}
	return found
}

func isExempt(path string, p pkg) bool {
	if len(p.GoFiles)+len(p.CgoFiles) == 0 {
		return true // test files only
	}
	return slices.ContainsFunc(exempt, func(pattern string) bool { return matches(pattern, path) })
}

// TestImportsPointDown fails for a production package that has no layer,
// or that imports a package of a higher layer, of its own layer where the
// table does not allow it, or a test package.
func TestImportsPointDown(t *testing.T) {
	pkgs := module(t)
	for _, problem := range check(pkgs) {
		t.Error(problem)
	}
}

// check returns every import that does not point down, and every package
// without a layer.
func check(pkgs map[string]pkg) []string {
	var problems []string
	paths := make([]string, 0, len(pkgs))
	for path := range pkgs {
		paths = append(paths, path)
	}
	slices.Sort(paths)
	for _, path := range paths {
		p := pkgs[path]
		if isExempt(path, p) {
			continue
		}
		from := layerOf(path)
		if from < 0 {
			problems = append(problems, fmt.Sprintf("%s has no layer: place it in the table of internal/layers/layers_test.go and docs/architecture.md#layers", path))
			continue
		}
		for _, imp := range p.Imports {
			dep := relative(p.Module.Path, imp)
			if dep == "" {
				continue // the standard library or another module
			}
			to := layerOf(dep)
			switch {
			case to < 0 && isExempt(dep, pkgs[dep]):
				problems = append(problems, fmt.Sprintf("%s imports %s, test code", path, dep))
			case to < 0:
				// Reported as a package without a layer.
			case to < from:
				problems = append(problems, fmt.Sprintf("%s (%s) imports %s, of a higher layer (%s): declare what it needs where it is used (an interface, a function or plain values given by the layer above), or move one of the two",
					path, layers[from].name, dep, layers[to].name))
			case to == from && !layers[from].anyWithin && !slices.Contains(layers[from].within[path], dep):
				problems = append(problems, fmt.Sprintf("%s imports %s, both %s: allow it in the layer's within list (internal/layers and docs/architecture.md#layers) if it is meant",
					path, dep, layers[from].name))
			}
		}
	}
	return problems
}

// TestTableIsTrue: every package the table names exactly exists, and every
// import it allows within a layer is made, so the drawing shows the code.
func TestTableIsTrue(t *testing.T) {
	pkgs := module(t)
	for _, l := range layers {
		for _, p := range l.packages {
			if _, ok := pkgs[p]; !ok && !strings.HasSuffix(p, "/...") {
				t.Errorf("layer %s names %s, which does not exist", l.name, p)
			}
		}
		for from, deps := range l.within {
			if layerOf(from) < 0 || layers[layerOf(from)].name != l.name {
				t.Errorf("layer %s allows imports of %s, which is not in it", l.name, from)
			}
			for _, dep := range deps {
				if !slices.Contains(pkgs[from].Imports, pkgs[dep].ImportPath) {
					t.Errorf("layer %s allows %s to import %s, which it does not: remove it", l.name, from, dep)
				}
			}
		}
	}
}

// TestCheckFindsUpwardImports: the check names an import up, one within a
// layer that is not allowed, a package without a layer and an import of
// test code; and passes one down, one allowed within, and test code.
func TestCheckFindsUpwardImports(t *testing.T) {
	const mod = "example.com/coffer"
	p := func(path string, imports ...string) pkg {
		q := pkg{ImportPath: mod + "/" + path, GoFiles: []string{"x.go"}}
		q.Module.Path = mod
		for _, i := range imports {
			q.Imports = append(q.Imports, mod+"/"+i)
		}
		return q
	}
	for _, tc := range []struct {
		name string
		pkg  pkg
		want string // "" when the package is fine
	}{
		{"down", p("provider/awsapi", "internal/sdkhttp"), ""},
		{"allowed within", p("provider/render", "provider/spc"), ""},
		{"any within commands", p("cli/controller", "wiring", "cli"), ""},
		{"test code imports anything", p("tests/socket", "cli", "internal/metrics"), ""},
		{"up", p("internal/metrics", "provider/cache"), "internal/metrics (ground) imports provider/cache, of a higher layer (state)"},
		{"up two layers", p("provider/awsapi", "provider/fetch"), "provider/awsapi (AWS access) imports provider/fetch, of a higher layer (fetch and render)"},
		{"within, not allowed", p("provider/spc", "provider/render"), "provider/spc imports provider/render, both fetch and render"},
		{"without a layer", p("somewhere"), "somewhere has no layer"},
		{"imports test code", p("internal/hostile", "tests/fakeaws"), "internal/hostile imports tests/fakeaws, test code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := map[string]pkg{relative(mod, tc.pkg.ImportPath): tc.pkg}
			for _, imp := range tc.pkg.Imports {
				dep := relative(mod, imp)
				pkgs[dep] = p(dep)
			}
			var own []string
			for _, problem := range check(pkgs) {
				if strings.HasPrefix(problem, relative(mod, tc.pkg.ImportPath)+" ") {
					own = append(own, problem)
				}
			}
			switch {
			case tc.want == "" && len(own) > 0:
				t.Errorf("unexpected problems: %q", own)
			case tc.want != "" && (len(own) != 1 || !strings.HasPrefix(own[0], tc.want)):
				t.Errorf("problems %q, want one starting %q", own, tc.want)
			}
		})
	}
}

// TestArchitectureDrawsTheTable: docs/architecture.md's Layers table is
// this file's table.
func TestArchitectureDrawsTheTable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Layers\n")
	if !ok {
		t.Fatal(`docs/architecture.md has no "## Layers" section`)
	}
	var drawn []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "|") {
			drawn = append(drawn, line)
		} else if len(drawn) > 0 {
			break
		}
	}
	if want := drawing(); strings.Join(drawn, "\n") != want {
		t.Errorf("docs/architecture.md's Layers table is not the table of internal/layers; it should read:\n%s", want)
	}
}

// drawing is the table as docs/architecture.md shows it.
func drawing() string {
	code := func(s []string) string {
		out := make([]string, len(s))
		for i, v := range s {
			out[i] = "`" + v + "`"
		}
		return strings.Join(out, ", ")
	}
	lines := []string{
		"| layer, top to bottom | what | packages | imports within the layer |",
		"|---|---|---|---|",
	}
	for i, l := range layers {
		within := "none"
		switch {
		case l.anyWithin:
			within = "any"
		case len(l.within) > 0:
			var pairs []string
			for _, from := range slices.Sorted(maps.Keys(l.within)) {
				pairs = append(pairs, "`"+from+"` → "+code(l.within[from]))
			}
			within = strings.Join(pairs, "; ")
		}
		lines = append(lines, fmt.Sprintf("| %d. %s | %s | %s | %s |", i+1, l.name, l.what, code(l.packages), within))
	}
	return strings.Join(lines, "\n")
}
