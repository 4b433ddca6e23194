package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/coffer-csi/coffer/tests/harness"
)

// The test plays kubelet: it creates pods bound to the node, mints their
// ServiceAccount tokens for the CSIDriver's audiences with the TokenRequest
// API, and calls the driver's NodePublishVolume / NodeUnpublishVolume with
// what kubelet sends.

// setup creates namespace ns for one test; at the end of the test every
// volume the test published is unpublished and the namespace's pods go.
// With a failure, it prints what every component logged during the test.
func setup(t *testing.T, ns string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	marks := env.logMarks()
	t.Cleanup(func() {
		defer cancel()
		if t.Failed() {
			t.Logf("component logs during %s:\n%s", t.Name(), env.logTailsSince(marks, 80))
		}
		bg, done := context.WithTimeout(context.Background(), 30*time.Second)
		defer done()
		zero := int64(0)
		_ = env.kube.CoreV1().Pods(ns).DeleteCollection(bg, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		_ = env.kube.CoreV1().Namespaces().Delete(bg, ns, metav1.DeleteOptions{})
	})
	if _, err := env.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// roleARN names a role of the fake's account.
func roleARN(name string) string { return "arn:aws:iam::123456789012:role/" + name }

// createServiceAccount creates a ServiceAccount, annotated with an IRSA
// role unless role is "".
func createServiceAccount(ctx context.Context, t *testing.T, ns, name, role string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if role != "" {
		sa.Annotations = map[string]string{"eks.amazonaws.com/role-arn": role}
	}
	if _, err := env.kube.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// spcSpec is a SecretProviderClass for provider aws.
type spcSpec struct {
	name          string
	provider      string // spec.provider; "" is aws
	params        map[string]string
	secretObjects []any // spec.secretObjects, as unstructured
}

func createSPC(ctx context.Context, t *testing.T, ns string, s spcSpec) {
	t.Helper()
	params := map[string]any{}
	for k, v := range s.params {
		params[k] = v
	}
	provider := s.provider
	if provider == "" {
		provider = "aws"
	}
	spec := map[string]any{"provider": provider, "parameters": params}
	if s.secretObjects != nil {
		spec["secretObjects"] = s.secretObjects
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "secrets-store.csi.x-k8s.io/v1",
		"kind":       "SecretProviderClass",
		"metadata":   map[string]any{"name": s.name, "namespace": ns},
		"spec":       spec,
	}}
	if _, err := env.dyn.Resource(gvrSPC).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// testPod is a pod bound to the node with one CSI volume.
type testPod struct {
	t      *testing.T
	pod    *corev1.Pod
	volume string // the pod's volume name
	spc    string
	target string // where kubelet asks the driver to mount
	id     string // the CSI volume handle kubelet derives
	// published: NodePublishVolume succeeded at least once, so the test's
	// cleanup must unpublish.
	published bool
	// lastPublish is when NodePublishVolume was last called.
	lastPublish time.Time
}

type podOption func(*corev1.Pod)

// ownedBy makes the pod a dependent of owner, as a ReplicaSet's pods are.
func ownedBy(owner metav1.OwnerReference) podOption {
	return func(p *corev1.Pod) { p.OwnerReferences = append(p.OwnerReferences, owner) }
}

// withVolumeAttributes adds volumeAttributes to the pod's CSI volume (a pod
// author's overrides).
func withVolumeAttributes(attrs map[string]string) podOption {
	return func(p *corev1.Pod) {
		for k, v := range attrs {
			p.Spec.Volumes[0].CSI.VolumeAttributes[k] = v
		}
	}
}

// createPod creates a pod on the node that mounts spc at /mnt/secrets.
func createPod(ctx context.Context, t *testing.T, ns, name, sa, spc string, opts ...podOption) *testPod {
	t.Helper()
	readOnly := true
	const vol = "secrets-store"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:           nodeName,
			ServiceAccountName: sa,
			Containers: []corev1.Container{{
				Name:         "app",
				Image:        "registry.example/app:1",
				VolumeMounts: []corev1.VolumeMount{{Name: vol, MountPath: "/mnt/secrets", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: vol, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver:           driverName,
				ReadOnly:         &readOnly,
				VolumeAttributes: map[string]string{"secretProviderClass": spc},
			}}}},
		},
	}
	for _, o := range opts {
		o(pod)
	}
	created, err := env.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(string(created.UID) + vol))
	p := &testPod{
		t:      t,
		pod:    created,
		volume: vol,
		spc:    spc,
		target: filepath.Join(env.kubeletDir, "pods", string(created.UID), "volumes", "kubernetes.io~csi", vol, "mount"),
		id:     fmt.Sprintf("csi-%x", sum),
	}
	t.Cleanup(func() {
		if p.published {
			p.unpublish()
		}
	})
	return p
}

