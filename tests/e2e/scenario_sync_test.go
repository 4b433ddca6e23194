package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// coffer's own Secret sync (syncSecrets), from the package secretsync.
const (
	annCreatedBy  = "coffer-csi.github.io/created-by"
	annMergedBy   = "coffer-csi.github.io/merged-by"
	annHash       = "coffer-csi.github.io/content-hash"
	annAllowMerge = "coffer-csi.github.io/allow-merge-from"
	annStatus     = "coffer-csi.github.io/sync-status"
)

// 9. The controller (coffer-controller sync) keeps Secrets declared by
// SecretProviderClasses without any pod, reading AWS as each entry's
// serviceAccountName: created, refreshed, left alone when not coffer's,
// merged when opted in, deleted with their source under deletionPolicy
// Delete, collected with the class under creationPolicy Owner.
func TestSecretSyncController(t *testing.T) {
	const ns, region = "e2e-secretsync", "us-east-1"
	ctx := setup(t, ns)
	createSecret(ctx, t, region, "dev/slackurl", "canary-slack-hook-1")
	createSecret(ctx, t, region, "ss/db", `{"username":"canary-ss-user","password":"canary-ss-pw"}`)
	createSecret(ctx, t, region, "ss/rotating", "canary-ss-rot-1")
	createSecret(ctx, t, region, "ss/ephemeral", "canary-ss-eph")
	createSecret(ctx, t, region, "ss/merge", "canary-ss-merge")
	createServiceAccount(ctx, t, ns, "reader", roleARN("secretsync-reader"))
	t.Cleanup(func() { checkNoValuesInMetadata(t, ns) })
	mark := env.cofferSync.LogSize()
	t.Cleanup(func() { checkSyncLog(t, env.cofferSync, mark) })

	t.Run("seed scenario: dev/slackurl becomes Secret slack-url without any pod", func(t *testing.T) {
		createSPC(ctx, t, ns, spcSpec{name: "slack", params: map[string]string{"region": region,
			"objects": "- {objectName: dev/slackurl, objectType: secretsmanager}",
			"syncSecrets": `
- secretName: slack-url
  refreshInterval: 1h
  serviceAccountName: reader
  data:
    - {key: address, objectName: dev/slackurl}
`}})
		s := waitSecretData(ctx, t, ns, "slack-url", map[string]string{"address": "canary-slack-hook-1"})
		spc := getSPC(ctx, t, ns, "slack")
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "SecretProviderClass" || s.OwnerReferences[0].UID != spc.GetUID() {
			t.Errorf("owner references %+v", s.OwnerReferences)
		}
		if s.Labels["app.kubernetes.io/managed-by"] != "coffer" || s.Annotations[annCreatedBy] != "slack" || !strings.HasPrefix(s.Annotations[annHash], "v1:") {
			t.Errorf("labels %v annotations %v", s.Labels, s.Annotations)
		}
		if pods, err := env.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil || len(pods.Items) != 0 {
			t.Errorf("pods in %s: %v %v", ns, pods, err)
		}
		waitEvent(ctx, t, ns, "slack", corev1.EventTypeNormal, "SecretCreated", `Secret "slack-url" created`)
		waitStatus(ctx, t, ns, "slack", `"ready":"True"`, `"reason":"SecretsSynced"`, `"name":"slack-url"`)
		// Every field coffer set is its server-side apply manager's, so a
		// later apply can remove what the declaration drops.
		for _, mf := range getSecret(ctx, t, ns, "slack-url").ManagedFields {
			if mf.Manager == "coffer" && mf.Operation != metav1.ManagedFieldsOperationApply {
				t.Errorf("coffer owns fields of slack-url through a %s operation", mf.Operation)
			}
		}
	})

	t.Run("a changed declaration applies at once, server-side", func(t *testing.T) {
		u, err := env.dyn.Resource(gvrSPC).Namespace(ns).Get(ctx, "slack", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before := getSecret(ctx, t, ns, "slack-url")
		if err := unstructured.SetNestedField(u.Object, `
- secretName: slack-url
  labels: {team: chat}
  serviceAccountName: reader
  data:
    - {key: url, objectName: dev/slackurl}
`, "spec", "parameters", "syncSecrets"); err != nil {
			t.Fatal(err)
		}
		if _, err := env.dyn.Resource(gvrSPC).Namespace(ns).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		s := waitSecretData(ctx, t, ns, "slack-url", map[string]string{"url": "canary-slack-hook-1"})
		if s.Labels["team"] != "chat" || s.UID != before.UID {
			t.Errorf("labels %v; uid %s -> %s (updated in place?)", s.Labels, before.UID, s.UID)
		}
		waitStatus(ctx, t, ns, "slack", `"observedGeneration":2`, `"ready":"True"`)
	})

	t.Run("refreshed when AWS changes, never rewritten when nothing did", func(t *testing.T) {
		createSPC(ctx, t, ns, spcSpec{name: "rotating", params: map[string]string{"region": region,
			"objects": "- {objectName: ss/rotating, objectType: secretsmanager, objectAlias: value}",
			"syncSecrets": `
- {secretName: rotating, refreshInterval: 2s, serviceAccountName: reader, data: [{key: value, objectName: value}]}
`}})
		s := waitSecretData(ctx, t, ns, "rotating", map[string]string{"value": "canary-ss-rot-1"})
		first := syncTimes(ctx, t, ns, "rotating")
		// Several refreshes read AWS (the status says when) ...
		eventually(ctx, t, 20*time.Second, "two more refreshes", func(ctx context.Context) error {
			if now := syncTimes(ctx, t, ns, "rotating"); now == first || now == "" {
				return fmt.Errorf("lastSyncTime still %s", now)
			}
			return nil
		})
		time.Sleep(2500 * time.Millisecond)
		// ... and none wrote the unchanged Secret.
		if again := getSecret(ctx, t, ns, "rotating"); again.ResourceVersion != s.ResourceVersion {
			t.Errorf("an unchanged Secret was rewritten: resourceVersion %s -> %s", s.ResourceVersion, again.ResourceVersion)
		}
		putSecretString(ctx, t, region, "ss/rotating", "canary-ss-rot-2")
		waitSecretData(ctx, t, ns, "rotating", map[string]string{"value": "canary-ss-rot-2"})
		waitEvent(ctx, t, ns, "rotating", corev1.EventTypeNormal, "SecretUpdated", `Secret "rotating" updated: key "value" changed`)
	})

	t.Run("a Secret coffer did not create is left alone, unless it opts in to Merge", func(t *testing.T) {
		secrets := env.kube.CoreV1().Secrets(ns)
		theirs, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "theirs"}, StringData: map[string]string{"own": "mine"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "shared", Annotations: map[string]string{annAllowMerge: "merge"}},
			StringData: map[string]string{"own": "mine"},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		createSPC(ctx, t, ns, spcSpec{name: "merge", params: map[string]string{"region": region,
			"objects": "- {objectName: ss/merge, objectType: secretsmanager, objectAlias: m}",
			"syncSecrets": `
- {secretName: theirs, serviceAccountName: reader, data: [{key: own, objectName: m}]}
- {secretName: shared, creationPolicy: Merge, serviceAccountName: reader, data: [{key: merged, objectName: m}]}
`}})
		shared := waitSecretData(ctx, t, ns, "shared", map[string]string{"own": "mine", "merged": "canary-ss-merge"})
		if shared.Annotations[annMergedBy] != "merge" || len(shared.OwnerReferences) != 0 {
			t.Errorf("merged Secret: annotations %v owners %v", shared.Annotations, shared.OwnerReferences)
		}
		waitEvent(ctx, t, ns, "merge", corev1.EventTypeWarning, "SecretNotOwned", `Secret "theirs" exists and coffer did not create it`)
		waitStatus(ctx, t, ns, "merge", `"ready":"False"`, `"reason":"SecretNotOwned"`)
		if now := getSecret(ctx, t, ns, "theirs"); now.ResourceVersion != theirs.ResourceVersion || string(now.Data["own"]) != "mine" {
			t.Errorf("coffer changed a Secret it did not create")
		}
	})

	t.Run("deletionPolicy Delete: the Secret goes when its source does", func(t *testing.T) {
		createSPC(ctx, t, ns, spcSpec{name: "ephemeral", params: map[string]string{"region": region,
			"objects": "- {objectName: ss/ephemeral, objectType: secretsmanager, objectAlias: e}",
			"syncSecrets": `
- {secretName: ephemeral, deletionPolicy: Delete, refreshInterval: 2s, serviceAccountName: reader, data: [{key: e, objectName: e}]}
`}})
		waitSecretData(ctx, t, ns, "ephemeral", map[string]string{"e": "canary-ss-eph"})
		deleteSecret(ctx, t, region, "ss/ephemeral")
		waitSecretGone(ctx, t, ns, "ephemeral")
		waitEvent(ctx, t, ns, "ephemeral", corev1.EventTypeNormal, "SecretDeleted", "every AWS entry it reads is gone")
		waitStatus(ctx, t, ns, "ephemeral", `"ready":"True"`)
	})

	t.Run("Owner Secrets go with the class, Orphan Secrets stay; extract and template", func(t *testing.T) {
		createSPC(ctx, t, ns, spcSpec{name: "gc", params: map[string]string{"region": region,
			"objects": "- {objectName: ss/db, objectType: secretsmanager, objectAlias: db, jmesPath: [{path: username, objectAlias: user}]}",
			"syncSecrets": `
- secretName: gc-owned
  serviceAccountName: reader
  dataFrom: [{extract: db}]
  template:
    mergePolicy: Merge
    data: {dsn: "postgres://{{ .username }}:{{ .password }}@db:5432/app"}
- {secretName: gc-orphan, creationPolicy: Orphan, serviceAccountName: reader, data: [{key: user, objectName: user}]}
`}})
		waitSecretData(ctx, t, ns, "gc-owned", map[string]string{
			"username": "canary-ss-user", "password": "canary-ss-pw", "dsn": "postgres://canary-ss-user:canary-ss-pw@db:5432/app",
		})
		orphan := waitSecretData(ctx, t, ns, "gc-orphan", map[string]string{"user": "canary-ss-user"})
		if len(orphan.OwnerReferences) != 0 {
			t.Errorf("Orphan Secret has owners %+v", orphan.OwnerReferences)
		}
		background := metav1.DeletePropagationBackground
		if err := env.dyn.Resource(gvrSPC).Namespace(ns).Delete(ctx, "gc", metav1.DeleteOptions{PropagationPolicy: &background}); err != nil {
			t.Fatal(err)
		}
		waitSecretGone(ctx, t, ns, "gc-owned")
		getSecret(ctx, t, ns, "gc-orphan")
	})

	t.Run("a bad declaration is reported on the class", func(t *testing.T) {
		createSPC(ctx, t, ns, spcSpec{name: "typo", params: map[string]string{"region": region,
			"objects":     "- {objectName: dev/slackurl, objectType: secretsmanager}",
			"syncSecrets": "- {secretName: typo, serviceAccountName: reader, data: [{key: address, objectName: dev/slackurI}]}",
		}})
		waitEvent(ctx, t, ns, "typo", corev1.EventTypeWarning, "InvalidDeclaration", `"dev/slackurI" is not a file this SecretProviderClass writes; did you mean "dev/slackurl"?`)
		waitStatus(ctx, t, ns, "typo", `"ready":"False"`, `"reason":"InvalidDeclaration"`)
	})
}

