package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// coffer-controller sync's restarts (package secretsync/restart).
const (
	annRestartOn    = "coffer-csi.github.io/restart-on-rotation"
	annRestartedAt  = "coffer-csi.github.io/restarted-at"
	annRestartedFor = "coffer-csi.github.io/restarted-for"
)

// 13. Workloads learn about rotation. A secret rotates: every remounted
// pod gets a SecretsRotated event naming the object and its new version;
// the Deployment that opted in (it mounts the class) and the one that
// consumes the synced Secret each restart exactly once, through a
// pod-template annotation, though three pods rotated and the restart's own
// pods mount the new version; the Deployment that did not opt in is left
// alone; and the chart's admission policy refuses coffer-controller sync every other
// change to a workload.
func TestRestartOnRotation(t *testing.T) {
	const ns, region = "e2e-rollout", "us-east-1"
	ctx := setup(t, ns)
	createServiceAccount(ctx, t, ns, "app", roleARN("rollout-app"))
	t.Cleanup(func() { checkNoValuesInMetadata(t, ns) })
	mark := env.cofferSync.LogSize()
	t.Cleanup(func() { checkSyncLog(t, env.cofferSync, mark) })
	createSPC(ctx, t, ns, spcSpec{name: "db", params: map[string]string{"region": region,
		"objects": "- {objectName: rollout/db, objectType: secretsmanager, objectAlias: password}",
		"syncSecrets": `
- {secretName: app-db, refreshInterval: 2s, serviceAccountName: app, data: [{key: password, objectName: password}]}
`}})
	waitSecretData(ctx, t, ns, "app-db", map[string]string{"password": "canary-rollout-1"})

	opted := createDeployment(ctx, t, ns, "opted", "true", mountsClass("db"))
	plain := createDeployment(ctx, t, ns, "plain", "", mountsClass("db"))
	createDeployment(ctx, t, ns, "consumer", "secret/app-db", consumesSecret("app-db"))
	var oldPods []*testPod
	for _, d := range []*appsv1.Deployment{opted, opted, opted, plain} {
		p := createPod(ctx, t, ns, fmt.Sprintf("%s-%d", d.Name, len(oldPods)), "app", "db", deploymentPod(ctx, t, d, "1a2b3c4d5", ""))
		p.mount(ctx)
		oldPods = append(oldPods, p)
	}
	// coffer-controller sync's baseline: what each pod started with, the Secret's content.
	waitLog(ctx, t, env.cofferSync, mark, "workload=Deployment/e2e-rollout/opted follows=secretproviderclass/db mounts=3 secrets=0")
	waitLog(ctx, t, env.cofferSync, mark, "workload=Deployment/e2e-rollout/consumer follows=secret/app-db mounts=0 secrets=1")

	// 1. The secret rotates; the driver's sweep remounts every pod.
	v2 := putSecretString(ctx, t, region, "rollout/db", "canary-rollout-2")
	for _, p := range oldPods {
		p.republish(ctx)
		p.checkFiles(map[string]wantFile{"password": {"canary-rollout-2", 0o644}})
	}
	for _, p := range oldPods {
		waitPodEvent(ctx, t, ns, p.pod.Name, "SecretsRotated", fmt.Sprintf(`SecretProviderClass "db": 1 object(s) rotated: password (version %s)`, v2))
	}

	// 2. Each opted-in Deployment restarts, once.
	restartedAt := waitRestarted(ctx, t, ns, "opted", "secretproviderclass/db password@"+v2)
	waitRestarted(ctx, t, ns, "consumer", "secret/app-db")
	waitWorkloadEvent(ctx, t, ns, "opted", "RestartedOnRotation", "secretproviderclass/db password@"+v2)
	waitWorkloadEvent(ctx, t, ns, "consumer", "RestartedOnRotation", "secret/app-db")
	// The rollout, played here (no Deployment controller runs): new pods
	// from the restarted template mount the new version; the old ones are
	// remounted once more on their way out.
	for i := range 3 {
		p := createPod(ctx, t, ns, fmt.Sprintf("opted-new-%d", i), "app", "db", deploymentPod(ctx, t, opted, "6e7f8a9b0", restartedAt))
		p.mount(ctx)
		p.checkFiles(map[string]wantFile{"password": {"canary-rollout-2", 0o644}})
	}
	for _, p := range oldPods[:2] {
		p.republish(ctx)
	}
	time.Sleep(3 * restartDebounce)
	for name, want := range map[string]int64{"opted": 2, "consumer": 2, "plain": 1} {
		d, err := env.kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Generation != want {
			t.Errorf("Deployment %s at generation %d, want %d (annotations %v)", name, d.Generation, want, d.Spec.Template.Annotations)
		}
	}
	log := env.cofferSync.LogSince(mark)
	for _, w := range []string{"opted", "consumer"} {
		if n := strings.Count(log, `msg="workload restarted" workload=Deployment/e2e-rollout/`+w+" "); n != 1 {
			t.Errorf("coffer-controller sync restarted %s %d times, want 1", w, n)
		}
	}
	if d, _ := env.kube.AppsV1().Deployments(ns).Get(ctx, "plain", metav1.GetOptions{}); d != nil && len(d.Spec.Template.Annotations) != 0 {
		t.Errorf("the Deployment that did not opt in was changed: %v", d.Spec.Template.Annotations)
	}

	// 3. The admission policy lets coffer-controller sync change nothing else.
	asSync := impersonate(t, "system:serviceaccount:"+cofferNamespace+":"+cofferSyncSA)
	const refusal = "coffer-controller sync may change nothing on a workload but the pod template's coffer-csi.github.io/restarted-at"
	for name, body := range map[string]string{
		"scale it":                  `{"spec":{"replicas":10}}`,
		"change the image":          `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"attacker.example/app:1"}]}}}}`,
		"another pod annotation":    `{"spec":{"template":{"metadata":{"annotations":{"example.com/x":"1"}}}}}`,
		"drop the opt-in":           `{"metadata":{"annotations":{"` + annRestartOn + `":null}}}`,
		"change the ServiceAccount": `{"spec":{"template":{"spec":{"serviceAccountName":"default"}}}}`,
	} {
		_, err := asSync.AppsV1().Deployments(ns).Patch(ctx, "opted", types.MergePatchType, []byte(body), metav1.PatchOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), refusal) {
			t.Errorf("coffer-controller sync may %s: %v, want refused by the admission policy", name, err)
		}
	}
	if err := asSync.AppsV1().Deployments(ns).Delete(ctx, "plain", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("coffer-controller sync deleting a Deployment: %v, want forbidden", err)
	}
	d, err := env.kube.AppsV1().Deployments(ns).Get(ctx, "opted", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 2 || *d.Spec.Replicas != 3 || d.Spec.Template.Spec.Containers[0].Image != "registry.example/app:1" {
		t.Errorf("the opted-in Deployment after coffer-controller sync's refused changes: generation %d, replicas %d, image %s", d.Generation, *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
	}
}

type deploymentOption func(*corev1.PodSpec)

func mountsClass(class string) deploymentOption {
	return func(s *corev1.PodSpec) {
		readOnly := true
		s.Volumes = append(s.Volumes, corev1.Volume{Name: "secrets-store", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: driverName, ReadOnly: &readOnly, VolumeAttributes: map[string]string{"secretProviderClass": class},
		}}})
	}
}

