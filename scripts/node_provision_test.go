package scripts_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nodeProvisionSandbox copies the node tier's provisioning script into a
// tree of its own, with the end-to-end provisioning, the container runtime
// and the CNI plugins stubbed, so only its own logic runs: where the CSI
// sidecars come from.
func nodeProvisionSandbox(t *testing.T) (script string, env []string) {
	t.Helper()
	root := t.TempDir()
	write := func(path, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.ReadFile("../tests/node/hack/provision.sh")
	if err != nil {
		t.Fatal(err)
	}
	script = filepath.Join(root, "repo/tests/node/hack/provision.sh")
	write(script, string(src))
	write(filepath.Join(root, "repo/tests/e2e/hack/provision.sh"), "#!/bin/sh\necho E2E_PROVISIONED=1\n")
	stub := "#!/bin/sh\nexit 0\n"
	for _, b := range []string{"bin/containerd", "bin/runc", "bin/ctr", "cni/bridge", "cni/host-local", "cni/loopback"} {
		write(filepath.Join(root, b), stub)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NODE_CSI_") && !strings.HasPrefix(kv, "COFFER_E2E_CACHE=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"PATH="+filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"COFFER_E2E_CACHE="+filepath.Join(root, "cache"),
		"NODE_CSI_SOURCES="+filepath.Join(root, "no-sources"),
		"NODE_CNI_BIN="+filepath.Join(root, "cni"),
		"REGISTRAR_VERSION=v9.9.9", "LIVENESS_VERSION=v8.8.8")
	return script, env
}

// TestNodeProvisionWithoutSidecarsIsBlocked: on a fresh machine, where the
// Go module proxy refuses the CSI sidecars and no binary or build script
// is given, provisioning says BLOCKED and exits 3 (make node-test then
// exits 0), under set -u, whatever variable is unset.
func TestNodeProvisionWithoutSidecarsIsBlocked(t *testing.T) {
	script, env := nodeProvisionSandbox(t)
	cmd := exec.Command("bash", script)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("provision.sh: %v, want exit status 3\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "BLOCKED: node-driver-registrar v9.9.9") || strings.Contains(stderr.String(), "unbound variable") {
		t.Errorf("stderr does not say BLOCKED cleanly:\n%s", stderr.String())
	}
}

// TestNodeProvisionTakesSidecarsFromNodeCSIBinaries: binaries given in
// NODE_CSI_BINARIES (the sidecars, and AWS's provider at its chart's
// version) are cached by version and named on stdout.
func TestNodeProvisionTakesSidecarsFromNodeCSIBinaries(t *testing.T) {
	script, env := nodeProvisionSandbox(t)
	bins := t.TempDir()
	chart := t.TempDir()
	if err := os.WriteFile(filepath.Join(chart, "values.yaml"), []byte("image:\n  repository: example\n  tag: 7.7.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"csi-node-driver-registrar-v9.9.9", "livenessprobe-v8.8.8", "secrets-store-csi-driver-provider-aws-7.7.7"} {
		if err := os.WriteFile(filepath.Join(bins, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Flux's controllers are already cached, each with its CRDs.
	cache := envValue(env, "COFFER_E2E_CACHE")
	for _, c := range []string{"source-controller-v1.7.3/source-controller", "kustomize-controller-v1.7.3/kustomize-controller", "helm-controller-v1.4.5/helm-controller"} {
		if err := os.MkdirAll(filepath.Join(cache, filepath.Dir(c), "crds"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cache, c), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", script)
	cmd.Env = append(env, "NODE_CSI_BINARIES="+bins, "NODE_ASCP_CHART="+chart)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("provision.sh: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"E2E_PROVISIONED=1", "node-driver-registrar-v9.9.9/csi-node-driver-registrar", "NODE_LIVENESSPROBE_VERSION=v8.8.8", "livenessprobe-v8.8.8/livenessprobe",
		"NODE_ASCP_VERSION=7.7.7", "ascp-7.7.7/secrets-store-csi-driver-provider-aws", "NODE_ASCP_CHART=" + chart,
		"NODE_FLUX_SOURCE_CONTROLLER=" + filepath.Join(cache, "source-controller-v1.7.3/source-controller"),
		"NODE_FLUX_HELM_CONTROLLER=" + filepath.Join(cache, "helm-controller-v1.4.5/helm-controller")} {
		if !strings.Contains(string(out), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}

// envValue is the value of key in env (KEY=value entries), the last one
// winning as in exec.
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
