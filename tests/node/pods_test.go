package node

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// testLabel marks the namespaces the scenarios create (deleted at teardown).
const testLabel = "coffer-node-test"

var gvrSPC = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// namespace creates t-<name> with ServiceAccount app, annotated with the
// IRSA role (the role trusts exactly the app ServiceAccounts it lists).
func namespace(t *testing.T, name string) string {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	ns := "t-" + name
	_, err := env.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{testLabel: "1"},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	serviceAccount(t, ns, "app")
	return ns
}

func serviceAccount(t *testing.T, ns, name string) {
	t.Helper()
	serviceAccountAs(t, ns, name, appRole)
}

// serviceAccountAs creates ServiceAccount name annotated with IRSA role.
func serviceAccountAs(t *testing.T, ns, name, role string) {
	t.Helper()
	_, err := env.kube.CoreV1().ServiceAccounts(ns).Create(ctxFor(t, 30*time.Second), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: name, Annotations: map[string]string{irsaRoleAnnotation: roleARN(role)},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// secretProviderClass creates a class for coffer (provider aws) with the
// given parameters and, if any, the driver's secretObjects.
func secretProviderClass(t *testing.T, ns, name string, params map[string]any, secretObjects []any) {
	t.Helper()
	spec := map[string]any{"provider": "aws", "parameters": params}
	if secretObjects != nil {
		spec["secretObjects"] = secretObjects
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}}
	dyn, err := dynamic.NewForConfig(env.restConfig(env.api.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(gvrSPC).Namespace(ns).Create(ctxFor(t, 30*time.Second), obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// workloadPod is an application pod as a hardened cluster runs it: a
// non-root user, a read-only root filesystem, no capabilities; its class's
// files mounted read-only at /mnt/secrets.
func workloadPod(ns, name, class string, args ...string) *corev1.Pod {
	t, f := true, false
	uid := int64(65532)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: &t, RunAsUser: &uid, RunAsGroup: &uid,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "app", Image: workloadRef, ImagePullPolicy: corev1.PullNever,
				Args: args,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &f, ReadOnlyRootFilesystem: &t,
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "secrets", MountPath: "/mnt/secrets", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "secrets", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: driverName, ReadOnly: &t, VolumeAttributes: map[string]string{"secretProviderClass": class},
			}}}},
		},
	}
}

func createPod(t *testing.T, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := env.kube.CoreV1().Pods(p.Namespace).Create(ctxFor(t, 30*time.Second), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// waitRunning waits for the pod to run; on failure it reports the pod's
// events, the best account of why a pod does not start.
func waitRunning(t *testing.T, ns, name string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := poll(timeout, func(ctx context.Context) error {
		p, err := env.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pod = p
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s/%s is %s", ns, name, p.Status.Phase)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nevents:\n%s", err, events(ns, name))
	}
	return pod
}

func events(ns, name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := env.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range evs.Items {
		fmt.Fprintf(&b, "  %s %s: %s\n", e.Type, e.Reason, e.Message)
	}
	return b.String()
}

func poll(timeout time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// output is what a container printed, read from kubelet's own log file
// (the node has no address the apiserver could proxy logs from).
type output struct {
	lines []string
}

func containerOutput(pod *corev1.Pod, container string) (output, error) {
	dir := filepath.Join(env.podLogs, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), container)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return output{}, err
	}
	var out output
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return output{}, err
		}
		s := bufio.NewScanner(f)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			// CRI log format: <time> <stream> <P|F> <content>
			parts := strings.SplitN(s.Text(), " ", 4)
			if len(parts) == 4 {
				out.lines = append(out.lines, parts[3])
			}
		}
		f.Close()
	}
	return out, nil
}

// files returns the last complete round of "workload read": path to
// content.
func (o output) files() (map[string]string, int, bool) {
	var cur map[string]string
	var last map[string]string
	round, lastRound := 0, 0
	for _, l := range o.lines {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "BEGIN":
			cur, round = map[string]string{}, atoi(f[1])
		case len(f) == 3 && f[0] == "FILE" && cur != nil:
			b, err := base64.StdEncoding.DecodeString(f[2])
			if err == nil {
				cur[f[1]] = string(b)
			}
		case len(f) == 2 && f[0] == "END" && cur != nil:
			last, lastRound, cur = cur, round, nil
		}
	}
	return last, lastRound, last != nil
}

func (o output) line(prefix string) string {
	for _, l := range o.lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// podFiles waits until the pod has printed a complete round of its files
// that satisfies ok, and returns it.
func podFiles(t *testing.T, pod *corev1.Pod, timeout time.Duration, ok func(map[string]string) error) map[string]string {
	t.Helper()
	var files map[string]string
	err := poll(timeout, func(context.Context) error {
		out, err := containerOutput(pod, "app")
		if err != nil {
			return err
		}
		fs, _, done := out.files()
		if !done {
			return errors.New("no complete round of files printed yet")
		}
		files = fs
		if ok != nil {
			return ok(fs)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: %v (last files: %v)", pod.Namespace, pod.Name, err, names(files))
	}
	return files
}

func names(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func deletePod(t *testing.T, ns, name string) {
	t.Helper()
	err := env.kube.CoreV1().Pods(ns).Delete(ctxFor(t, 30*time.Second), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}