func consumesSecret(name string) deploymentOption {
	return func(s *corev1.PodSpec) {
		s.Containers[0].Env = append(s.Containers[0].Env, corev1.EnvVar{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "password"},
		}})
	}
}

// createDeployment creates a Deployment of three replicas whose opt-in
// annotation is restartOn ("" for none).
func createDeployment(ctx context.Context, t *testing.T, ns, name, restartOn string, opts ...deploymentOption) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": name}
	replicas := int32(3)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: "app",
					Containers:         []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
				},
			},
		},
	}
	if restartOn != "" {
		d.Annotations = map[string]string{annRestartOn: restartOn}
	}
	for _, o := range opts {
		o(&d.Spec.Template.Spec)
	}
	created, err := env.kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created
}

// deploymentPod makes a pod one of d's, as the Deployment controller's
// ReplicaSet <d>-<hash> would create it (that controller does not run here:
// the ReplicaSet is created for the garbage collector's sake), carrying the
// restarted-at annotation of the template it was made from.
func deploymentPod(ctx context.Context, t *testing.T, d *appsv1.Deployment, hash, restartedAt string) podOption {
	t.Helper()
	name := d.Name + "-" + hash
	rs, err := env.kube.AppsV1().ReplicaSets(d.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		controller := true
		labels := map[string]string{"app": d.Name, "pod-template-hash": hash}
		zero := int32(0)
		rs, err = env.kube.AppsV1().ReplicaSets(d.Namespace).Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.Namespace, Labels: labels, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &controller,
			}}},
			Spec: appsv1.ReplicaSetSpec{Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: d.Spec.Template.Spec}},
		}, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	return func(p *corev1.Pod) {
		controller := true
		p.Labels = map[string]string{"app": d.Name, "pod-template-hash": hash}
		if restartedAt != "" {
			p.Annotations = map[string]string{annRestartedAt: restartedAt}
		}
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &controller})
	}
}

// waitRestarted waits for Deployment name's pod template to carry a
// restart for want, and returns its restarted-at.
func waitRestarted(ctx context.Context, t *testing.T, ns, name, want string) string {
	t.Helper()
	var at string
	eventually(ctx, t, 30*time.Second, "a restart of "+name, func(ctx context.Context) error {
		d, err := env.kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		a := d.Spec.Template.Annotations
		if a[annRestartedAt] == "" || !strings.Contains(a[annRestartedFor], want) {
			return fmt.Errorf("template annotations %v", a)
		}
		if _, err := time.Parse(time.RFC3339Nano, a[annRestartedAt]); err != nil {
			return permanent{fmt.Errorf("%s: %w", annRestartedAt, err)}
		}
		at = a[annRestartedAt]
		return nil
	})
	return at
}

func waitPodEvent(ctx context.Context, t *testing.T, ns, pod, reason, msg string) {
	t.Helper()
	waitInvolvedEvent(ctx, t, ns, "Pod", pod, corev1.EventTypeNormal, reason, msg)
}

func waitWorkloadEvent(ctx context.Context, t *testing.T, ns, name, reason, msg string) {
	t.Helper()
	waitInvolvedEvent(ctx, t, ns, "Deployment", name, corev1.EventTypeNormal, reason, msg)
}

// impersonate is a client acting as user (a ServiceAccount), as the admin
// may.
func impersonate(t *testing.T, user string) kubernetes.Interface {
	t.Helper()
	cfg := rest.CopyConfig(env.restConfig(env.adminToken))
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:serviceaccounts", "system:authenticated"}}
	k, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
