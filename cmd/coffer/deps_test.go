package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLinksNoClientset: the packages that register, or link, every
// Kubernetes API group (client-go's clientset, its scheme, typed clients,
// typed informers, discovery, typed apply configurations, generic typed
// client and event recorder) stay out of the binary: together with
// text/template they made it 62 MB instead of 36, most of it paged into
// every DaemonSet pod (bench S1: 58.6 MiB peak RSS instead of 38.7).
// internal/kube says what replaces each. The change events' consumer
// (changefeed, and the SDK's SQS client) is the controller binary's: the
// SDK's service packages build their state at start: linked into the node's
// binary they took bench S1's peak RSS from 39.3 to 40.5 MiB, for a
// command the node never runs.
func TestBinaryLinksNoClientset(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "grpcnotrace", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	banned := []string{
		"k8s.io/client-go/kubernetes", "k8s.io/client-go/informers", "k8s.io/client-go/discovery",
		"k8s.io/client-go/applyconfigurations", "k8s.io/client-go/gentype", "k8s.io/client-go/testing",
		"k8s.io/client-go/tools/record", "k8s.io/client-go/tools/leaderelection", "k8s.io/client-go/tools/events",
		"golang.org/x/net/trace",
		"github.com/coffer-csi/coffer/changefeed", "github.com/aws/aws-sdk-go-v2/service/sqs",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, b := range banned {
			if pkg == b || strings.HasPrefix(pkg, b+"/") {
				t.Errorf("coffer links %s", pkg)
			}
		}
	}
}
