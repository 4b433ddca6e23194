package secretsync

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

const seedDecl = `
- secretName: slack-url
  refreshInterval: 1h
  data:
    - {key: address, objectName: dev/slackurl}
`

func TestOwnerCreateUpdateUnchanged(t *testing.T) {
	e := newEnv(t)
	c := defaultContent()
	r := e.one(seedDecl, c, "v1", nil)
	wantResult(t, r, true, ReasonCreated, `Secret "slack-url" created with key "address"`)
	s := e.secret("slack-url")
	if got := data(s); len(got) != 1 || got["address"] != c["dev_slackurl"] {
		t.Errorf("data %v", slices.Sorted(maps.Keys(got)))
	}
	if s.Type != corev1.SecretTypeOpaque || s.Labels[LabelManagedBy] != ManagedByValue || s.Annotations[AnnotationCreatedBy] != testSPC ||
		!strings.HasPrefix(s.Annotations[AnnotationContentHash], "v1:") {
		t.Errorf("metadata: type %s labels %v annotations %v", s.Type, s.Labels, s.Annotations)
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != SPCKind || s.OwnerReferences[0].APIVersion != SPCGroupVersion ||
		s.OwnerReferences[0].Name != testSPC || s.OwnerReferences[0].UID != e.owner.UID || !*s.OwnerReferences[0].Controller {
		t.Errorf("owner references %+v", s.OwnerReferences)
	}
	// Every field coffer set belongs to its server-side apply manager.
	for _, mf := range s.ManagedFields {
		if mf.Manager == FieldManager && mf.Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("managed fields of %s: %s", mf.Manager, mf.Operation)
		}
	}
	if ev := e.events.take(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal SecretCreated ") {
		t.Errorf("events %v", ev)
	}
	e.writes()

	// Same versions, same declaration: no write, no event.
	r = e.one(seedDecl, c, "v1", nil)
	wantResult(t, r, true, ReasonUnchanged)
	if n := e.writes(); n != 0 {
		t.Errorf("%d writes for an unchanged Secret", n)
	}
	if ev := e.events.take(); len(ev) != 0 {
		t.Errorf("events for an unchanged Secret: %v", ev)
	}

	// A new value in AWS: one write.
	c["dev_slackurl"] = "https://hooks.example/new-" + canary
	r = e.one(seedDecl, c, "v2", nil)
	wantResult(t, r, true, ReasonUpdated, `Secret "slack-url" updated: key "address" changed`)
	if got := data(e.secret("slack-url"))["address"]; got != c["dev_slackurl"] {
		t.Errorf("address not updated")
	}
	if n := e.writes(); n != 1 {
		t.Errorf("%d writes for an update, want 1", n)
	}
	if ev := e.events.take(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal SecretUpdated ") {
		t.Errorf("events %v", ev)
	}

	// Someone edits the value by hand: coffer restores it.
	s = e.secret("slack-url")
	s.Data["address"] = []byte("tampered")
	if _, err := e.kube.CoreV1().Secrets(testNS).Update(context.Background(), s, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	wantResult(t, e.one(seedDecl, c, "v2", nil), true, ReasonUpdated)
	if got := data(e.secret("slack-url"))["address"]; got != c["dev_slackurl"] {
		t.Errorf("tampered value not restored")
	}
}

func TestDeclarationChangesApplyServerSide(t *testing.T) {
	e := newEnv(t)
	c := defaultContent()
	first := `[{secretName: s, labels: {a: "1", b: "2"}, annotations: {x.example/n: "1"}, data: [{key: user, objectName: db-user}, {key: pw, objectName: db-pass}]}]`
	wantResult(t, e.one(first, c, "v1", nil), true, ReasonCreated, `2 keys (pw, user)`)
	// Another manager's key on coffer's Secret stays.
	s := e.secret("s")
	s.Data["theirs"] = []byte("t")
	if _, err := e.kube.CoreV1().Secrets(testNS).Update(context.Background(), s, metav1.UpdateOptions{FieldManager: "someone"}); err != nil {
		t.Fatal(err)
	}
	second := `[{secretName: s, creationPolicy: Orphan, labels: {a: "1"}, data: [{key: user, objectName: db-user}]}]`
	wantResult(t, e.one(second, c, "v1", nil), true, ReasonUpdated)
	s = e.secret("s")
	if got := data(s); len(got) != 2 || got["user"] != "app" || got["theirs"] != "t" {
		t.Errorf("data after dropping pw: %v", slices.Sorted(maps.Keys(got)))
	}
	if _, ok := s.Labels["b"]; ok || s.Labels["a"] != "1" {
		t.Errorf("labels %v", s.Labels)
	}
	if _, ok := s.Annotations["x.example/n"]; ok {
		t.Errorf("annotation dropped from the declaration is still there")
	}
	if len(s.OwnerReferences) != 0 {
		t.Errorf("Orphan Secret still owned: %+v", s.OwnerReferences)
	}
	// Back to Owner: the owner reference returns.
	wantResult(t, e.one(`[{secretName: s, data: [{key: user, objectName: db-user}]}]`, c, "v1", nil), true, ReasonUpdated)
	if refs := e.secret("s").OwnerReferences; len(refs) != 1 || refs[0].UID != e.owner.UID {
		t.Errorf("owner references %+v", refs)
	}
}

func TestSecretsCofferDidNotCreate(t *testing.T) {
	theirs := func(name string, annotations map[string]string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Annotations: annotations},
			Data:       map[string][]byte{"own": []byte("mine"), "address": []byte("old")},
		}
	}
	tests := map[string]struct {
		existing *corev1.Secret
		decl     string
		reason   string
		msg      []string
	}{
		"not opted in, Owner": {
			existing: theirs("s", nil),
			decl:     `[{secretName: s, data: [{key: address, objectName: dev/slackurl}]}]`,
			reason:   ReasonNotOwned,
			msg:      []string{`Secret "s" exists and coffer did not create it, so coffer leaves it alone`, `kubectl annotate secret -n team s coffer-csi.github.io/allow-merge-from=app`},
		},
		"not opted in, Merge": {
			existing: theirs("s", map[string]string{AnnotationAllowMerge: "other-class"}),
			decl:     `[{secretName: s, creationPolicy: Merge, data: [{key: address, objectName: dev/slackurl}]}]`,
			reason:   ReasonMergeNotAllowed,
			msg:      []string{`Secret "s" has not opted in to creationPolicy Merge`, `coffer-csi.github.io/allow-merge-from=app`},
		},
		"opted in, but the declaration is Owner": {
			existing: theirs("s", map[string]string{AnnotationAllowMerge: "app"}),
			decl:     `[{secretName: s, data: [{key: address, objectName: dev/slackurl}]}]`,
			reason:   ReasonNotOwned,
		},
		"created for another class": {
			existing: theirs("s", map[string]string{AnnotationCreatedBy: "other"}),
			decl:     `[{secretName: s, data: [{key: address, objectName: dev/slackurl}]}]`,
			reason:   ReasonConflict,
			msg:      []string{`Secret "s" is synced by SecretProviderClass "other"`},
		},
		"merged into by another class": {
			existing: theirs("s", map[string]string{AnnotationMergedBy: "other", AnnotationAllowMerge: "other,app"}),
			decl:     `[{secretName: s, creationPolicy: Merge, data: [{key: address, objectName: dev/slackurl}]}]`,
			reason:   ReasonConflict,
		},
		"merged into, now declared Owner": {
			existing: theirs("s", map[string]string{AnnotationMergedBy: "app", AnnotationAllowMerge: "app"}),
			decl:     `[{secretName: s, data: [{key: address, objectName: dev/slackurl}]}]`,
			reason:   ReasonNotOwned,
			msg:      []string{"coffer merges keys into Secret \"s\" but did not create it"},
		},
		"created by coffer, now declared Merge": {
			existing: theirs("s", map[string]string{AnnotationCreatedBy: "app", AnnotationAllowMerge: "app"}),
			decl:     `[{secretName: s, creationPolicy: Merge, data: [{key: address, objectName: dev/slackurl}]}]`,
			reason:   ReasonConflict,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, tc.existing)
			r := e.one(tc.decl, defaultContent(), "v1", nil)
			wantResult(t, r, false, tc.reason, tc.msg...)
			if n := e.writes(); n != 0 {
				t.Errorf("%d writes to a Secret coffer may not touch", n)
			}
			if got := data(e.secret("s")); got["address"] != "old" || got["own"] != "mine" {
				t.Errorf("data changed: %v", got)
			}
			if ev := e.events.take(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning "+tc.reason+" ") {
				t.Errorf("events %v", ev)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	existing := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: testNS, Annotations: map[string]string{AnnotationAllowMerge: "x, app", AnnotationAllowOverwrite: "ca.crt"}, Labels: map[string]string{"team": "a"}},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k"), "ca.crt": []byte("old-ca")},
	}
	e := newEnv(t, existing)
	c := defaultContent()
	decl := `[{secretName: shared, creationPolicy: Merge, labels: {synced: "yes"}, data: [{key: ca.crt, objectName: cert}, {key: extra, objectName: db-user}]}]`
	wantResult(t, e.one(decl, c, "v1", nil), true, ReasonUpdated, "2 keys (ca.crt, extra) changed")
	s := e.secret("shared")
	want := map[string]string{"tls.crt": "c", "tls.key": "k", "ca.crt": c["cert"], "extra": "app"}
	if got := data(s); len(got) != len(want) || got["tls.crt"] != "c" || got["ca.crt"] != c["cert"] || got["extra"] != "app" {
		t.Errorf("merged data %v", slices.Sorted(maps.Keys(got)))
	}
	if s.Type != corev1.SecretTypeTLS || s.Labels["team"] != "a" || s.Labels["synced"] != "yes" || s.Annotations[AnnotationMergedBy] != testSPC || len(s.OwnerReferences) != 0 {
		t.Errorf("merged metadata: type %s labels %v annotations %v owners %v", s.Type, s.Labels, s.Annotations, s.OwnerReferences)
	}
	if _, ok := s.Labels[LabelManagedBy]; ok {
		t.Errorf("a merged Secret is labelled managed by coffer")
	}
	e.writes()
	wantResult(t, e.one(decl, c, "v1", nil), true, ReasonUnchanged)
	if n := e.writes(); n != 0 {
		t.Errorf("%d writes for an unchanged merge", n)
	}
	// Dropping a key from the declaration removes only that key of coffer's.
	wantResult(t, e.one(`[{secretName: shared, creationPolicy: Merge, data: [{key: ca.crt, objectName: cert}]}]`, c, "v1", nil), true, ReasonUpdated)
	if got := data(e.secret("shared")); len(got) != 3 || got["tls.key"] != "k" {
		t.Errorf("after dropping extra: %v", slices.Sorted(maps.Keys(got)))
	}
	// A declared type that differs is refused.
	wantResult(t, e.one(`[{secretName: shared, creationPolicy: Merge, type: Opaque, data: [{key: ca.crt, objectName: cert}]}]`, c, "v1", nil),
		false, ReasonTypeChanged, "remove type from the declaration or make it agree")
	// A Merge target that does not exist is not created.
	wantResult(t, e.one(`[{secretName: missing, creationPolicy: Merge, data: [{key: a, objectName: cert}]}]`, c, "v1", nil),
		false, ReasonMergeTargetMissing, `Secret "missing" does not exist`)
	e.absent("missing")
}

