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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coffer-csi/coffer/hack/image"
)

// Scenario 3: a change in AWS reaches the file inside the running
// container, with the driver's rotation (enableSecretRotation,
// rotationPollInterval) and coffer's cache TTL as the README documents.
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
// as env; coffer's own syncSecrets are kept by the `coffer sync`
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

	// coffer sync: no pod mounts this class; the controller reads AWS as
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
		t.Fatalf("coffer sync did not create Secret %s/api-key: %v\nsync controller pods:\n%s", ns, err, podsOf(releaseNS, "sync"))
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