// 10. coffer serve --sync-secrets syncs after each mount, as the pod, the
// entries of the pod's ServiceAccount, from the SecretProviderClass object:
// a pod's volumeAttributes can neither add a declaration nor redirect which
// AWS entries fill a Secret, and an entry naming no ServiceAccount is
// written by no one.
func TestSecretSyncAtMount(t *testing.T) {
	const ns, region = "e2e-mountsync", "us-east-1"
	ctx := setup(t, ns)
	createSecret(ctx, t, region, "ms/db", "canary-ms-pw-1")
	createSecret(ctx, t, region, "ms/other", "canary-ms-other")
	createServiceAccount(ctx, t, ns, "app", roleARN("mountsync-app"))
	t.Cleanup(func() { checkNoValuesInMetadata(t, ns) })
	mark := env.coffer.LogSize()
	t.Cleanup(func() { checkSyncLog(t, env.coffer, mark) })
	objects := "- {objectName: ms/db, objectType: secretsmanager, objectAlias: db}"
	createSPC(ctx, t, ns, spcSpec{name: "app", params: map[string]string{"region": region, "objects": objects,
		"syncSecrets": "- {secretName: app-db, serviceAccountName: app, refreshInterval: \"0\", data: [{key: password, objectName: db}]}\n" +
			"- {secretName: nobodys, deletionPolicy: Delete, data: [{key: password, objectName: db}]}"}})
	createSPC(ctx, t, ns, spcSpec{name: "plain", params: map[string]string{"region": region, "objects": objects}})

	// No serviceAccountName: synced by no one, and the status says why.
	waitStatus(ctx, t, ns, "app", `"reason":"NoServiceAccount"`)

	pod := createPod(ctx, t, ns, "app-0", "app", "app")
	pod.mount(ctx)
	s := waitSecretData(ctx, t, ns, "app-db", map[string]string{"password": "canary-ms-pw-1"})
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Name != "app" {
		t.Errorf("owner references %+v", s.OwnerReferences)
	}
	waitEvent(ctx, t, ns, "app", corev1.EventTypeNormal, "SecretCreated", `Secret "app-db" created`)
	waitEvent(ctx, t, ns, "app", corev1.EventTypeWarning, "NoServiceAccount", `Secret "nobodys" not synced`)
	if _, err := env.kube.CoreV1().Secrets(ns).Get(ctx, "nobodys", metav1.GetOptions{}); !isNotFound(err) {
		t.Errorf("the mount wrote Secret nobodys, which names no ServiceAccount (%v)", err)
	}

	// refreshInterval 0: coffer-controller sync leaves app-db alone until the class
	// changes; the new value comes from the pod's rotation.
	putSecretString(ctx, t, region, "ms/db", "canary-ms-pw-2")
	pod.republish(ctx)
	pod.checkFiles(map[string]wantFile{"db": {"canary-ms-pw-2", 0o644}})
	waitSecretData(ctx, t, ns, "app-db", map[string]string{"password": "canary-ms-pw-2"})

	t.Run("volumeAttributes cannot add a declaration", func(t *testing.T) {
		mark := env.coffer.LogSize()
		p := createPod(ctx, t, ns, "injector", "app", "plain", withVolumeAttributes(map[string]string{
			"syncSecrets": "- {secretName: injected, data: [{key: password, objectName: db}]}",
		}))
		p.mount(ctx)
		waitLog(ctx, t, env.coffer, mark, "declares no syncSecrets")
		if _, err := env.kube.CoreV1().Secrets(ns).Get(ctx, "injected", metav1.GetOptions{}); !isNotFound(err) {
			t.Errorf("a pod's volumeAttributes created Secret injected (%v)", err)
		}
	})

	t.Run("volumeAttributes cannot redirect the class's objects or replace its declaration", func(t *testing.T) {
		mark := env.coffer.LogSize()
		p := createPod(ctx, t, ns, "redirect", "app", "app", withVolumeAttributes(map[string]string{
			"objects":     "- {objectName: ms/other, objectType: secretsmanager, objectAlias: db}",
			"syncSecrets": "- {secretName: injected, data: [{key: password, objectName: db}]}",
		}))
		p.mount(ctx)
		// The pod mounts what it asked for ...
		p.checkFiles(map[string]wantFile{"db": {"canary-ms-other", 0o644}})
		// ... but the sync fetched the class's own objects again.
		waitLog(ctx, t, env.coffer, mark, "refetched=true")
		if got := string(getSecret(ctx, t, ns, "app-db").Data["password"]); got != "canary-ms-pw-2" {
			t.Errorf("Secret app-db filled from the pod's objects: %q", got)
		}
		if _, err := env.kube.CoreV1().Secrets(ns).Get(ctx, "injected", metav1.GetOptions{}); !isNotFound(err) {
			t.Errorf("a pod's volumeAttributes created Secret injected (%v)", err)
		}
	})
}