func TestImmutableAndType(t *testing.T) {
	e := newEnv(t)
	c := defaultContent()
	decl := `[{secretName: s, immutable: true, data: [{key: a, objectName: cert}]}]`
	wantResult(t, e.one(decl, c, "v1", nil), true, ReasonCreated)
	if s := e.secret("s"); s.Immutable == nil || !*s.Immutable {
		t.Fatalf("not immutable")
	}
	wantResult(t, e.one(decl, c, "v1", nil), true, ReasonUnchanged)
	c["cert"] = "new " + canary
	wantResult(t, e.one(decl, c, "v2", nil), false, ReasonImmutable, `Secret "s" is immutable but key "a" changed`, "delete it and coffer recreates it")
	wantResult(t, e.one(`[{secretName: s, data: [{key: a, objectName: cert}]}]`, c, "v2", nil), false, ReasonImmutable, "no longer says so")

	wantResult(t, e.one(`[{secretName: t, data: [{key: a, objectName: cert}]}]`, c, "v1", nil), true, ReasonCreated)
	wantResult(t, e.one(`[{secretName: t, type: example.com/x, data: [{key: a, objectName: cert}]}]`, c, "v1", nil),
		false, ReasonTypeChanged, `Secret "t" has type Opaque and the declaration says example.com/x`)
}

