package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// TestInstallerUpToDate fails when deployment/coffer.yaml (or its copy in
// the Kustomize base) is not what `make manifests` writes from the chart.
func TestInstallerUpToDate(t *testing.T) {
	root := repoRoot(t)
	want, err := Installer(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{InstallerPath, KustomizeBaseInstaller} {
		got, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%v: run `make manifests`", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `make manifests` (it is generated from %s)", rel, ChartPath)
		}
	}
}

func TestInstallerDryRun(t *testing.T) {
	objs := decodeFile(t, InstallerPath)
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && ns != InstallerNamespace {
			t.Errorf("%s is not in %s", ref(o), InstallerNamespace)
		}
	}
	dryRun(t, objs)
}

// kustomizations lists every directory under deployment/ with a
// kustomization.yaml.
func kustomizations(t testing.TB) []string {
	t.Helper()
	var dirs []string
	for _, f := range globYAML(t, "deployment") {
		if filepath.Base(f) == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	if len(dirs) < 3 {
		t.Fatalf("found only %v", dirs)
	}
	return dirs
}

// kustomize builds a kustomization directory with the kustomize Go API, as
// `kubectl kustomize` does (default load restrictions: nothing outside a
// kustomization's own directory but other kustomizations).
func kustomize(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot(t), dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestKustomizeBuilds builds every kustomization under deployment/ and
// server-side dry-runs the result.
func TestKustomizeBuilds(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			objs := kustomize(t, dir)
			if len(objs) == 0 {
				t.Fatal("builds nothing")
			}
			dryRun(t, objs)
		})
	}
}

// TestKustomizeOverlay: the production overlay patches what it says.
func TestKustomizeOverlay(t *testing.T) {
	objs := kustomize(t, "deployment/kustomize/overlays/production")
	sa := find(t, objs, "ServiceAccount", "app")
	if got := sa.GetAnnotations()["eks.amazonaws.com/role-arn"]; got != "arn:aws:iam::111122223333:role/production-irsa-example-app" {
		t.Errorf("IRSA role annotation %q", got)
	}
	ds := find(t, objs, "DaemonSet", "coffer")
	c := container(t, ds, "coffer")
	if img, _ := c["image"].(string); !strings.HasPrefix(img, "111122223333.dkr.ecr.us-east-1.amazonaws.com/") {
		t.Errorf("image %q not rewritten", img)
	}
	args := stringList(c["args"])
	if args[len(args)-2] != "--region=us-east-1" || args[len(args)-1] != "--log-level=warn" {
		t.Errorf("args %v", args)
	}
	flags := serveFlags(t)
	for _, a := range args[1:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !flags[name] {
			t.Errorf("the overlay renders %q, which `coffer serve -h` does not list", a)
		}
	}
	// The base is the installer, untouched.
	base := kustomize(t, "deployment/kustomize/base")
	installer := decodeFile(t, InstallerPath)
	if len(base) != len(installer) {
		t.Errorf("the base builds %d objects, the installer has %d", len(base), len(installer))
	}
}

// TestKubectlKustomize cross-checks with kubectl's own kustomize when this
// machine has kubectl (it is not required).
func TestKubectlKustomize(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("no kubectl; the kustomize Go API builds every overlay in TestKustomizeBuilds")
	}
	for _, dir := range kustomizations(t) {
		cmd := exec.Command("kubectl", "kustomize", dir)
		cmd.Dir = repoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("kubectl kustomize %s: %v\n%s", dir, err, out)
			continue
		}
		got, err := Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		if want := kustomize(t, dir); len(got) != len(want) {
			t.Errorf("kubectl kustomize %s: %d objects, the Go API %d", dir, len(got), len(want))
		}
	}
}

// exampleObjects reads every example manifest (not the kustomization files).
func exampleObjects(t testing.TB) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, f := range globYAML(t, "deployment/examples") {
		if filepath.Base(f) != "kustomization.yaml" {
			objs = append(objs, decodeFile(t, f)...)
		}
	}
	return objs
}

// TestExamplesValidate runs `coffer validate` on every example: each class
// is checked exactly as a mount would check it.
func TestExamplesValidate(t *testing.T) {
	var files []string
	for _, f := range globYAML(t, "deployment/examples") {
		if strings.Contains(string(readFile(t, f)), "kind: SecretProviderClass") {
			files = append(files, f)
		}
	}
	if len(files) < 5 {
		t.Fatalf("only %d example classes: %v", len(files), files)
	}
	cmd := exec.Command(cofferBinary(t), append([]string{"validate"}, files...)...)
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("coffer validate %v: %v\n%s", files, err, out)
	}
}

// TestExamplesDryRun dry-runs every example object, and each workload's pod
// as a Pod in its namespace, so that Pod Security admission (restricted, as
// the example namespaces enforce) judges it as it would the real pods.
func TestExamplesDryRun(t *testing.T) {
	objs := exampleObjects(t)
	c := cluster(t)
	ctx := context.Background()
	// The namespaces for real, with their labels: PodSecurity enforces them.
	for _, o := range kinds(objs, "Namespace") {
		if _, err := c.Apply(ctx, o, false); err != nil {
			t.Fatalf("%s: %v", ref(o), err)
		}
	}
	dryRun(t, objs)
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		pod := podOf(t, o)
		if _, err := c.Apply(ctx, pod, true); err != nil {
			t.Errorf("the pod of %s: %v", ref(o), err)
		}
		if !usesClass(t, o, objs) {
			t.Errorf("%s neither mounts a SecretProviderClass of its namespace nor reads a Secret one declares", ref(o))
		}
	}
}