// volumeContext builds the attributes kubelet sends for the pod's inline
// volume, reading the CSIDriver object as kubelet does: the volume's
// attributes, the pod's identity if podInfoOnMount, and a fresh
// ServiceAccount token bound to the pod per tokenRequests audience.
func (p *testPod) volumeContext(ctx context.Context) (map[string]string, error) {
	drv, err := env.kube.StorageV1().CSIDrivers().Get(ctx, driverName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{}
	for k, v := range p.pod.Spec.Volumes[0].CSI.VolumeAttributes {
		attrs[k] = v
	}
	if drv.Spec.PodInfoOnMount != nil && *drv.Spec.PodInfoOnMount {
		attrs["csi.storage.k8s.io/pod.name"] = p.pod.Name
		attrs["csi.storage.k8s.io/pod.namespace"] = p.pod.Namespace
		attrs["csi.storage.k8s.io/pod.uid"] = string(p.pod.UID)
		attrs["csi.storage.k8s.io/serviceAccount.name"] = p.pod.Spec.ServiceAccountName
		attrs["csi.storage.k8s.io/ephemeral"] = "true"
	}
	if len(drv.Spec.TokenRequests) > 0 {
		tokens := map[string]authenticationv1.TokenRequestStatus{}
		for _, tr := range drv.Spec.TokenRequests {
			var audiences []string
			if tr.Audience != "" {
				audiences = []string{tr.Audience}
			}
			res, err := env.kube.CoreV1().ServiceAccounts(p.pod.Namespace).CreateToken(ctx, p.pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
				Spec: authenticationv1.TokenRequestSpec{
					Audiences:         audiences,
					ExpirationSeconds: tr.ExpirationSeconds,
					BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: p.pod.Name, UID: p.pod.UID},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				return nil, fmt.Errorf("TokenRequest for audience %q: %w", tr.Audience, err)
			}
			tokens[tr.Audience] = res.Status
		}
		b, err := json.Marshal(tokens)
		if err != nil {
			return nil, err
		}
		attrs["csi.storage.k8s.io/serviceAccount.tokens"] = string(b)
	}
	return attrs, nil
}

// publish calls NodePublishVolume once, as kubelet does to set up the
// volume and, with requiresRepublish, periodically after that.
func (p *testPod) publish(ctx context.Context) error {
	attrs, err := p.volumeContext(ctx)
	if err != nil {
		return err
	}
	// kubelet creates the volume directory; the driver creates "mount".
	if err := os.MkdirAll(filepath.Dir(p.target), 0o750); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p.lastPublish = time.Now()
	_, err = env.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId:   p.id,
		TargetPath: p.target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		Readonly:      true,
		VolumeContext: attrs,
	})
	if err == nil {
		p.published = true
	} else if mounted, _ := harness.IsTmpfsMount(p.target); mounted {
		p.published = true // a failed republish keeps the mount
	}
	return err
}

// mount is the pod's first NodePublishVolume, which must succeed. Like
// kubelet, it retries while the driver's informer has not yet seen a
// SecretProviderClass created a moment ago.
func (p *testPod) mount(ctx context.Context) {
	p.t.Helper()
	err := poll(ctx, 20*time.Second, func(ctx context.Context) error {
		err := p.publish(ctx)
		if err != nil && !strings.Contains(err.Error(), "failed to get secretproviderclass") {
			return permanent{err}
		}
		return err
	})
	if err != nil {
		p.t.Fatalf("NodePublishVolume for pod %s/%s: %v", p.pod.Namespace, p.pod.Name, unwrapPermanent(err))
	}
	if ok, err := harness.IsTmpfsMount(p.target); !ok {
		p.t.Fatalf("%s is not a tmpfs mount after NodePublishVolume (%v)", p.target, err)
	}
}

// mountFails is a first NodePublishVolume that must fail; it returns the
// error text kubelet would put in the pod's events.
func (p *testPod) mountFails(ctx context.Context) string {
	p.t.Helper()
	var msg string
	err := poll(ctx, 20*time.Second, func(ctx context.Context) error {
		err := p.publish(ctx)
		if err == nil {
			return permanent{fmt.Errorf("NodePublishVolume for pod %s/%s succeeded; want an error", p.pod.Namespace, p.pod.Name)}
		}
		if strings.Contains(err.Error(), "failed to get secretproviderclass") {
			return err
		}
		msg = err.Error()
		return nil
	})
	if err != nil {
		p.t.Fatal(unwrapPermanent(err))
	}
	if ok, _ := harness.IsTmpfsMount(p.target); ok {
		p.t.Errorf("%s is still mounted after a failed first NodePublishVolume", p.target)
	}
	p.t.Logf("NodePublishVolume for pod %s/%s failed as it should: %s", p.pod.Namespace, p.pod.Name, msg)
	return msg
}