func TestFailedFetchKeepsTheSecret(t *testing.T) {
	e := newEnv(t)
	c := defaultContent()
	decl := `[{secretName: db, deletionPolicy: Delete, data: [{key: user, objectName: db-user}, {key: address, objectName: dev/slackurl}]}]`
	wantResult(t, e.one(decl, c, "v1", nil), true, ReasonCreated)
	before := data(e.secret("db"))
	e.writes()

	cases := map[string]struct {
		content content
		err     error
		msg     []string
	}{
		"access denied": {
			content: without(c, "db.json", "db-user", "db-pass"),
			err:     denied(e.cfg, "db.json"),
			msg:     []string{`Secret "db" not synced, left as it is`, "access denied"},
		},
		"one of two sources gone": {
			content: without(c, "db.json", "db-user", "db-pass"),
			err:     notFound(e.cfg, "db.json"),
			msg:     []string{"deletionPolicy Delete deletes the Secret only when all 2 of its sources are gone", "not found"},
		},
		"no identity": {
			err: errors.New("resolving the AWS identity: the ServiceAccount has no role"),
			msg: []string{"no role"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.one(decl, tc.content, "v1", tc.err)
			wantResult(t, r, false, ReasonFetchFailed, tc.msg...)
			if n := e.writes(); n != 0 {
				t.Errorf("%d writes after a failed fetch", n)
			}
			if got := data(e.secret("db")); len(got) != len(before) || got["user"] != before["user"] {
				t.Errorf("Secret changed by a failed fetch")
			}
		})
	}
	// Under Retain, the source being gone is a failure that keeps the Secret.
	retain := strings.Replace(decl, "deletionPolicy: Delete, ", "", 1)
	wantResult(t, e.one(retain, without(c, "db.json", "db-user", "db-pass", "dev_slackurl"), "v1", notFound(e.cfg, "db.json", "dev_slackurl")), false, ReasonFetchFailed)
	e.secret("db")
}

