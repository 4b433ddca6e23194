package deploy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestChartAdmissionPolicy installs the chart's ServiceAccounts, RBAC and
// ValidatingAdmissionPolicies on the real kube-apiserver and acts as
// coffer's ServiceAccounts (impersonation): coffer-controller sync may request tokens
// only for the audiences coffer exchanges with AWS, coffer's Secret
// writes reach only the Secrets it manages, the DaemonSet's events are
// SecretsRotated events on pods, and coffer-controller sync's restarts change nothing
// on a workload but its pod template's restart annotations.
func TestChartAdmissionPolicy(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	const ns, team = "vap", "vap-team"
	for _, n := range []string{ns, team} {
		if err := c.EnsureNamespace(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	objs := render(t, "coffer", ns, `sync: {atMount: true, controller: {enabled: true, restarts: {enabled: true}}}`)
	var policies int
	for _, o := range objs {
		switch o.GetKind() {
		case "ValidatingAdmissionPolicy":
			policies++
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ValidatingAdmissionPolicyBinding":
		default:
			continue
		}
		if o.GetKind() == "ClusterRole" || o.GetKind() == "ClusterRoleBinding" {
			// Cluster-scoped names of their own (TestChartRBAC installs too).
			o.SetName(ns + "-" + o.GetName())
			if o.GetKind() == "ClusterRoleBinding" {
				_ = unstructured.SetNestedField(o.Object, ns+"-"+o.Object["roleRef"].(map[string]any)["name"].(string), "roleRef", "name")
			}
		}
		if _, err := c.Apply(ctx, o, false); err != nil {
			t.Fatalf("%s: %v", ref(o), err)
		}
	}
	for _, o := range objs {
		if o.GetKind() == "ValidatingAdmissionPolicy" {
			if _, err := c.Apply(ctx, o, false); err != nil {
				t.Fatalf("%s: %v", ref(o), err)
			}
		}
	}
	if policies != 4 {
		t.Fatalf("the chart rendered %d ValidatingAdmissionPolicies, want 4", policies)
	}
	if _, err := c.Kube.CoreV1().ServiceAccounts(team).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	as := func(sa string) kubernetes.Interface {
		cfg := rest.CopyConfig(apiServer.RESTConfig())
		cfg.Impersonate = rest.ImpersonationConfig{
			UserName: "system:serviceaccount:" + ns + ":" + sa,
			Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		}
		k, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	sync, provider := as("coffer-sync"), as("coffer")
	token := func(audiences ...string) error {
		_, err := sync.CoreV1().ServiceAccounts(team).CreateToken(ctx, "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences}}, metav1.CreateOptions{})
		return err
	}
	// The apiserver loads new policies through an informer: wait until
	// the policy refuses, then judge every case.
	refused := func(err error, want string) bool {
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), want)
	}
	const audienceMsg = "only for the audiences it exchanges with AWS"
	deadline := time.Now().Add(30 * time.Second)
	for err := token("https://kubernetes.default.svc"); !refused(err, audienceMsg); err = token("https://kubernetes.default.svc") {
		if time.Now().After(deadline) {
			t.Fatalf("a token for the apiserver's audience: %v, want refused by the policy", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, tc := range []struct {
		name      string
		audiences []string
		allow     bool
	}{
		{"IRSA", []string{"sts.amazonaws.com"}, true},
		{"EKS Pod Identity", []string{"pods.eks.amazonaws.com"}, true},
		{"both", []string{"sts.amazonaws.com", "pods.eks.amazonaws.com"}, true},
		{"the apiserver's default audience", nil, false},
		{"an allowed one and another", []string{"sts.amazonaws.com", "vault"}, false},
		{"another service", []string{"vault"}, false},
	} {
		err := token(tc.audiences...)
		switch {
		case tc.allow && err != nil:
			t.Errorf("%s: coffer-controller sync's TokenRequest refused: %v", tc.name, err)
		case !tc.allow && !refused(err, audienceMsg):
			t.Errorf("%s: %v, want refused by the policy", tc.name, err)
		}
	}
	// Others are not held by it.
	if _, err := c.Kube.CoreV1().ServiceAccounts(team).CreateToken(ctx, "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("the admin's TokenRequest: %v", err)
	}

	// Secret writes: RBAC lets the DaemonSet (sync.atMount, every
	// namespace) create, patch and delete any Secret; the policy narrows
	// that to coffer's own.
	const writeMsg = "coffer writes only the Secrets it manages"
	const createMsg = "coffer creates a Secret only as its own"
	const tokenTypeMsg = "coffer never writes Secrets of type kubernetes.io/service-account-token"
	secret := func(name string, labels, annotations map[string]string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: team, Labels: labels, Annotations: annotations}, Data: map[string][]byte{"k": []byte("v")}}
	}
	managed := map[string]string{"app.kubernetes.io/managed-by": "coffer"}
	// What coffer's engine puts on a Secret it creates.
	created := map[string]string{"coffer-csi.github.io/created-by": "db", "coffer-csi.github.io/content-hash": "v1:abc"}
	ownedBy := func(s *corev1.Secret, apiVersion, kind, name string) *corev1.Secret {
		yes := true
		s.OwnerReferences = []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: "3f1d6c1e-0000-4000-8000-000000000001", Controller: &yes}}
		return s
	}
	create := func(k kubernetes.Interface, s *corev1.Secret) func() error {
		return func() error {
			_, err := k.CoreV1().Secrets(team).Create(ctx, s, metav1.CreateOptions{})
			return err
		}
	}
	admin := c.Kube.CoreV1().Secrets(team)
	for _, s := range []*corev1.Secret{
		secret("theirs", nil, nil),
		secret("opted-in", nil, map[string]string{"coffer-csi.github.io/allow-merge-from": "app-secrets"}),
	} {
		if _, err := admin.Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for _, err := provider.CoreV1().Secrets(team).Create(ctx, secret("probe", nil, nil), metav1.CreateOptions{}); !refused(err, createMsg); _, err = provider.CoreV1().Secrets(team).Create(ctx, secret("probe", nil, nil), metav1.CreateOptions{}) {
		if err == nil {
			_ = admin.Delete(ctx, "probe", metav1.DeleteOptions{})
		}
		if time.Now().After(deadline) {
			t.Fatalf("the DaemonSet creating an unmanaged Secret: %v, want refused by the policy", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	patch := func(name, body string) error {
		_, err := provider.CoreV1().Secrets(team).Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{})
		return err
	}
	for _, tc := range []struct {
		name  string
		do    func() error
		allow bool
	}{
		{"create a managed Secret", create(provider, secret("ours", managed, created)), true},
		{"create one owned by its SecretProviderClass", create(sync, ownedBy(secret("owned", managed, created), "secrets-store.csi.x-k8s.io/v1", "SecretProviderClass", "db")), true},
		// Planting: a Secret with only the label, as coffer's check was.
		{"create a Secret with only the managed-by label", create(provider, secret("planted-label-only", managed, nil)), false},
		{"create one without the content hash", create(provider, secret("planted-no-hash", managed, map[string]string{"coffer-csi.github.io/created-by": "db"})), false},
		{"create one owned by another object", create(provider, ownedBy(secret("planted-foreign-owner", managed, created), "apps/v1", "Deployment", "db")), false},
		{"create one owned by another class", create(sync, ownedBy(secret("planted-other-class", managed, created), "secrets-store.csi.x-k8s.io/v1", "SecretProviderClass", "other")), false},
		{"create one with a finalizer", create(provider, func() *corev1.Secret {
			s := secret("planted-finalizer", managed, created)
			s.Finalizers = []string{"example.com/hold"}
			return s
		}()), false},
		{"patch it", func() error { return patch("ours", `{"data":{"k":"dzI="}}`) }, true},
		{"strip its label", func() error { return patch("ours", `{"metadata":{"labels":{"app.kubernetes.io/managed-by":null}}}`) }, false},
		{"patch a Secret it does not manage", func() error { return patch("theirs", `{"data":{"k":"eA=="}}`) }, false},
		{"claim a Secret by labelling it", func() error {
			return patch("theirs", `{"metadata":{"labels":{"app.kubernetes.io/managed-by":"coffer"}}}`)
		}, false},
		{"merge into a Secret that opted in", func() error { return patch("opted-in", `{"data":{"c":"dg=="}}`) }, true},
		{"merge as coffer does (its annotations, a declared label)", func() error {
			return patch("opted-in", `{"data":{"c":"dw=="},"metadata":{"labels":{"team":"a"},"annotations":{"coffer-csi.github.io/merged-by":"db","coffer-csi.github.io/content-hash":"v1:abc"}}}`)
		}, true},
		// Claiming an opted-in Secret: after any of these, coffer could
		// delete it, or it would outlive its owner's opt-in.
		{"label an opted-in Secret as coffer's", func() error {
			return patch("opted-in", `{"metadata":{"labels":{"app.kubernetes.io/managed-by":"coffer"},"annotations":{"coffer-csi.github.io/created-by":"db"}}}`)
		}, false},
		{"mark an opted-in Secret created by coffer", func() error {
			return patch("opted-in", `{"metadata":{"annotations":{"coffer-csi.github.io/created-by":"db"}}}`)
		}, false},
		{"widen the opt-in", func() error {
			return patch("opted-in", `{"metadata":{"annotations":{"coffer-csi.github.io/allow-merge-from":"app-secrets,db"}}}`)
		}, false},
		{"allow itself to overwrite a key", func() error {
			return patch("opted-in", `{"metadata":{"annotations":{"coffer-csi.github.io/allow-merge-overwrite":"k"}}}`)
		}, false},
		{"own an opted-in Secret", func() error {
			return patch("opted-in", `{"metadata":{"ownerReferences":[{"apiVersion":"secrets-store.csi.x-k8s.io/v1","kind":"SecretProviderClass","name":"db","uid":"3f1d6c1e-0000-4000-8000-000000000001"}]}}`)
		}, false},
		{"hold an opted-in Secret with a finalizer", func() error { return patch("opted-in", `{"metadata":{"finalizers":["example.com/hold"]}}`) }, false},
		{"make an opted-in Secret immutable", func() error { return patch("opted-in", `{"immutable":true}`) }, false},
		{"delete an opted-in Secret", func() error { return provider.CoreV1().Secrets(team).Delete(ctx, "opted-in", metav1.DeleteOptions{}) }, false},
		{"hand its own Secret to another class", func() error {
			return patch("ours", `{"metadata":{"annotations":{"coffer-csi.github.io/created-by":"other"}}}`)
		}, false},
		{"delete a Secret it does not manage", func() error { return provider.CoreV1().Secrets(team).Delete(ctx, "theirs", metav1.DeleteOptions{}) }, false},
		{"delete its own", func() error { return provider.CoreV1().Secrets(team).Delete(ctx, "ours", metav1.DeleteOptions{}) }, true},
		// A managed Secret the token controller would fill with a token of
		// any ServiceAccount of the namespace, which coffer could read.
		{"create a ServiceAccount token Secret", func() error {
			s := secret("sa-token", managed, map[string]string{corev1.ServiceAccountNameKey: "app"})
			s.Type, s.Data = corev1.SecretTypeServiceAccountToken, nil
			_, err := provider.CoreV1().Secrets(team).Create(ctx, s, metav1.CreateOptions{})
			return err
		}, false},
		{"create a bootstrap token Secret", func() error {
			s := secret("bootstrap-token-abcdef", managed, nil)
			s.Type = corev1.SecretTypeBootstrapToken
			_, err := provider.CoreV1().Secrets(team).Create(ctx, s, metav1.CreateOptions{})
			return err
		}, false},
		{"coffer-controller sync too is held by it", create(sync, secret("by-sync", nil, nil)), false},
		{"coffer-controller sync deleting a Secret it does not manage", func() error { return sync.CoreV1().Secrets(team).Delete(ctx, "theirs", metav1.DeleteOptions{}) }, false},
	} {
		err := tc.do()
		switch {
		case tc.allow && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.allow && !refused(err, writeMsg) && !refused(err, createMsg) && !refused(err, tokenTypeMsg):
			t.Errorf("%s: %v, want refused by the policy", tc.name, err)
		}
	}
	if s, err := admin.Get(ctx, "theirs", metav1.GetOptions{}); err != nil || string(s.Data["k"]) != "v" {
		t.Errorf("the Secret coffer does not manage changed: %v, %v", s, err)
	}
	if s, err := admin.Get(ctx, "opted-in", metav1.GetOptions{}); err != nil || s.Labels["app.kubernetes.io/managed-by"] != "" || len(s.OwnerReferences) != 0 ||
		s.Annotations["coffer-csi.github.io/allow-merge-from"] != "app-secrets" || s.Annotations["coffer-csi.github.io/created-by"] != "" {
		t.Errorf("coffer claimed the opted-in Secret: %+v, %v", s, err)
	}
	for _, name := range []string{"planted-label-only", "planted-no-hash", "planted-foreign-owner", "planted-other-class", "planted-finalizer"} {
		if _, err := admin.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("planted Secret %s exists: %v", name, err)
		}
	}

	podEvents(ctx, t, c.Kube, provider, team, refused)
	workloadRestarts(ctx, t, c.Kube, sync, team, refused)
}

// podEvents: RBAC lets the DaemonSet create Events anywhere; the policy
// holds them to Normal SecretsRotated events on Pods of their namespace
// (other reasons stay allowed here because the release syncs at mount).
func podEvents(ctx context.Context, t *testing.T, admin, provider kubernetes.Interface, ns string, refused func(error, string) bool) {
	t.Helper()
	const msg = "records only Normal SecretsRotated events about Pods"
	n := 0
	event := func(mutate func(*corev1.Event)) error {
		n++
		ev := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("app-0.%d", n), Namespace: ns},
			InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: "app-0"},
			Reason:         "SecretsRotated", Type: corev1.EventTypeNormal, Message: "SecretProviderClass \"db\": 1 object(s) rotated: password (version 2)",
			Source: corev1.EventSource{Component: "coffer"},
		}
		if mutate != nil {
			mutate(ev)
		}
		_, err := provider.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{})
		return err
	}
	warning := func(ev *corev1.Event) { ev.Type = corev1.EventTypeWarning }
	syncEvent := func(reason, typ string) func(*corev1.Event) {
		return func(ev *corev1.Event) {
			ev.Reason, ev.Type = reason, typ
			ev.InvolvedObject = corev1.ObjectReference{APIVersion: "secrets-store.csi.x-k8s.io/v1", Kind: "SecretProviderClass", Namespace: ns, Name: "db"}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for err := event(warning); !refused(err, msg); err = event(warning) {
		if time.Now().After(deadline) {
			t.Fatalf("a Warning SecretsRotated event: %v, want refused by the policy", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.Event)
		allow  bool
	}{
		{"SecretsRotated on a Pod", nil, true},
		{"SecretsRotated on a Secret", func(ev *corev1.Event) { ev.InvolvedObject.Kind = "Secret" }, false},
		{"SecretsRotated about a Pod of another namespace", func(ev *corev1.Event) { ev.InvolvedObject.Namespace = "kube-system" }, false},
		{"a Warning", warning, false},
		{"Secret sync's own events (sync at mount)", syncEvent("SecretCreated", corev1.EventTypeNormal), true},
		{"a Secret sync warning", syncEvent("FetchFailed", corev1.EventTypeWarning), true},
		// Before, sync at mount let the DaemonSet write any event at all.
		{"another reason about a SecretProviderClass", syncEvent("BackOff", corev1.EventTypeWarning), false},
		{"a Secret sync reason about a Pod", func(ev *corev1.Event) { ev.Reason = "SecretCreated" }, false},
		{"a Secret sync reason about a Secret", func(ev *corev1.Event) {
			syncEvent("SecretCreated", corev1.EventTypeNormal)(ev)
			ev.InvolvedObject.Kind, ev.InvolvedObject.APIVersion = "Secret", "v1"
		}, false},
		{"a Secret sync event about a class of another namespace", func(ev *corev1.Event) {
			syncEvent("SecretCreated", corev1.EventTypeNormal)(ev)
			ev.InvolvedObject.Namespace = "kube-system"
		}, false},
	} {
		err := event(tc.mutate)
		switch {
		case tc.allow && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.allow && !refused(err, msg) && !apierrors.IsInvalid(err):
			t.Errorf("%s: %v, want refused by the policy (or the apiserver)", tc.name, err)
		}
	}
	if _, err := admin.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "admin.1", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Secret", Namespace: ns, Name: "x"}, Reason: "Other", Type: corev1.EventTypeWarning}, metav1.CreateOptions{}); err != nil {
		t.Errorf("the admin's event: %v", err)
	}
	// A patch (a repeat's count, or a rewrite of any event): refused by
	// RBAC (create only) and by the policy.
	if _, err := provider.CoreV1().Events(ns).Patch(ctx, "admin.1", types.MergePatchType, []byte(`{"message":"rewritten","count":2}`), metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the DaemonSet patching an event: %v, want forbidden", err)
	}
}

// workloadRestarts: RBAC lets coffer-controller sync patch Deployments, StatefulSets
// and DaemonSets; the policy lets it change only the restart annotations
// of their pod templates, as kubectl rollout restart does.
func workloadRestarts(ctx context.Context, t *testing.T, admin, sync kubernetes.Interface, ns string, refused func(error, string) bool) {
	t.Helper()
	const msg = "coffer-controller sync may change nothing on a workload but the pod template's coffer-csi.github.io/restarted-at"
	labels := map[string]string{"app": "web"}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"team.example/config": "1"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	meta := metav1.ObjectMeta{Name: "web", Namespace: ns, Labels: labels, Annotations: map[string]string{"coffer-csi.github.io/restart-on-rotation": "true"}}
	replicas := int32(2)
	apps := admin.AppsV1()
	for _, err := range []error{
		func() error {
			_, err := apps.Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
			return err
		}(),
		func() error {
			_, err := apps.StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
			return err
		}(),
		func() error {
			_, err := apps.DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
			return err
		}(),
	} {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	patchers := map[string]func(body string) error{
		"Deployment": func(body string) error {
			_, err := sync.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, []byte(body), metav1.PatchOptions{FieldManager: "coffer-sync"})
			return err
		},
		"StatefulSet": func(body string) error {
			_, err := sync.AppsV1().StatefulSets(ns).Patch(ctx, "web", types.MergePatchType, []byte(body), metav1.PatchOptions{FieldManager: "coffer-sync"})
			return err
		},
		"DaemonSet": func(body string) error {
			_, err := sync.AppsV1().DaemonSets(ns).Patch(ctx, "web", types.MergePatchType, []byte(body), metav1.PatchOptions{FieldManager: "coffer-sync"})
			return err
		},
	}
	const replicasPatch = `{"spec":{"replicas":5}}`
	deadline := time.Now().Add(30 * time.Second)
	for err := patchers["Deployment"](replicasPatch); !refused(err, msg); err = patchers["Deployment"](replicasPatch) {
		if time.Now().After(deadline) {
			t.Fatalf("coffer-controller sync scaling a Deployment: %v, want refused by the policy", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	restart := func(at string) string {
		return `{"spec":{"template":{"metadata":{"annotations":{"coffer-csi.github.io/restarted-at":"` + at + `","coffer-csi.github.io/restarted-for":"secretproviderclass/db password@v2"}}}}}`
	}
	cases := []struct {
		name, body string
		allow      bool
	}{
		{"a restart", restart("2026-01-01T00:00:00Z"), true},
		{"another restart", restart("2026-01-01T00:05:00Z"), true},
		{"scale it", `{"spec":{"replicas":5}}`, false},
		{"change the image", `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"attacker.example/app:1"}]}}}}`, false},
		{"add a container's env", `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/app:1","env":[{"name":"X","value":"1"}]}]}}}}`, false},
		{"change the ServiceAccount", `{"spec":{"template":{"spec":{"serviceAccountName":"admin"}}}}`, false},
		{"a restart and another template annotation", `{"spec":{"template":{"metadata":{"annotations":{"coffer-csi.github.io/restarted-at":"2026-01-02T00:00:00Z","team.example/config":"2"}}}}}`, false},
		{"remove another template annotation", `{"spec":{"template":{"metadata":{"annotations":{"team.example/config":null}}}}}`, false},
		{"add a template label", `{"spec":{"template":{"metadata":{"labels":{"extra":"1"}}}}}`, false},
		{"label the workload", `{"metadata":{"labels":{"extra":"1"}}}`, false},
		{"drop the opt-in annotation", `{"metadata":{"annotations":{"coffer-csi.github.io/restart-on-rotation":null}}}`, false},
		{"add a finalizer", `{"metadata":{"finalizers":["example.com/hold"]}}`, false},
	}
	for kind, patch := range patchers {
		for _, tc := range cases {
			if kind == "DaemonSet" && tc.name == "scale it" {
				continue // a DaemonSet has no replicas: the apiserver refuses the field itself
			}
			err := patch(tc.body)
			switch {
			case tc.allow && err != nil:
				t.Errorf("%s: %s: %v", kind, tc.name, err)
			case !tc.allow && !refused(err, msg):
				t.Errorf("%s: %s: %v, want refused by the policy", kind, tc.name, err)
			}
		}
	}
	if err := sync.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("coffer-controller sync deleting a Deployment: %v, want forbidden", err)
	}
	d, err := apps.Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Image != "registry.example/app:1" || d.Spec.Template.Annotations["team.example/config"] != "1" ||
		d.Spec.Template.Annotations["coffer-csi.github.io/restarted-at"] != "2026-01-01T00:05:00Z" {
		t.Errorf("the Deployment after coffer-controller sync's attempts: replicas %d, template %+v", *d.Spec.Replicas, d.Spec.Template)
	}
	// The admin is not held by the policy.
	if _, err := apps.Deployments(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{}); err != nil {
		t.Errorf("the admin scaling the Deployment: %v", err)
	}
}

// TestChartAdmissionPolicyNamespaced: in namespaced mode
// (sync.atMountNamespaces, sync.controller.namespaces) the policies hold
// coffer's Secret writes and the DaemonSet's Secret sync events to those
// namespaces, even where RBAC grants more (here a stray ClusterRole that
// lets both ServiceAccounts create Secrets everywhere).
func TestChartAdmissionPolicyNamespaced(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	const ns, in, out = "vap-scoped", "vap-in", "vap-out"
	for _, n := range []string{ns, in, out} {
		if err := c.EnsureNamespace(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	objs := render(t, "scoped", ns, `sync: {atMount: true, atMountNamespaces: [vap-in], controller: {enabled: true, namespaces: [vap-in]}}`)
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		for _, o := range kinds(objs, kind) {
			if _, err := c.Apply(ctx, o, false); err != nil {
				t.Fatalf("%s: %v", ref(o), err)
			}
		}
	}
	users := []string{"system:serviceaccount:" + ns + ":scoped-coffer", "system:serviceaccount:" + ns + ":scoped-coffer-sync"}
	stray := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "vap-stray-secrets"},
		"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"secrets"}, "verbs": []any{"create"}}},
	}}
	binding := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": map[string]any{"name": "vap-stray-secrets"},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "vap-stray-secrets"},
		"subjects": []any{map[string]any{"kind": "User", "name": users[0]}, map[string]any{"kind": "User", "name": users[1]}},
	}}
	for _, o := range []*unstructured.Unstructured{stray, binding} {
		if _, err := c.Apply(ctx, o, false); err != nil {
			t.Fatalf("%s: %v", ref(o), err)
		}
	}
	as := func(user string) kubernetes.Interface {
		cfg := rest.CopyConfig(apiServer.RESTConfig())
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
		k, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	provider, sync := as(users[0]), as(users[1])
	const scopeMsg = "coffer writes Secrets only in the namespaces it syncs (vap-in)"
	n := 0
	create := func(k kubernetes.Interface, namespace string) error {
		n++
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d", n), Namespace: namespace,
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "coffer"},
			Annotations: map[string]string{"coffer-csi.github.io/created-by": "db", "coffer-csi.github.io/content-hash": "v1:abc"}}}
		_, err := k.CoreV1().Secrets(namespace).Create(ctx, s, metav1.CreateOptions{})
		return err
	}
	refused := func(err error, want string) bool {
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), want)
	}
	deadline := time.Now().Add(30 * time.Second)
	for err := create(provider, out); !refused(err, scopeMsg); err = create(provider, out) {
		if time.Now().After(deadline) {
			t.Fatalf("the DaemonSet creating a Secret out of its namespaces: %v, want refused by the policy", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, tc := range []struct {
		name  string
		err   error
		allow bool
	}{
		{"the DaemonSet in its namespace", create(provider, in), true},
		{"coffer-controller sync in its namespace", create(sync, in), true},
		{"coffer-controller sync out of its namespaces", create(sync, out), false},
	} {
		switch {
		case tc.allow && tc.err != nil:
			t.Errorf("%s: %v", tc.name, tc.err)
		case !tc.allow && !refused(tc.err, scopeMsg):
			t.Errorf("%s: %v, want refused by the policy", tc.name, tc.err)
		}
	}
	// The DaemonSet's ClusterRole creates events everywhere (rotation
	// events); Secret sync's events only where it syncs.
	event := func(namespace string) error {
		n++
		_, err := provider.CoreV1().Events(namespace).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("db.%d", n), Namespace: namespace},
			InvolvedObject: corev1.ObjectReference{APIVersion: "secrets-store.csi.x-k8s.io/v1", Kind: "SecretProviderClass", Namespace: namespace, Name: "db"},
			Reason:         "SecretCreated", Type: corev1.EventTypeNormal, Message: `Secret "app" created`,
		}, metav1.CreateOptions{})
		return err
	}
	deadline = time.Now().Add(30 * time.Second)
	for err := event(out); !refused(err, "coffer's DaemonSet records only"); err = event(out) {
		if time.Now().After(deadline) {
			t.Fatalf("a Secret sync event out of its namespaces: %v, want refused by the policy", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := event(in); err != nil {
		t.Errorf("a Secret sync event in its namespace: %v", err)
	}
}
