package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestBinaryLinks: what the controller links beyond the node's binary is
// client-go's Lease election and event recorder, with what they bring:
// the clientset and the scheme of every API group, typed informers and
// listers (the election's LeaseCandidate), apply configurations,
// discovery, and client-go's generic client with its fake (gentype holds
// both). A client-go package outside that list, golang.org/x/net/trace
// or client-go's other event API (tools/events: one recorder only) fails
// the test: growing the controller is a choice to write down here.
func TestBinaryLinks(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "grpcnotrace", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, need := range []string{"k8s.io/client-go/tools/leaderelection", "k8s.io/client-go/tools/record"} {
		if !slices.Contains(deps, need) {
			t.Errorf("coffer-controller does not link %s", need)
		}
	}
	mayLink := []string{
		// what the node's binary links too
		"dynamic", "features", "metadata", "pkg", "plugin", "rest", "tools/auth", "tools/cache",
		"tools/clientcmd", "tools/metrics", "tools/pager", "transport", "util",
		// the election and the recorder, with what they bring
		"tools/leaderelection", "tools/record", "tools/reference", "tools/internal/events",
		"kubernetes", "informers", "listers", "applyconfigurations", "discovery", "openapi",
		"gentype", "testing",
	}
	banned := []string{"golang.org/x/net/trace", "k8s.io/client-go/tools/events"}
	for _, pkg := range deps {
		for _, b := range banned {
			if pkg == b || strings.HasPrefix(pkg, b+"/") {
				t.Errorf("coffer-controller links %s", pkg)
			}
		}
		rest, ok := strings.CutPrefix(pkg, "k8s.io/client-go/")
		if ok && !slices.ContainsFunc(mayLink, func(p string) bool { return rest == p || strings.HasPrefix(rest, p+"/") }) {
			t.Errorf("coffer-controller links %s, which is not in the list of what it may link", pkg)
		}
	}
}
