package deploy

import (
	"context"
	"strings"
	"testing"
	"time"

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
// coffer's ServiceAccounts (impersonation): coffer sync may request tokens
// only for the audiences coffer exchanges with AWS, and coffer's Secret
// writes reach only the Secrets it manages.
func TestChartAdmissionPolicy(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	const ns, team = "vap", "vap-team"
	for _, n := range []string{ns, team} {
		if err := c.EnsureNamespace(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	objs := render(t, "coffer", ns, `sync: {atMount: true, controller: {enabled: true}}`)
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
	if policies != 2 {
		t.Fatalf("the chart rendered %d ValidatingAdmissionPolicies, want 2", policies)
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
			t.Errorf("%s: coffer sync's TokenRequest refused: %v", tc.name, err)
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
	const tokenTypeMsg = "coffer never writes Secrets of type kubernetes.io/service-account-token"
	secret := func(name string, labels, annotations map[string]string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: team, Labels: labels, Annotations: annotations}, Data: map[string][]byte{"k": []byte("v")}}
	}
	managed := map[string]string{"app.kubernetes.io/managed-by": "coffer"}
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
	for _, err := provider.CoreV1().Secrets(team).Create(ctx, secret("probe", nil, nil), metav1.CreateOptions{}); !refused(err, writeMsg); _, err = provider.CoreV1().Secrets(team).Create(ctx, secret("probe", nil, nil), metav1.CreateOptions{}) {
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
		{"create a managed Secret", func() error {
			_, err := provider.CoreV1().Secrets(team).Create(ctx, secret("ours", managed, nil), metav1.CreateOptions{})
			return err
		}, true},
		{"patch it", func() error { return patch("ours", `{"data":{"k":"dzI="}}`) }, true},
		{"strip its label", func() error { return patch("ours", `{"metadata":{"labels":{"app.kubernetes.io/managed-by":null}}}`) }, false},
		{"patch a Secret it does not manage", func() error { return patch("theirs", `{"data":{"k":"eA=="}}`) }, false},
		{"claim a Secret by labelling it", func() error {
			return patch("theirs", `{"metadata":{"labels":{"app.kubernetes.io/managed-by":"coffer"}}}`)
		}, false},
		{"merge into a Secret that opted in", func() error { return patch("opted-in", `{"data":{"c":"dg=="}}`) }, true},
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
		{"coffer sync too is held by it", func() error {
			_, err := sync.CoreV1().Secrets(team).Create(ctx, secret("by-sync", nil, nil), metav1.CreateOptions{})
			return err
		}, false},
	} {
		err := tc.do()
		switch {
		case tc.allow && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.allow && !refused(err, writeMsg) && !refused(err, tokenTypeMsg):
			t.Errorf("%s: %v, want refused by the policy", tc.name, err)
		}
	}
	if s, err := admin.Get(ctx, "theirs", metav1.GetOptions{}); err != nil || string(s.Data["k"]) != "v" {
		t.Errorf("the Secret coffer does not manage changed: %v, %v", s, err)
	}
}