// republish is kubelet's periodic NodePublishVolume (requiresRepublish),
// made once the driver's rotation poll interval has passed since the
// volume was last written, so the driver calls the provider again, and
// coffer's cache TTL since the last call, so coffer reads AWS again.
func (p *testPod) republish(ctx context.Context) {
	p.t.Helper()
	fi, err := os.Stat(p.target)
	if err != nil {
		p.t.Fatal(err)
	}
	due := fi.ModTime().Add(rotationPoll)
	if c := p.lastPublish.Add(cofferCacheTTL); c.After(due) {
		due = c
	}
	if wait := time.Until(due.Add(100 * time.Millisecond)); wait > 0 {
		time.Sleep(wait)
	}
	if err := p.publish(ctx); err != nil {
		p.t.Fatalf("republish (NodePublishVolume) for pod %s/%s: %v", p.pod.Namespace, p.pod.Name, err)
	}
}

// unpublish is kubelet's NodeUnpublishVolume when the pod goes.
func (p *testPod) unpublish() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := env.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: p.id, TargetPath: p.target}); err != nil {
		p.t.Errorf("NodeUnpublishVolume for pod %s/%s: %v", p.pod.Namespace, p.pod.Name, err)
		return
	}
	p.published = false
	if ok, _ := harness.IsTmpfsMount(p.target); ok {
		p.t.Errorf("%s still mounted after NodeUnpublishVolume", p.target)
	}
}

// mountedFile is a file as the pod sees it.
type mountedFile struct {
	content string
	mode    os.FileMode
}

// files reads every file of the mounted volume through the paths the pod
// uses (kubelet's atomic writer keeps them as symlinks into ..data).
func (p *testPod) files() map[string]mountedFile {
	p.t.Helper()
	data, err := filepath.EvalSymlinks(filepath.Join(p.target, "..data"))
	if err != nil {
		p.t.Fatalf("volume of %s/%s has no data: %v", p.pod.Namespace, p.pod.Name, err)
	}
	out := map[string]mountedFile{}
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(data, path)
		if err != nil {
			return err
		}
		visible := filepath.Join(p.target, rel)
		b, err := os.ReadFile(visible)
		if err != nil {
			return err
		}
		fi, err := os.Stat(visible)
		if err != nil {
			return err
		}
		out[rel] = mountedFile{content: string(b), mode: fi.Mode().Perm()}
		return nil
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// wantFile is an expected file of a volume.
type wantFile struct {
	content string
	mode    os.FileMode
}

// checkFiles asserts the volume holds exactly want.
func (p *testPod) checkFiles(want map[string]wantFile) {
	p.t.Helper()
	got := p.files()
	for path, w := range want {
		g, ok := got[path]
		switch {
		case !ok:
			p.t.Errorf("%s/%s: file %q missing (have %s)", p.pod.Namespace, p.pod.Name, path, keys(got))
		case g.content != w.content:
			p.t.Errorf("%s/%s: file %q = %q, want %q", p.pod.Namespace, p.pod.Name, path, g.content, w.content)
		case g.mode != w.mode:
			p.t.Errorf("%s/%s: file %q mode %#o, want %#o", p.pod.Namespace, p.pod.Name, path, g.mode, w.mode)
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			p.t.Errorf("%s/%s: unexpected file %q", p.pod.Namespace, p.pod.Name, path)
		}
	}
}

// podStatus returns the object versions of the SecretProviderClassPodStatus
// the driver keeps for the pod's volume.
func (p *testPod) podStatus(ctx context.Context) (map[string]string, error) {
	name := p.pod.Name + "-" + p.pod.Namespace + "-" + p.spc
	obj, err := env.dyn.Resource(gvrSPCPS).Namespace(p.pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if mounted, _, _ := unstructured.NestedBool(obj.Object, "status", "mounted"); !mounted {
		return nil, fmt.Errorf("SecretProviderClassPodStatus %s: status.mounted is not true", name)
	}
	if tp, _, _ := unstructured.NestedString(obj.Object, "status", "targetPath"); tp != p.target {
		return nil, fmt.Errorf("SecretProviderClassPodStatus %s: targetPath %q, want %q", name, tp, p.target)
	}
	objects, _, _ := unstructured.NestedSlice(obj.Object, "status", "objects")
	versions := map[string]string{}
	for _, o := range objects {
		m, _ := o.(map[string]any)
		id, _ := m["id"].(string)
		v, _ := m["version"].(string)
		versions[id] = v
	}
	return versions, nil
}

// permanent marks an error poll should not retry.
type permanent struct{ error }

func unwrapPermanent(err error) error {
	for e := err; e != nil; {
		if p, ok := e.(permanent); ok {
			return p.error
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	return err
}

func keys[V any](m map[string]V) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// eventually polls check until it succeeds or timeout passes.
func eventually(ctx context.Context, t *testing.T, timeout time.Duration, what string, check func(context.Context) error) {
	t.Helper()
	if err := poll(ctx, timeout, check); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