func TestDeletionPolicyDelete(t *testing.T) {
	e := newEnv(t)
	c := defaultContent()
	decl := `[{secretName: db, deletionPolicy: Delete, data: [{key: user, objectName: db-user}]}]`
	wantResult(t, e.one(decl, c, "v1", nil), true, ReasonCreated)
	e.events.take()
	gone := without(c, "db.json", "db-user", "db-pass")
	wantResult(t, e.one(decl, gone, "v1", notFound(e.cfg, "db.json")), true, ReasonDeleted,
		`Secret "db" deleted: every AWS entry it reads is gone (objects[1] (prod/db)) and deletionPolicy is Delete`)
	e.absent("db")
	if ev := e.events.take(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal SecretDeleted ") {
		t.Errorf("events %v", ev)
	}
	// Still gone: nothing to do, no event.
	wantResult(t, e.one(decl, gone, "v1", notFound(e.cfg, "db.json")), true, ReasonAbsent)
	if ev := e.events.take(); len(ev) != 0 {
		t.Errorf("events %v", ev)
	}
	// A Secret coffer did not create is not deleted.
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: testNS}, Data: map[string][]byte{"k": []byte("v")}}
	if _, err := e.kube.CoreV1().Secrets(testNS).Create(context.Background(), other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantResult(t, e.one(decl, gone, "v1", notFound(e.cfg, "db.json")), false, ReasonNotOwned)
	e.secret("db")
}

func TestWriteRaces(t *testing.T) {
	t.Run("someone creates the Secret between coffer's read and create", func(t *testing.T) {
		e := newEnv(t)
		e.kube.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
			obj := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "slack-url", Namespace: testNS}, Data: map[string][]byte{"theirs": []byte("x")}}
			if err := e.kube.Tracker().Create(a.GetResource(), obj, testNS); err != nil {
				t.Fatal(err)
			}
			return false, nil, nil // the real create now fails: AlreadyExists
		})
		wantResult(t, e.one(seedDecl, defaultContent(), "v1", nil), false, ReasonNotOwned)
		if got := data(e.secret("slack-url")); len(got) != 1 || got["theirs"] != "x" {
			t.Errorf("their Secret changed: %v", got)
		}
	})
	t.Run("the apiserver refuses a write", func(t *testing.T) {
		e := newEnv(t)
		e.kube.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, errors.New("secrets is forbidden: User cannot create resource")
		})
		wantResult(t, e.one(seedDecl, defaultContent(), "v1", nil), false, ReasonWriteFailed, `creating Secret "slack-url": secrets is forbidden`)
	})
}

