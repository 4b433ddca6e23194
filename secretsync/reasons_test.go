package secretsync

import (
	"go/ast"
	goparser "go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestEventReasonsInAdmissionPolicy: the chart's pod-events policy lets
// the DaemonSet (sync at mount) record only Secret sync's own reasons, so
// every Reason constant of this package must be in its list, or the
// events with a new reason would be refused.
func TestEventReasonsInAdmissionPolicy(t *testing.T) {
	policy, err := os.ReadFile("../deployment/charts/coffer/templates/admission.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(fset, e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(node ast.Node) bool {
			vs, ok := node.(*ast.ValueSpec)
			if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Reason") {
				return true
			}
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			reason, _ := strconv.Unquote(lit.Value)
			n++
			if !strings.Contains(string(policy), "'"+reason+"'") {
				t.Errorf("%s (%q) is not among the reasons admission.yaml's pod-events policy allows", vs.Names[0].Name, reason)
			}
			return true
		})
	}
	if n < 17 {
		t.Errorf("found %d Reason constants, want at least 17", n)
	}
}
