package node

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coffer-csi/coffer/hack/image"
)

// Scenario 3: a change in AWS reaches the file inside the running
// container, with the driver's rotation (enableSecretRotation,
// rotationPollInterval) and coffer's cache TTL as docs/install.md documents.
func TestRotation(t *testing.T) {
	ns := namespace(t, "rotate")
	secretProviderClass(t, ns, "rot", map[string]any{"objects": "- objectName: node/rotating\n  objectType: secretsmanager\n  objectAlias: rotating\n"}, nil)
	pod := waitRunning(t, ns, createPod(t, workloadPod(ns, "app", "rot", "read", "/mnt/secrets", "2s")).Name, 2*time.Minute)
	podFiles(t, pod, time.Minute, wantFiles(map[string]string{"rotating": "canary-node-rot-1"}))
	putSecret(ctxFor(t, 30*time.Second), t, "node/rotating", "canary-node-rot-2")
	// Poll interval plus TTL plus a round of the driver's reconciler.
	podFiles(t, pod, 6*(rotationPoll+cofferTTL), wantFiles(map[string]string{"rotating": "canary-node-rot-2"}))
}

// Scenario 4: the driver's secretObjects become a Secret a container reads
// as env; coffer's own syncSecrets are kept by the `coffer-controller sync`
// Deployment, a real pod of coffer's chart, with no pod mounting the class.
func TestSync(t *testing.T) {
	ns := namespace(t, "sync")
	secretProviderClass(t, ns, "driver-sync", map[string]any{"objects": `- objectName: node/db
  objectType: secretsmanager
  objectAlias: db.json
  jmesPath:
    - {path: username, objectAlias: username}
`}, []any{map[string]any{
		"secretName": "db-creds", "type": "Opaque",
		"data": []any{map[string]any{"objectName": "username", "key": "username"}},
	}})
	p := workloadPod(ns, "env", "driver-sync", "env", "DB_USER")
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "DB_USER", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "db-creds"}, Key: "username",
	}}}}
	pod := waitRunning(t, ns, createPod(t, p).Name, 2*time.Minute)
	want := "ENV DB_USER " + base64.StdEncoding.EncodeToString([]byte("canary-node-user"))
	if err := poll(time.Minute, func(context.Context) error {
		out, err := containerOutput(pod, "app")
		if err != nil {
			return err
		}
		if out.line("ENV DB_USER") != want {
			return fmt.Errorf("the container printed %q", out.line("ENV DB_USER"))
		}
		return nil
	}); err != nil {
		t.Fatalf("env from the driver's Secret: %v", err)
	}

	// coffer-controller sync: no pod mounts this class; the controller reads AWS as
	// ServiceAccount app and keeps Secret api-key.
	secretProviderClass(t, ns, "coffer-sync", map[string]any{
		"objects": "- objectName: node/api-key\n  objectType: secretsmanager\n",
		"syncSecrets": `- secretName: api-key
  serviceAccountName: app
  refreshInterval: 10s
  data:
    - {key: key, objectName: node/api-key}
`}, nil)
	if err := poll(2*time.Minute, func(ctx context.Context) error {
		s, err := env.kube.CoreV1().Secrets(ns).Get(ctx, "api-key", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if string(s.Data["key"]) != "canary-node-api-key" {
			return fmt.Errorf("Secret api-key has keys %v", len(s.Data))
		}
		return nil
	}); err != nil {
		t.Fatalf("coffer-controller sync did not create Secret %s/api-key: %v\nsync controller pods:\n%s", ns, err, podsOf(releaseNS, "sync"))
	}
}

func podsOf(ns, nameContains string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pods, err := env.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		if strings.Contains(p.Name, nameContains) {
			fmt.Fprintf(&b, "  %s %s\n%s", p.Name, p.Status.Phase, events(ns, p.Name))
		}
	}
	return b.String()
}

