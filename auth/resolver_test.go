package auth

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/internal/kube/kubetest"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// TestCredentialsRefreshBeforeExpiry checks that credentials are reused
// while they have more than the refresh margin left, then fetched anew
// once, and that the new ones work.
func TestCredentialsRefreshBeforeExpiry(t *testing.T) {
	// One clock for the fake and the cache, so credential lifetimes agree.
	clk := clocktesting.NewFakeClock(time.Now())
	clock, advance := clk.Now, clk.Step
	f, ts := fakeaws.NewTestServer(t, fakeaws.Options{Now: clock})
	issuer := fakeaws.NewTestIssuer(t, "https://oidc.example")
	if err := f.SetJWKS(issuer.JWKS()); err != nil {
		t.Fatal(err)
	}
	const role = "arn:aws:iam::123456789012:role/app"
	if err := f.AddRole(fakeaws.Role{ARN: role, TrustedSubjects: []string{"system:serviceaccount:ns:app"}, Actions: []string{"*"}, Resources: []string{"*"}, CredentialLifetime: time.Hour}); err != nil {
		t.Fatal(err)
	}
	kube := fake.NewClientset(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", Annotations: map[string]string{RoleAnnotation: role}}})
	r := NewResolver(ResolverOptions{AWS: fakeaws.AWSConfig(ts.URL, "us-east-1", "", "", ""), Kubernetes: kubetest.Wrap(kube), RefreshMargin: 5 * time.Minute, Clock: clk, Verifier: NewVerifier(VerifierOptions{Keys: staticKeys(issuer.JWKS()), Issuers: []string{issuer.URL()}})})

	tokens, _ := json.Marshal(map[string]map[string]string{AudienceSTS: {"token": issuer.TokenWithClaims(fakeaws.TokenClaims{Subject: "system:serviceaccount:ns:app", Audiences: []string{AudienceSTS}, PodName: "p", PodUID: "uid-p", IssuedAt: clock().Add(-time.Minute), Expiry: clock().Add(2 * time.Hour)})}})
	req := Request{Namespace: "ns", ServiceAccount: "app", PodName: "p", PodUID: "uid-p", Tokens: string(tokens), Region: "us-east-1"}
	sts := func() int {
		return f.CountCalls(func(c fakeaws.Call) bool {
			return c.Operation == "AssumeRoleWithWebIdentity" && c.Outcome == fakeaws.OutcomeOK
		})
	}
	first, err := r.Identity(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	advance(50 * time.Minute) // 10 minutes left: reused
	if _, err := r.Identity(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if n := sts(); n != 1 {
		t.Fatalf("STS calls = %d with time left, want 1", n)
	}
	advance(6 * time.Minute) // 4 minutes left, inside the margin: refreshed once
	second, err := r.Identity(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	r.Identity(context.Background(), req)
	if n := sts(); n != 2 {
		t.Errorf("STS calls = %d after the margin, want 2", n)
	}
	a, _ := first.Credentials.Retrieve(context.Background())
	b, _ := second.Credentials.Retrieve(context.Background())
	if a.AccessKeyID == b.AccessKeyID {
		t.Error("refreshed credentials are the old ones")
	}
	if first.Key != second.Key {
		t.Errorf("identity key changed on refresh: %q -> %q", first.Key, second.Key)
	}
}

// staticKeys serves a fixed key set.
func staticKeys(jwks []byte) KeySource {
	return func(context.Context) ([]byte, error) { return jwks, nil }
}

// TestSyncSessionIsNotAPodsSession: a token bound to no pod (coffer
// sync's) gets the ServiceAccount's @sync session, whatever pod name the
// request carries, and a pod named sync-<sa> keeps its own: the two never
// share credentials or a CloudTrail identity, in either session scope.
func TestSyncSessionIsNotAPodsSession(t *testing.T) {
	f, ts := fakeaws.NewTestServer(t, fakeaws.Options{})
	issuer := fakeaws.NewTestIssuer(t, "https://oidc.example")
	if err := f.SetJWKS(issuer.JWKS()); err != nil {
		t.Fatal(err)
	}
	const role = "arn:aws:iam::123456789012:role/app"
	if err := f.AddRole(fakeaws.Role{ARN: role, TrustedSubjects: []string{"system:serviceaccount:team:app"}, Actions: []string{"*"}, Resources: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	kube := fake.NewClientset(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app", Annotations: map[string]string{RoleAnnotation: role}}})
	request := func(pod string, unbound bool) Request {
		tok := issuer.TokenWithClaims(fakeaws.TokenClaims{Subject: "system:serviceaccount:team:app", Audiences: []string{AudienceSTS}, PodName: pod, PodUID: "uid-" + pod, Unbound: unbound})
		tokens, _ := json.Marshal(map[string]map[string]string{AudienceSTS: {"token": tok}})
		return Request{Namespace: "team", ServiceAccount: "app", PodName: pod, PodUID: "uid-" + pod, Tokens: string(tokens), Region: "us-east-1"}
	}
	for _, scope := range []SessionScope{SessionPerPod, SessionPerServiceAccount} {
		r := NewResolver(ResolverOptions{AWS: fakeaws.AWSConfig(ts.URL, "us-east-1", "", "", ""), Kubernetes: kubetest.Wrap(kube), SessionScope: scope,
			Verifier: NewVerifier(VerifierOptions{Keys: staticKeys(issuer.JWKS()), Issuers: []string{issuer.URL()}})})
		controller, err := r.Identity(context.Background(), request("sync-app", true))
		if err != nil {
			t.Fatal(err)
		}
		pod, err := r.Identity(context.Background(), request("sync-app", false))
		if err != nil {
			t.Fatal(err)
		}
		wantPod := "coffer-team.sync-app"
		if scope == SessionPerServiceAccount {
			wantPod = "coffer-team@sa.app"
		}
		if !strings.HasSuffix(controller.CredentialKey, sessionSep+"coffer-team@sync.app") || !strings.HasSuffix(pod.CredentialKey, sessionSep+wantPod) {
			t.Errorf("scope %s: the controller's credentials are %q and the pod's %q; want sessions coffer-team@sync.app and %s", scope, controller.CredentialKey, pod.CredentialKey, wantPod)
		}
	}
}