func TestSyncManyReportsEach(t *testing.T) {
	e := newEnv(t)
	c := defaultContent()
	res := e.sync(`
- {secretName: a, data: [{key: x, objectName: cert}]}
- {secretName: b, data: [{key: x, objectName: db-user}]}
- {secretName: c, type: kubernetes.io/dockerconfigjson, data: [{key: .dockerconfigjson, objectName: cert}]}
`, c, "v1", denied(e.cfg, "db.json"))
	if len(res) != 3 || !res[0].Ready || res[1].Reason != ReasonFetchFailed || res[2].Reason != ReasonInvalidData {
		t.Fatalf("results %+v", res)
	}
	e.secret("a")
	e.absent("b")
	e.absent("c")
	if ev := e.events.take(); len(ev) != 3 {
		t.Errorf("events %v", ev)
	}
}

// Owner references block the class's foreground deletion until the Secret
// is gone, as ExternalSecret's do; Secrets written before get them too.
func TestOwnerReferenceBlocksOwnerDeletion(t *testing.T) {
	e := newEnv(t)
	c := defaultContent()
	wantResult(t, e.one(seedDecl, c, "v1", nil), true, ReasonCreated)
	blocks := func() bool {
		refs := e.secret("slack-url").OwnerReferences
		return len(refs) == 1 && refs[0].BlockOwnerDeletion != nil && *refs[0].BlockOwnerDeletion
	}
	if !blocks() {
		t.Fatalf("owner reference does not block owner deletion: %+v", e.secret("slack-url").OwnerReferences)
	}
	// A Secret written by an older coffer, without blockOwnerDeletion.
	s := e.secret("slack-url")
	s.OwnerReferences[0].BlockOwnerDeletion = nil
	if _, err := e.kube.CoreV1().Secrets(testNS).Update(context.Background(), s, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		t.Fatal(err)
	}
	wantResult(t, e.one(seedDecl, c, "v1", nil), true, ReasonUpdated, "no value changed")
	if !blocks() {
		t.Errorf("owner reference not updated: %+v", e.secret("slack-url").OwnerReferences)
	}
	wantResult(t, e.one(seedDecl, c, "v1", nil), true, ReasonUnchanged)
}

// Merge never takes over a key the Secret already has (its owner's value
// would be overwritten, and removed with coffer's key later) unless the
// Secret names that key in AnnotationAllowOverwrite.
func TestMergeDoesNotTakeOverTheOwnersKeys(t *testing.T) {
	existing := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: testNS, Annotations: map[string]string{AnnotationAllowMerge: "app"}},
		Data:       map[string][]byte{"password": []byte("owners-own"), "user": []byte("owners-user")},
	}
	e := newEnv(t, existing)
	c := defaultContent()
	decl := `[{secretName: shared, creationPolicy: Merge, data: [{key: password, objectName: db-pass}, {key: user, objectName: db-user}, {key: extra, objectName: cert}]}]`
	wantResult(t, e.one(decl, c, "v1", nil), false, ReasonMergeKeyTaken,
		`Secret "shared" already has 2 keys (password, user)`, "kubectl annotate --overwrite secret -n team shared coffer-csi.github.io/allow-merge-overwrite=password,user")
	if n := e.writes(); n != 0 {
		t.Errorf("%d writes to a Secret whose keys coffer may not take over", n)
	}
	if got := data(e.secret("shared")); len(got) != 2 || got["password"] != "owners-own" {
		t.Errorf("the owner's keys changed: %v", slices.Sorted(maps.Keys(got)))
	}

	// Opting in for one key: the other is still refused.
	s := e.secret("shared")
	s.Annotations[AnnotationAllowOverwrite] = "password"
	if _, err := e.kube.CoreV1().Secrets(testNS).Update(context.Background(), s, metav1.UpdateOptions{FieldManager: "kubectl-annotate"}); err != nil {
		t.Fatal(err)
	}
	wantResult(t, e.one(decl, c, "v1", nil), false, ReasonMergeKeyTaken, `already has key "user"`)
	// Without the refused key: merged, the opted-in key taken over.
	decl = `[{secretName: shared, creationPolicy: Merge, data: [{key: password, objectName: db-pass}, {key: extra, objectName: cert}]}]`
	wantResult(t, e.one(decl, c, "v1", nil), true, ReasonUpdated)
	if got := data(e.secret("shared")); got["password"] != c["db-pass"] || got["user"] != "owners-user" || got["extra"] != c["cert"] {
		t.Errorf("merged data %v", slices.Sorted(maps.Keys(got)))
	}
	// Keys coffer added are its own: a new value is no takeover.
	c["cert"] = "new " + canary
	wantResult(t, e.one(decl, c, "v2", nil), true, ReasonUpdated, `key "extra" changed`)
	wantResult(t, e.one(decl, c, "v2", nil), true, ReasonUnchanged)
}