// Scenario 7 (before scenario 5, which uninstalls coffer): an application
// that reads its secret once, at start, gets the rotated value: coffer
// records SecretsRotated on its pod, and `coffer-controller sync` (the chart's
// Deployment, with sync.controller.restarts) rolls the opted-in Deployment
// once; its new pod prints the new value, while the old one had printed
// only the old.
func TestRestartOnRotation(t *testing.T) {
	ns := namespace(t, "restart")
	secretProviderClass(t, ns, "once", map[string]any{"objects": "- objectName: node/restart\n  objectType: secretsmanager\n  objectAlias: value\n"}, nil)
	tmpl := workloadPod(ns, "", "once", "read", "/mnt/secrets") // reads once, then waits
	labels := map[string]string{"app": "reads-once"}
	one := int32(1)
	d, err := env.kube.AppsV1().Deployments(ns).Create(ctxFor(t, 30*time.Second), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "reads-once", Namespace: ns, Annotations: map[string]string{"coffer-csi.github.io/restart-on-rotation": "true"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: tmpl.Spec},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := runningPodOf(t, ns, labels, "", 2*time.Minute)
	podFiles(t, first, time.Minute, wantFiles(map[string]string{"value": "canary-node-restart-1"}))

	putSecret(ctxFor(t, 30*time.Second), t, "node/restart", "canary-node-restart-2")
	// The driver's poll, coffer's TTL, a round of the driver's
	// reconciler, the debounce, then the rollout.
	second := runningPodOf(t, ns, labels, string(first.UID), 6*(rotationPoll+cofferTTL)+restartDebounce+time.Minute)
	podFiles(t, second, time.Minute, wantFiles(map[string]string{"value": "canary-node-restart-2"}))
	if at := second.Annotations["coffer-csi.github.io/restarted-at"]; at == "" {
		t.Errorf("the new pod carries no restarted-at annotation: %v", second.Annotations)
	}
	waitEvent(t, ns, first.Name, "SecretsRotated", `SecretProviderClass "once": 1 object(s) rotated: value (version `, time.Minute)
	// The old pod read only the old value: a restart was what it needed.
	if out, err := containerOutput(first, "app"); err == nil {
		if fs, _, done := out.files(); done && fs["value"] != "canary-node-restart-1" {
			t.Errorf("the first pod printed %q", fs["value"])
		}
	}
	// Once: the new pod mounts the new version from its start.
	time.Sleep(2*(rotationPoll+cofferTTL) + restartDebounce)
	now, err := env.kube.AppsV1().Deployments(ns).Get(ctxFor(t, 30*time.Second), d.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if now.Generation != d.Generation+1 {
		t.Errorf("the Deployment went from generation %d to %d, want one restart", d.Generation, now.Generation)
	}
}

// runningPodOf waits for a running pod of the selector other than the one
// with UID not (and not being deleted), and returns it.
func runningPodOf(t *testing.T, ns string, labels map[string]string, not string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := poll(timeout, func(ctx context.Context) error {
		list, err := env.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: labels})})
		if err != nil {
			return err
		}
		for i, p := range list.Items {
			if string(p.UID) != not && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				pod = &list.Items[i]
				return nil
			}
		}
		return fmt.Errorf("%d pods, none new and running", len(list.Items))
	})
	if err != nil {
		t.Fatalf("%v\npods:\n%s", err, podsOf(ns, ""))
	}
	return pod
}

// Scenario 5: helm upgrade to a new image while a pod runs; the running
// pod keeps its files, pods started during and after the rollout mount.
// Then helm uninstall removes what coffer's chart created and leaves the
// provider directory without coffer's socket.
func TestUpgradeAndUninstall(t *testing.T) {
	ns := namespace(t, "upgrade")
	secretProviderClass(t, ns, "mixed", map[string]any{"objects": mixedObjects}, nil)
	running := waitRunning(t, ns, createPod(t, workloadPod(ns, "running", "mixed", "read", "/mnt/secrets", "2s")).Name, 2*time.Minute)
	podFiles(t, running, time.Minute, wantFiles(mixedWant))

	version := env.bins.cofferVersion + "-next"
	spec, arch, err := image.BuildCoffer(image.CofferOptions{Repo: env.bins.repo, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.Build(spec, arch)
	if err != nil {
		t.Fatal(err)
	}
	archive := env.path("images", "coffer-next.tar")
	if err := image.WriteArchive(archive, cofferRepo+":"+version, img); err != nil {
		t.Fatal(err)
	}
	if err := env.ctrImport(ctxFor(t, time.Minute), archive); err != nil {
		t.Fatal(err)
	}

	upgraded := make(chan error, 1)
	go func() { upgraded <- env.upgradeCoffer(context.Background(), version) }()
	// A pod started while the rollout runs: kubelet retries its mount
	// until the new coffer serves.
	during := createPod(t, workloadPod(ns, "during", "mixed", "read", "/mnt/secrets"))
	if err := <-upgraded; err != nil {
		t.Fatal(err)
	}
	ds, err := env.kube.AppsV1().DaemonSets(releaseNS).Get(ctxFor(t, 10*time.Second), cofferRelease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Spec.Template.Spec.Containers[0].Image; got != cofferRepo+":"+version {
		t.Fatalf("DaemonSet image %s after the upgrade", got)
	}
	after := createPod(t, workloadPod(ns, "after", "mixed", "read", "/mnt/secrets"))
	for _, p := range []*corev1.Pod{during, after} {
		p = waitRunning(t, ns, p.Name, 2*time.Minute)
		podFiles(t, p, time.Minute, wantFiles(mixedWant))
	}
	// The running pod still reads every file, after the rollout.
	out, _ := containerOutput(running, "app")
	_, round, _ := out.files()
	podFiles(t, running, time.Minute, func(files map[string]string) error {
		o, _ := containerOutput(running, "app")
		if _, r, _ := o.files(); r <= round {
			return errors.New("no new round of reads since the upgrade")
		}
		return wantFiles(mixedWant)(files)
	})

	if err := env.uninstallCoffer(); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, time.Minute)
	if _, err := env.kube.AppsV1().DaemonSets(releaseNS).Get(ctx, cofferRelease, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("DaemonSet after uninstall: %v", err)
	}
	crs, err := env.kube.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + cofferRelease})
	if err != nil {
		t.Fatal(err)
	}
	if len(crs.Items) > 0 {
		t.Errorf("ClusterRoles left after uninstall: %d", len(crs.Items))
	}
	// coffer removes its socket when it stops: the provider directory is
	// as clean as before the install.
	if err := poll(time.Minute, func(context.Context) error {
		entries, err := os.ReadDir(providerDir)
		if err != nil {
			return err
		}
		var left []string
		for _, e := range entries {
			left = append(left, filepath.Join(providerDir, e.Name()))
		}
		if len(left) > 0 {
			return fmt.Errorf("left in the provider directory: %v", left)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
