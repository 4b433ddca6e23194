package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The Flux examples are checked in two ways. Against the real apiserver,
// with Flux's own CRDs installed (copied from the Flux controllers' Go
// modules by tests/deploy/hack/provision.sh): every object is server-side
// dry-run, so the CRDs' schemas judge them. And here, for what no schema
// can see: references resolve, the order is right, the paths exist and
// build, and the values are accepted by the charts they configure.

const (
	fluxDir      = "deployment/flux"
	cofferRepo   = "https://coffer-csi.github.io/coffer"
	thisRepoURL  = "https://github.com/coffer-csi/coffer"
	driverRelNam = "csi-secrets-store"
)

// fluxObjects reads every Flux object under deployment/flux (kustomize's
// own kustomization.yaml files aside).
func fluxObjects(t testing.TB) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, f := range globYAML(t, fluxDir) {
		if filepath.Base(f) != "kustomization.yaml" {
			objs = append(objs, decodeFile(t, f)...)
		}
	}
	return objs
}

func TestFluxDryRun(t *testing.T) {
	dryRun(t, fluxObjects(t))
}

type fluxRef struct{ Kind, Name, Namespace string }

func nestedRef(o *unstructured.Unstructured, fields ...string) fluxRef {
	m, _, _ := unstructured.NestedMap(o.Object, fields...)
	r := fluxRef{Kind: fmt.Sprint(m["kind"]), Name: fmt.Sprint(m["name"]), Namespace: o.GetNamespace()}
	if ns, ok := m["namespace"].(string); ok && ns != "" {
		r.Namespace = ns
	}
	return r
}

func lookup(objs []*unstructured.Unstructured, kind, name, ns string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name && o.GetNamespace() == ns {
			return o
		}
	}
	return nil
}

// dependsOn returns an object's spec.dependsOn as (name, namespace) pairs,
// the namespace defaulting to the object's.
func dependsOn(o *unstructured.Unstructured) []fluxRef {
	deps, _, _ := unstructured.NestedSlice(o.Object, "spec", "dependsOn")
	var out []fluxRef
	for _, d := range deps {
		m := d.(map[string]any)
		r := fluxRef{Kind: o.GetKind(), Name: fmt.Sprint(m["name"]), Namespace: o.GetNamespace()}
		if ns, ok := m["namespace"].(string); ok && ns != "" {
			r.Namespace = ns
		}
		out = append(out, r)
	}
	return out
}

func TestFluxReferences(t *testing.T) {
	objs := fluxObjects(t)
	// Every object the Flux Kustomizations apply, with the Flux objects
	// themselves: references must resolve within what gets applied.
	all := slices.Clone(objs)
	applies := map[string][]*unstructured.Unstructured{}
	for _, k := range kinds(objs, "Kustomization") {
		src := nestedRef(k, "spec", "sourceRef")
		git := lookup(objs, src.Kind, src.Name, src.Namespace)
		if src.Kind != "GitRepository" || git == nil {
			t.Errorf("%s: sourceRef %+v does not resolve to a GitRepository here", ref(k), src)
			continue
		}
		if url, _, _ := unstructured.NestedString(git.Object, "spec", "url"); url != thisRepoURL {
			t.Errorf("%s: %s is not this repository", ref(git), url)
		}
		path, _, _ := unstructured.NestedString(k.Object, "spec", "path")
		dir := filepath.Clean(strings.TrimPrefix(path, "./"))
		if _, err := os.Stat(filepath.Join(repoRoot(t), dir, "kustomization.yaml")); err != nil {
			t.Errorf("%s: path %s has no kustomization.yaml in this repository", ref(k), path)
			continue
		}
		built := kustomize(t, dir)
		applies[k.GetName()] = built
		for _, b := range built {
			if !slices.ContainsFunc(all, func(o *unstructured.Unstructured) bool { return ref(o) == ref(b) }) {
				all = append(all, b)
			}
		}
	}

	for _, o := range all {
		switch o.GetKind() {
		case "Kustomization", "HelmRelease":
			for _, d := range dependsOn(o) {
				if lookup(all, d.Kind, d.Name, d.Namespace) == nil {
					t.Errorf("%s depends on %s %s/%s, which nothing here creates", ref(o), d.Kind, d.Namespace, d.Name)
				}
			}
		}
		if o.GetKind() == "HelmRelease" {
			src := nestedRef(o, "spec", "chart", "spec", "sourceRef")
			if lookup(all, src.Kind, src.Name, src.Namespace) == nil {
				t.Errorf("%s: chart sourceRef %+v resolves to nothing here", ref(o), src)
			}
		}
	}

	// The order: coffer's release after the driver's; the classes after
	// both Kustomizations, which wait for their releases to be ready.
	coffer := find(t, all, "HelmRelease", "coffer")
	if deps := dependsOn(coffer); !slices.ContainsFunc(deps, func(r fluxRef) bool { return r.Name == driverRelNam }) {
		t.Errorf("HelmRelease coffer does not depend on %s: %v", driverRelNam, deps)
	}
	owner := func(kind, name string) string {
		for k, objs := range applies {
			for _, o := range objs {
				if o.GetKind() == kind && o.GetName() == name {
					return k
				}
			}
		}
		return ""
	}
	driverKs, cofferKs, spcKs := owner("HelmRelease", driverRelNam), owner("HelmRelease", "coffer"), owner("SecretProviderClass", "app-secrets")
	if driverKs == "" || cofferKs == "" || spcKs == "" {
		t.Fatalf("the Kustomizations apply the driver in %q, coffer in %q, the classes in %q", driverKs, cofferKs, spcKs)
	}
	for _, ks := range []string{driverKs, cofferKs} {
		k := find(t, objs, "Kustomization", ks)
		if wait, _, _ := unstructured.NestedBool(k.Object, "spec", "wait"); !wait {
			t.Errorf("Kustomization %s does not wait: a dependency on it would not wait for its HelmRelease", ks)
		}
	}
	spc := find(t, objs, "Kustomization", spcKs)
	var names []string
	for _, d := range dependsOn(spc) {
		names = append(names, d.Name)
	}
	if !slices.Contains(names, driverKs) || !slices.Contains(names, cofferKs) {
		t.Errorf("Kustomization %s depends on %v, want both %s (the CRDs) and %s", spcKs, names, driverKs, cofferKs)
	}
	if dependsOnCycle(objs) {
		t.Error("the Kustomizations' dependsOn has a cycle")
	}
}

