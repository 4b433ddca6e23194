package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario 7: an application that reads its secret once, at start, gets
// the rotated value: coffer records SecretsRotated on its pod, and `coffer
// sync` (the chart's Deployment, with sync.controller.restarts) rolls the
// opted-in Deployment once; its new pod prints the new value, while the old
// one had printed only the old.
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
