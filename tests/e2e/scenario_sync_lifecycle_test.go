package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// 11. The controller's lifecycle as an ExternalSecret user expects it: a
// secret scheduled for deletion in AWS is gone (deletionPolicy Delete), and
// back when restored; foreground deletion of a class waits for its Secrets
// (the real garbage collector); a Secret's owner opting in to Merge takes
// effect at once, and never loses its own keys to the merge.
func TestSecretSyncControllerLifecycle(t *testing.T) {
	const ns, region = "e2e-synclife", "us-east-1"
	ctx := setup(t, ns)
	createSecret(ctx, t, region, "sl/scheduled", "canary-sl-sched")
	createSecret(ctx, t, region, "sl/owned", "canary-sl-owned")
	createSecret(ctx, t, region, "sl/optin", "canary-sl-optin-1")
	createServiceAccount(ctx, t, ns, "reader", roleARN("synclife-reader"))
	t.Cleanup(func() { checkNoValuesInMetadata(t, ns) })
	mark := env.cofferSync.LogSize()
	t.Cleanup(func() { checkSyncLog(t, env.cofferSync, mark) })
	sm := secretsmanager.NewFromConfig(adminConfig(region))

	t.Run("scheduled for deletion counts as gone under deletionPolicy Delete; restored, it is back", func(t *testing.T) {
		createSPC(ctx, t, ns, spcSpec{name: "scheduled", params: map[string]string{"region": region,
			"objects": "- {objectName: sl/scheduled, objectType: secretsmanager, objectAlias: s}",
			"syncSecrets": `
- {secretName: scheduled, deletionPolicy: Delete, refreshInterval: 2s, serviceAccountName: reader, data: [{key: s, objectName: s}]}
`}})
		waitSecretData(ctx, t, ns, "scheduled", map[string]string{"s": "canary-sl-sched"})
		// The default: a 30-day recovery window.
		if _, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("sl/scheduled")}); err != nil {
			t.Fatal(err)
		}
		waitSecretGone(ctx, t, ns, "scheduled")
		waitEvent(ctx, t, ns, "scheduled", corev1.EventTypeNormal, "SecretDeleted", "every AWS entry it reads is gone")
		waitStatus(ctx, t, ns, "scheduled", `"ready":"True"`, `"reason":"SecretAbsent"`)
		if _, err := sm.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("sl/scheduled")}); err != nil {
			t.Fatal(err)
		}
		waitSecretData(ctx, t, ns, "scheduled", map[string]string{"s": "canary-sl-sched"})
	})

	t.Run("foreground deletion of the class waits for its Secrets", func(t *testing.T) {
		createSPC(ctx, t, ns, spcSpec{name: "fg", params: map[string]string{"region": region,
			"objects":     "- {objectName: sl/owned, objectType: secretsmanager, objectAlias: o}",
			"syncSecrets": "- {secretName: fg-owned, serviceAccountName: reader, data: [{key: o, objectName: o}]}",
		}})
		s := waitSecretData(ctx, t, ns, "fg-owned", map[string]string{"o": "canary-sl-owned"})
		if refs := s.OwnerReferences; len(refs) != 1 || refs[0].BlockOwnerDeletion == nil || !*refs[0].BlockOwnerDeletion {
			t.Fatalf("owner references %+v", refs)
		}
		// A finalizer holds the Secret, so that the class's deletion can
		// be seen waiting for it.
		const hold = "e2e.coffer-csi.github.io/hold"
		patchFinalizers(ctx, t, ns, "fg-owned", []string{hold})
		foreground := metav1.DeletePropagationForeground
		if err := env.dyn.Resource(gvrSPC).Namespace(ns).Delete(ctx, "fg", metav1.DeleteOptions{PropagationPolicy: &foreground}); err != nil {
			t.Fatal(err)
		}
		eventually(ctx, t, 30*time.Second, "the garbage collector deleting fg-owned", func(ctx context.Context) error {
			if s := getSecret(ctx, t, ns, "fg-owned"); s.DeletionTimestamp == nil {
				return errors.New("fg-owned has no deletionTimestamp yet")
			}
			return nil
		})
		time.Sleep(2 * time.Second)
		if _, err := env.dyn.Resource(gvrSPC).Namespace(ns).Get(ctx, "fg", metav1.GetOptions{}); err != nil {
			t.Fatalf("the class went before its Secret: %v", err)
		}
		patchFinalizers(ctx, t, ns, "fg-owned", nil)
		waitSecretGone(ctx, t, ns, "fg-owned")
		eventually(ctx, t, 30*time.Second, "class fg gone", func(ctx context.Context) error {
			_, err := env.dyn.Resource(gvrSPC).Namespace(ns).Get(ctx, "fg", metav1.GetOptions{})
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("class fg still there (%v)", err)
		})
	})

	t.Run("an opt-in to Merge takes effect at once; the owner's keys are never taken over", func(t *testing.T) {
		secrets := env.kube.CoreV1().Secrets(ns)
		if _, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "later"}, StringData: map[string]string{"own": "mine"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		createSPC(ctx, t, ns, spcSpec{name: "optin", params: map[string]string{"region": region,
			"objects": "- {objectName: sl/optin, objectType: secretsmanager, objectAlias: m}",
			"syncSecrets": `
- {secretName: later, creationPolicy: Merge, refreshInterval: 2s, serviceAccountName: reader, data: [{key: merged, objectName: m}]}
`}})
		waitEvent(ctx, t, ns, "optin", corev1.EventTypeWarning, "MergeNotAllowed", `Secret "later" has not opted in`)
		// Refused a few times: the retry backoff is now 20 s or more.
		time.Sleep(16 * time.Second)
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"optin"}}}`, annAllowMerge)
		if _, err := secrets.Patch(ctx, "later", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		opted := time.Now()
		eventually(ctx, t, 10*time.Second, "merged within seconds of the opt-in", func(ctx context.Context) error {
			if _, ok := getSecret(ctx, t, ns, "later").Data["merged"]; !ok {
				return errors.New("not merged yet")
			}
			return nil
		})
		t.Logf("merged %s after the opt-in", time.Since(opted).Round(100*time.Millisecond))
		// coffer's own key is refreshed (it is not a takeover) ...
		putSecretString(ctx, t, region, "sl/optin", "canary-sl-optin-2")
		waitSecretData(ctx, t, ns, "later", map[string]string{"own": "mine", "merged": "canary-sl-optin-2"})
		// ... but the owner's key is refused until named per key.
		u, err := env.dyn.Resource(gvrSPC).Namespace(ns).Get(ctx, "optin", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		params := u.Object["spec"].(map[string]any)["parameters"].(map[string]any)
		params["syncSecrets"] = "- {secretName: later, creationPolicy: Merge, refreshInterval: 2s, serviceAccountName: reader, data: [{key: merged, objectName: m}, {key: own, objectName: m}]}"
		if _, err := env.dyn.Resource(gvrSPC).Namespace(ns).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitEvent(ctx, t, ns, "optin", corev1.EventTypeWarning, "MergeKeyTaken", `Secret "later" already has key "own"`)
		if got := string(getSecret(ctx, t, ns, "later").Data["own"]); got != "mine" {
			t.Errorf("the owner's key was taken over")
		}
	})
}