func dependsOnCycle(objs []*unstructured.Unstructured) bool {
	state := map[string]int{}
	var visit func(o *unstructured.Unstructured) bool
	visit = func(o *unstructured.Unstructured) bool {
		switch state[ref(o)] {
		case 1:
			return true
		case 2:
			return false
		}
		state[ref(o)] = 1
		for _, d := range dependsOn(o) {
			if n := lookup(objs, d.Kind, d.Name, d.Namespace); n != nil && visit(n) {
				return true
			}
		}
		state[ref(o)] = 2
		return false
	}
	for _, o := range kinds(objs, "Kustomization") {
		if visit(o) {
			return true
		}
	}
	return false
}

// TestFluxHelmReleases: each release asks for a chart version that exists
// here and passes values its chart accepts.
func TestFluxHelmReleases(t *testing.T) {
	objs := fluxObjects(t)
	root := repoRoot(t)

	// coffer: the version range admits this chart; the values pass its
	// schema and render; the repository is where releases are published.
	coffer := find(t, objs, "HelmRelease", "coffer")
	chrt, err := loader.Load(filepath.Join(root, ChartPath))
	if err != nil {
		t.Fatal(err)
	}
	constraint, _, _ := unstructured.NestedString(coffer.Object, "spec", "chart", "spec", "version")
	if ok, err := versionAllowed(constraint, chrt.Metadata.Version); !ok {
		t.Errorf("HelmRelease coffer asks for %q, the chart is %s (%v)", constraint, chrt.Metadata.Version, err)
	}
	values, _, _ := unstructured.NestedMap(coffer.Object, "spec", "values")
	v, _ := yaml.Marshal(values)
	if _, err := renderErr("coffer", coffer.GetNamespace(), string(v)); err != nil {
		t.Errorf("HelmRelease coffer's values: %v", err)
	}
	src := nestedRef(coffer, "spec", "chart", "spec", "sourceRef")
	repo := lookup(objs, "HelmRepository", src.Name, src.Namespace)
	if url, _, _ := unstructured.NestedString(repo.Object, "spec", "url"); url != cofferRepo {
		t.Errorf("coffer's HelmRepository is %s, want %s", url, cofferRepo)
	}

	// The driver: the version vendored (and run by the end-to-end suite),
	// from the repository Chart.yaml names, with values that render and
	// ask kubelet for both token audiences.
	driver := find(t, objs, "HelmRelease", driverRelNam)
	dep := chrt.Metadata.Dependencies[0]
	constraint, _, _ = unstructured.NestedString(driver.Object, "spec", "chart", "spec", "version")
	if ok, err := versionAllowed(constraint, dep.Version); !ok {
		t.Errorf("HelmRelease %s asks for %q, coffer's chart depends on %s (%v)", driverRelNam, constraint, dep.Version, err)
	}
	src = nestedRef(driver, "spec", "chart", "spec", "sourceRef")
	repo = lookup(objs, "HelmRepository", src.Name, src.Namespace)
	if url, _, _ := unstructured.NestedString(repo.Object, "spec", "url"); url != dep.Repository {
		t.Errorf("the driver's HelmRepository is %s, Chart.yaml says %s", url, dep.Repository)
	}
	values, _, _ = unstructured.NestedMap(driver.Object, "spec", "values")
	rel, err := Render(filepath.Join(root, ChartPath, "charts", "secrets-store-csi-driver"), driverRelNam, driver.GetNamespace(), values)
	if err != nil {
		t.Fatalf("the driver chart with HelmRelease %s's values: %v", driverRelNam, err)
	}
	rendered, err := Objects(rel)
	if err != nil {
		t.Fatal(err)
	}
	csi := find(t, rendered, "CSIDriver", "secrets-store.csi.k8s.io")
	reqs, _, _ := unstructured.NestedSlice(csi.Object, "spec", "tokenRequests")
	var auds []string
	for _, r := range reqs {
		auds = append(auds, fmt.Sprint(r.(map[string]any)["audience"]))
	}
	if !slices.Contains(auds, "sts.amazonaws.com") || !slices.Contains(auds, "pods.eks.amazonaws.com") {
		t.Errorf("the driver's CSIDriver asks for tokens %v", auds)
	}
	dryRun(t, rendered)
}

func versionAllowed(constraint, version string) (bool, error) {
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return false, err
	}
	v, err := semver.NewVersion(version)
	if err != nil {
		return false, err
	}
	return c.Check(v), nil
}
