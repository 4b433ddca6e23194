package wiring

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection: wiring sits at the command layer. Only the
// commands (cli, cmd/...) and the suites (tests/...) import it, and it
// links neither client-go's leader election nor its event recorder (nor
// its clientset), which the node binary may not (cmd/coffer's
// TestBinaryLinksNoClientset): the controller's caller brings those.
func TestImportDirection(t *testing.T) {
	const module = "github.com/coffer-csi/coffer/"
	out, err := exec.Command("go", "list", "-test", "-f", `{{.ImportPath}}|{{join .Imports " "}}`, "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, "|")
		if !strings.Contains(" "+imports+" ", " "+module+"wiring ") {
			continue
		}
		rel, _, _ := strings.Cut(strings.TrimPrefix(pkg, module), " ") // "cli [cli.test]": cli's test variant
		if rel == "wiring" || rel == "wiring.test" {
			continue
		}
		if top, _, _ := strings.Cut(rel, "/"); top != "cli" && top != "cmd" && top != "tests" {
			t.Errorf("%s imports wiring: only the commands and the suites may", pkg)
		}
	}

	out, err = exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/client-go/tools/leaderelection", "k8s.io/client-go/tools/record", "k8s.io/client-go/kubernetes"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("wiring links %s", dep)
			}
		}
	}
}