// podOf is the Pod a workload would create.
func podOf(t testing.TB, workload *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	tmpl, _, _ := unstructured.NestedMap(workload.Object, "spec", "template")
	pod := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": tmpl["metadata"], "spec": tmpl["spec"]}}
	pod.SetName(strings.ToLower(workload.GetKind()) + "-" + workload.GetName())
	pod.SetNamespace(workload.GetNamespace())
	return pod
}

// usesClass reports whether a workload mounts a SecretProviderClass of its
// namespace, or reads (env, envFrom) a Secret that one declares
// (secretObjects, or coffer's syncSecrets).
func usesClass(t testing.TB, workload *unstructured.Unstructured, objs []*unstructured.Unstructured) bool {
	t.Helper()
	ns := workload.GetNamespace()
	classes, declared := map[string]bool{}, map[string]bool{}
	for _, spc := range kinds(objs, "SecretProviderClass") {
		if spc.GetNamespace() != ns {
			continue
		}
		classes[spc.GetName()] = true
		sos, _, _ := unstructured.NestedSlice(spc.Object, "spec", "secretObjects")
		for _, so := range sos {
			declared[fmt.Sprint(so.(map[string]any)["secretName"])] = true
		}
		if text, _, _ := unstructured.NestedString(spc.Object, "spec", "parameters", "syncSecrets"); text != "" {
			var entries []struct {
				SecretName string `json:"secretName"`
			}
			if err := yaml.Unmarshal([]byte(text), &entries); err != nil {
				t.Errorf("%s: syncSecrets: %v", ref(spc), err)
			}
			for _, e := range entries {
				declared[e.SecretName] = true
			}
		}
	}
	spec, _, _ := unstructured.NestedMap(workload.Object, "spec", "template", "spec")
	vols, _, _ := unstructured.NestedSlice(spec, "volumes")
	for _, v := range vols {
		if name, _, _ := unstructured.NestedString(v.(map[string]any), "csi", "volumeAttributes", "secretProviderClass"); classes[name] {
			return true
		}
	}
	cs, _, _ := unstructured.NestedSlice(spec, "containers")
	for _, c := range cs {
		m := c.(map[string]any)
		envFrom, _, _ := unstructured.NestedSlice(m, "envFrom")
		for _, e := range envFrom {
			if name, _, _ := unstructured.NestedString(e.(map[string]any), "secretRef", "name"); declared[name] {
				return true
			}
		}
		env, _, _ := unstructured.NestedSlice(m, "env")
		for _, e := range env {
			if name, _, _ := unstructured.NestedString(e.(map[string]any), "valueFrom", "secretKeyRef", "name"); declared[name] {
				return true
			}
		}
	}
	return false
}

// TestCofferPodSecurity: coffer's pod needs the privileged Pod Security
// level only for its hostPath (the socket directory); baseline rejects it
// for that and nothing else. The README says to install it where the
// driver runs (kube-system) or in a namespace labelled privileged.
func TestCofferPodSecurity(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{
		"name": "coffer-baseline", "labels": map[string]any{"pod-security.kubernetes.io/enforce": "baseline"}}}}
	if _, err := c.Apply(ctx, ns, false); err != nil {
		t.Fatal(err)
	}
	ds := find(t, render(t, "coffer", "coffer-baseline", ``), "DaemonSet", "coffer")
	_, err := c.Apply(ctx, podOf(t, ds), true)
	if err == nil || !strings.Contains(err.Error(), "hostPath") {
		t.Fatalf("baseline admitted coffer's pod, or rejected it for something else: %v", err)
	}
	t.Logf("baseline: %v", err)
	if !strings.HasSuffix(strings.TrimSpace(err.Error()), `violates PodSecurity "baseline:latest": hostPath volumes (volume "providers")`) {
		t.Errorf("baseline rejects more than the hostPath: %v", err)
	}
}

// TestDryRunIsStrict: the dry-run catches what it is here to catch.
func TestDryRunIsStrict(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	bad := map[string]string{
		"unknown field": `
apiVersion: v1
kind: ServiceAccount
metadata: {name: x, namespace: default}
automountServiceAccountTokens: true`,
		"schema": `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: x, namespace: default}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: c}}
    spec: {containers: [{name: x, image: x}]}`,
		"CRD unknown field": `
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: x, namespace: default}
spec: {providr: aws}`,
		"Flux schema": `
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: x, namespace: default}
spec: {interval: 1h, chart: {spec: {chart: coffer}}}`,
	}
	for name, doc := range bad {
		objs, err := Decode([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Apply(ctx, objs[0], true); err != nil {
			t.Logf("%s: rejected: %v", name, err)
		} else {
			t.Errorf("%s: the dry-run accepted\n%s", name, doc)
		}
	}
}

// TestInstallDocPaths: every deployment/ path the README and
// docs/install.md name exists, and docs/install.md shows every way to install.
func TestInstallDocPaths(t *testing.T) {
	for _, doc := range []string{"README.md", "docs/install.md"} {
		text := string(readFile(t, doc))
		var missing []string
		for _, loc := range pathPattern.FindAllStringIndex(text, -1) {
			if loc[1] < len(text) && text[loc[1]] == '$' {
				continue // a template: deployment/iam/policy-$p.json
			}
			f := strings.TrimRight(text[loc[0]:loc[1]], ".,:)")
			if _, err := os.Stat(filepath.Join(repoRoot(t), f)); err != nil && !slices.Contains(missing, f) {
				missing = append(missing, f)
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s names missing paths: %v", doc, missing)
		}
	}
	install := string(readFile(t, "docs/install.md"))
	for _, want := range []string{"helm install", "kubectl apply -f", "HelmRelease", "eksctl", "deployment/iam/"} {
		if !strings.Contains(install, want) {
			t.Errorf("docs/install.md does not show %q", want)
		}
	}
}

var pathPattern = regexp.MustCompile(`deployment/[A-Za-z0-9_./-]+`)
