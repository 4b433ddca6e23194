package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/coffer-csi/coffer/tests/deploy/internal/kubeapi"
)

// repoRoot is the repository root; every path in these tests is relative
// to it.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeFile reads every object of a YAML file of the repository.
func decodeFile(t testing.TB, rel string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := Decode(readFile(t, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return objs
}

// globYAML lists the YAML files under dir (relative to the root), sorted.
func globYAML(t testing.TB, dir string) []string {
	t.Helper()
	root := repoRoot(t)
	var files []string
	err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			rel, _ := filepath.Rel(root, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// render renders the chart for a release in namespace with values given
// as YAML, failing the test on error.
func render(t testing.TB, name, namespace, values string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := renderErr(name, namespace, values)
	if err != nil {
		t.Fatalf("rendering the chart with values\n%s\n: %v", values, err)
	}
	return objs
}

func renderErr(name, namespace, values string) ([]*unstructured.Unstructured, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(values), &vals); err != nil {
		return nil, fmt.Errorf("test values: %w", err)
	}
	rel, err := Render(filepath.Join(root, ChartPath), name, namespace, vals)
	if err != nil {
		return nil, err
	}
	return Objects(rel)
}

// find returns the one object of kind (and name, unless empty).
func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %q, found %d in %s", kind, name, len(found), describe(objs))
	}
	return found[0]
}

func kinds(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func describe(objs []*unstructured.Unstructured) string {
	var s []string
	for _, o := range objs {
		s = append(s, ref(o))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func ref(o *unstructured.Unstructured) string {
	if o.GetNamespace() != "" {
		return fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
	}
	return fmt.Sprintf("%s %s", o.GetKind(), o.GetName())
}

// container returns the DaemonSet's (or Deployment's) container by name.
func container(t testing.TB, workload *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(workload.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		m := c.(map[string]any)
		if m["name"] == name {
			return m
		}
	}
	t.Fatalf("%s has no container %q", ref(workload), name)
	return nil
}

func stringList(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// ---- the image's coffer binary ----

var (
	imageBinOnce sync.Once
	imageBins    map[string]string // the image's path of each binary: its path here
	imageBinErr  error
	imageBinDir  string
)

// imageVersion is the VERSION build argument of the emulated image build.
const imageVersion = "v0.0.0-deploytest"

// cofferBinary is the coffer binary built exactly as the Dockerfile's build
// stage builds it, from exactly the build context .dockerignore leaves
// (see docker_test.go). The tests run this binary: the chart's flags are
// checked against the program the image contains.
func cofferBinary(t testing.TB) string {
	t.Helper()
	return imageBinary(t, "/usr/local/bin/coffer")
}

// controllerBinary is coffer-controller, built as cofferBinary is: the
// binary the chart's sync Deployment runs.
func controllerBinary(t testing.TB) string {
	t.Helper()
	return imageBinary(t, "/usr/local/bin/coffer-controller")
}

// imageBinary is the binary the image has at path, built as the
// Dockerfile's build stage builds it.
func imageBinary(t testing.TB, path string) string {
	t.Helper()
	imageBinOnce.Do(func() {
		imageBinDir, imageBinErr = os.MkdirTemp("", "coffer-deploy-image-")
		if imageBinErr != nil {
			return
		}
		imageBins, imageBinErr = emulateImageBuild(repoRoot(t), imageBinDir, imageVersion)
	})
	if imageBinErr != nil {
		t.Fatalf("building coffer as the Dockerfile does: %v", imageBinErr)
	}
	bin, ok := imageBins[path]
	if !ok {
		t.Fatalf("the image has no %s (it has %v)", path, imageBins)
	}
	return bin
}

// flagPattern matches a flag in pflag's help: "      --cache-ttl duration   ...".
var flagPattern = regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--([a-z0-9-]+)`)

// serveFlags lists the flags `coffer serve -h` documents.
func serveFlags(t testing.TB) map[string]bool {
	t.Helper()
	return commandFlags(t, "serve")
}

// commandFlags lists the flags `coffer <command> -h` documents (sync:
// `coffer-controller sync -h`).
func commandFlags(t testing.TB, command string) map[string]bool {
	t.Helper()
	bin := cofferBinary(t)
	if command == "sync" || command == "events" {
		bin = controllerBinary(t)
	}
	out, err := exec.Command(bin, command, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("coffer %s -h: %v\n%s", command, err, out)
	}
	flags := map[string]bool{}
	for _, m := range flagPattern.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	// coffer-controller events reads no secrets: it has no --provider-name.
	if !flags["log-level"] || command != "events" && !flags["provider-name"] {
		t.Fatalf("coffer %s -h lists no --provider-name / --log-level; its output:\n%s", command, out)
	}
	return flags
}

// ---- the apiserver ----

var (
	apiOnce   sync.Once
	apiServer *kubeapi.Server
	apiClient *kubeapi.Client
	apiErr    error
	apiSkip   string
)

// requireAPIServer is set by make deploy-test: without the apiserver the
// tests that need it fail instead of skipping.
var requireAPIServer = os.Getenv("DEPLOY_REQUIRE_APISERVER") == "1"

// cluster returns a client of the shared kube-apiserver, started on first
// use with the CRDs of the driver, Flux and the ServiceMonitor installed. Without the binaries
// (E2E_ETCD, E2E_KUBE_APISERVER, DEPLOY_CRDS, set by make deploy-test)
// the test is skipped, or fails under DEPLOY_REQUIRE_APISERVER=1.
func cluster(t testing.TB) *kubeapi.Client {
	t.Helper()
	apiOnce.Do(func() {
		etcd, api, crdDir := os.Getenv("E2E_ETCD"), os.Getenv("E2E_KUBE_APISERVER"), os.Getenv("DEPLOY_CRDS")
		if etcd == "" || api == "" || crdDir == "" {
			apiSkip = "E2E_ETCD, E2E_KUBE_APISERVER or DEPLOY_CRDS not set: run `make deploy-test`, which provisions them"
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		apiServer, apiErr = kubeapi.Start(ctx, etcd, api, "")
		if apiErr != nil {
			return
		}
		if apiClient, apiErr = kubeapi.NewClient(apiServer.RESTConfig()); apiErr != nil {
			return
		}
		var crds []*unstructured.Unstructured
		for _, dir := range []string{filepath.Join(repoRoot(t), ChartPath, "charts/secrets-store-csi-driver/crds"), crdDir} {
			files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					apiErr = err
					return
				}
				objs, err := Decode(b)
				if err != nil {
					apiErr = fmt.Errorf("%s: %w", f, err)
					return
				}
				crds = append(crds, objs...)
			}
		}
		if apiErr = apiClient.InstallCRDs(ctx, crds); apiErr != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "deploy: kube-apiserver ready with %d CRDs in %s\n", len(crds), time.Since(start).Round(time.Millisecond))
	})
	if apiSkip != "" {
		if requireAPIServer {
			t.Fatal(apiSkip)
		}
		t.Skip(apiSkip)
	}
	if apiErr != nil {
		t.Fatalf("starting kube-apiserver: %v", apiErr)
	}
	return apiClient
}

// dryRun server-side applies every object with dryRun=All and strict field
// validation, after creating (for real) the namespaces they name. Every
// rejection is reported.
func dryRun(t testing.TB, objs []*unstructured.Unstructured) {
	t.Helper()
	c := cluster(t)
	ctx := context.Background()
	if len(objs) == 0 {
		t.Fatal("nothing to apply")
	}
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" {
			if err := c.EnsureNamespace(ctx, ns); err != nil {
				t.Fatalf("namespace %s: %v", ns, err)
			}
		}
	}
	for _, o := range objs {
		if _, err := c.Apply(ctx, o, true); err != nil {
			t.Errorf("server-side dry-run of %s: %v", ref(o), err)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if apiServer != nil {
		apiServer.Stop()
	}
	if imageBinDir != "" {
		os.RemoveAll(imageBinDir)
	}
	os.Exit(code)
}
