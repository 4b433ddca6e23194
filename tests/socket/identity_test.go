package socket_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/kube/kubetest"
	"github.com/coffer-csi/coffer/tests/fakeaws"
	"github.com/coffer-csi/coffer/wiring"
)

const (
	account     = "123456789012"
	roleA       = "arn:aws:iam::" + account + ":role/team-a"
	roleB       = "arn:aws:iam::" + account + ":role/team-b"
	rolePod     = "arn:aws:iam::" + account + ":role/team-p"
	roleShared  = "arn:aws:iam::222233334444:role/shared-reader"
	sharedExtID = "ext-4f1c"
	nodeName    = "node-1"
)

// cluster is the Kubernetes side of workload identity: a token issuer the
// fake STS trusts, ServiceAccounts with role annotations, a node, and two
// EKS Pod Identity agent addresses.
type cluster struct {
	issuer *fakeaws.Issuer
	// elsewhere signs with the cluster's key, under another issuer (one
	// key shared by two clusters).
	elsewhere *fakeaws.Issuer
	kube      *fake.Clientset
	v4, v6    string
	saReads   *counter
	// keyReads counts reads of the issuer's keys (/openid/v1/jwks).
	keyReads *counter
	tokens   []string // every token handed out, for leak checks
	tokensMu sync.Mutex
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func grants(prefix string) fakeaws.Role {
	return fakeaws.Role{
		Actions:    []string{"secretsmanager:GetSecretValue", "ssm:GetParameters"},
		Resources:  []string{"arn:aws:secretsmanager:*:*:secret:" + prefix + "/*", "arn:aws:ssm:*:*:parameter/" + prefix + "/*"},
		Statements: []fakeaws.Statement{{Actions: []string{"secretsmanager:BatchGetSecretValue"}, Resources: []string{"*"}}},
	}
}

// newWorkloadHarness serves a provider that resolves each pod's identity
// through IRSA or Pod Identity against the fake.
func newWorkloadHarness(t *testing.T, opts ...harnessOptions) (*harness, *cluster) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := fakeaws.NewIssuerWithKey("https://oidc.example/cluster", key)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := fakeaws.NewIssuerWithKey("https://oidc.example/another-cluster", key)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{issuer: issuer, elsewhere: elsewhere, saReads: &counter{}, keyReads: &counter{}}
	sa := func(ns, name, role string) *corev1.ServiceAccount {
		s := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if role != "" {
			s.Annotations = map[string]string{auth.RoleAnnotation: role}
		}
		return s
	}
	c.kube = fake.NewClientset(
		sa("team-a", "app", roleA), sa("team-b", "app", roleB), sa("team-c", "app", ""), sa("team-d", "app", roleA),
		sa("team-p", "app", ""),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{auth.RegionLabel: primary}}},
	)
	c.kube.PrependReactor("get", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
		c.saReads.add()
		return false, nil, nil
	})

	var o harnessOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	o.workload = func(f *fakeaws.Server, cfg *wiring.Config) {
		f.SetIssuer(issuer.URL())
		if err := f.SetJWKS(issuer.JWKS()); err != nil {
			t.Fatal(err)
		}
		add := func(arn string, r fakeaws.Role) {
			r.ARN = arn
			r.CredentialLifetime = o.credentialLifetime
			if err := f.AddRole(r); err != nil {
				t.Fatal(err)
			}
		}
		a := grants("team-a")
		a.TrustedSubjects = []string{"system:serviceaccount:team-a:app"}
		add(roleA, a)
		b := grants("team-b")
		b.TrustedSubjects = []string{"system:serviceaccount:team-b:app"}
		add(roleB, b)
		shared := grants("shared")
		shared.TrustedRoles = []string{roleA}
		shared.ExternalID = sharedExtID
		add(roleShared, shared)
		add(rolePod, grants("team-p"))
		f.AddPodIdentityAssociation("team-p", "app", rolePod)
		v4 := httptest.NewServer(f.PodIdentityAgentNamed("ipv4"))
		v6 := httptest.NewServer(f.PodIdentityAgentNamed("ipv6"))
		t.Cleanup(v4.Close)
		t.Cleanup(v6.Close)
		c.v4, c.v6 = v4.URL+"/v1/credentials", v6.URL+"/v1/credentials"
		// The cluster's keys, as --service-account-jwks-url serves them.
		jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			c.keyReads.add()
			w.Header().Set("Content-Type", "application/json")
			w.Write(issuer.JWKS())
		}))
		t.Cleanup(jwks.Close)
		cfg.NodeCredentials = false
		cfg.Kubernetes = &wiring.Kubernetes{Client: kubetest.Wrap(c.kube)}
		cfg.NodeName = nodeName
		cfg.Identity.JWKSURL = jwks.URL
		cfg.Identity.Issuers = []string{issuer.URL()}
		cfg.Identity.PodIdentityIPv4URL, cfg.Identity.PodIdentityIPv6URL = c.v4, c.v6
	}

	h := newHarness(t, o)
	return h, c
}

// token mints a ServiceAccount token as kubelet would for the CSIDriver:
// bound to the pod (podUID gives its uid).
func (c *cluster) token(ns, sa, pod, audience string, ttl time.Duration) string {
	now := time.Now()
	return c.keep(c.issuer.TokenWithClaims(fakeaws.TokenClaims{
		Subject: "system:serviceaccount:" + ns + ":" + sa, Audiences: []string{audience},
		PodName: pod, PodUID: podUID(pod), IssuedAt: now.Add(-2 * time.Minute), Expiry: now.Add(ttl),
	}))
}

func podUID(pod string) string { return "uid-" + pod }

// keep remembers a token handed to the provider, for leak checks.
func (c *cluster) keep(tok string) string {
	c.tokensMu.Lock()
	c.tokens = append(c.tokens, tok)
	c.tokensMu.Unlock()
	return tok
}

// podAttrs are the attributes the driver sends for a pod of ns/sa, with
// tokens for both of the CSIDriver's audiences.
func (c *cluster) podAttrs(ns, sa, pod string, params map[string]string) string {
	tokens := map[string]map[string]string{}
	for _, aud := range []string{auth.AudienceSTS, auth.AudiencePodIdentity} {
		tokens[aud] = map[string]string{"token": c.token(ns, sa, pod, aud, time.Hour), "expirationTimestamp": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	}
	tj, _ := json.Marshal(tokens)
	return podAttrsWithTokens(ns, sa, pod, params, string(tj))
}

func podAttrsWithTokens(ns, sa, pod string, params map[string]string, tokens string) string {
	a := map[string]string{
		"secretProviderClass":                    "app-secrets",
		"csi.storage.k8s.io/pod.name":            pod,
		"csi.storage.k8s.io/pod.namespace":       ns,
		"csi.storage.k8s.io/pod.uid":             podUID(pod),
		"csi.storage.k8s.io/serviceAccount.name": sa,
	}
	if tokens != "" {
		a["csi.storage.k8s.io/serviceAccount.tokens"] = tokens
	}
	for k, v := range params {
		a[k] = v
	}
	b, _ := json.Marshal(a)
	return string(b)
}

func stsCalls(f *fakeaws.Server, op string) int {
	return f.CountCalls(func(c fakeaws.Call) bool { return c.Service == fakeaws.ServiceSTS && c.Operation == op })
}

func secretOf(prefix string) map[string]string {
	return map[string]string{"objects": "- {objectName: " + prefix + "/db, objectType: secretsmanager, objectAlias: db}\n- {objectName: /" + prefix + "/host, objectType: ssmparameter, objectAlias: host}"}
}

func seedTeams(f *fakeaws.Server) {
	for _, team := range []string{"team-a", "team-b", "team-p", "shared"} {
		f.PutSecretString(primary, team+"/db", team+"-db-value")
		f.PutParameter(primary, "/"+team+"/host", team+"-host-value", "String")
	}
}

func TestIsolationBetweenServiceAccounts(t *testing.T) {
	// The value cache is on: isolation must hold with it.
	h, c := newWorkloadHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Cache.MaxStaleness = time.Minute }})
	seedTeams(h.fake)
	for round := range 3 {
		for _, team := range []string{"team-a", "team-b"} {
			resp, err := h.mountAttrs(t, c.podAttrs(team, "app", team+"-pod", secretOf(team)))
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, team, err)
			}
			got, _ := files(resp)
			if string(got["db"].Contents) != team+"-db-value" || string(got["host"].Contents) != team+"-host-value" {
				t.Errorf("%s got %q, %q", team, got["db"].Contents, got["host"].Contents)
			}
		}
		// Right after team A fetched its secrets, team B asks for them.
		_, err := h.mountAttrs(t, c.podAttrs("team-b", "app", "team-b-pod", secretOf("team-a")))
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("team B reading team A's secrets: %v, want PermissionDenied", err)
		}
		msg := status.Convert(err).Message()
		for _, want := range []string{"objects[0] (team-a/db)", "access denied", "objects[1] (/team-a/host)", "role/team-b"} {
			if !strings.Contains(msg, want) {
				t.Errorf("denial %q does not mention %q", msg, want)
			}
		}
	}
	// A second ServiceAccount on the same role is a different identity: its
	// own credentials, never team A's cached values.
	resp, err := h.mountAttrs(t, c.podAttrs("team-d", "app", "team-d-pod", secretOf("team-a")))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("team D (role trusted only for team A's ServiceAccount): %v, %v", err, resp)
	}
	if !strings.Contains(err.Error(), "system:serviceaccount:team-d:app") || !strings.Contains(err.Error(), roleA) {
		t.Errorf("STS refusal does not name subject and role: %v", err)
	}
}

// TestCredentialsReusedUntilExpiry measures the STS cost of per-pod
// sessions: credentials are reused by the pod that obtained them (every
// remount and rotation poll of that pod), not by other pods of its
// ServiceAccount, whose reads CloudTrail must attribute to them.
func TestCredentialsReusedUntilExpiry(t *testing.T) {
	h, c := newWorkloadHarness(t)
	seedTeams(h.fake)
	for range 3 {
		for i := range 10 {
			if _, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "pod-"+string(rune('a'+i)), secretOf("team-a"))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := stsCalls(h.fake, "AssumeRoleWithWebIdentity"); n != 10 {
		t.Errorf("10 pods of one ServiceAccount mounting 3 times each made %d STS calls, want 10 (one per pod)", n)
	}
	if n := c.saReads.get(); n != 1 {
		t.Errorf("30 mounts read the ServiceAccount %d times, want 1", n)
	}

	// A burst of 100 mounts by 20 pods of another ServiceAccount: one STS
	// call per pod, shared by its concurrent mounts.
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if _, err := h.mountAttrs(t, c.podAttrs("team-b", "app", "burst-"+string(rune('A'+i%20)), secretOf("team-b"))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := stsCalls(h.fake, "AssumeRoleWithWebIdentity") - 10; n != 20 {
		t.Errorf("a burst of 100 mounts by 20 pods made %d STS calls, want 20", n)
	}
	if n := c.saReads.get(); n != 2 {
		t.Errorf("the burst read the ServiceAccount %d times, want 1", n-1)
	}
	if n := c.keyReads.get(); n != 1 {
		t.Errorf("130 mounts read the issuer's keys %d times, want once", n)
	}
}

// TestSessionNamesThePod: every AWS call is made with credentials whose
// STS session names the pod that mounted, so CloudTrail attributes each
// read to the right pod, for IRSA and for EKS Pod Identity. With
// --sts-session-scope=serviceaccount, the sessions coffer opens name the
// ServiceAccount instead, and Pod Identity's (named by EKS) still the pod.
func TestSessionNamesThePod(t *testing.T) {
	podIdentity := secretOf("team-p")
	podIdentity["usePodIdentity"] = "true"
	chained := secretOf("shared")
	chained["assumeRoleArn"] = roleShared
	chained["assumeRoleExternalId"] = sharedExtID
	for _, tc := range []struct {
		scope       auth.SessionScope
		ns, session string
		params      map[string]string
		// namesPod: the session name carries the pod's name.
		namesPod bool
	}{
		{auth.SessionPerPod, "team-a", "arn:aws:sts::" + account + ":assumed-role/team-a/coffer-team-a.", secretOf("team-a"), true},
		{auth.SessionPerPod, "team-a", "arn:aws:sts::222233334444:assumed-role/shared-reader/coffer-team-a.", chained, true},
		{auth.SessionPerPod, "team-p", "arn:aws:sts::" + account + ":assumed-role/team-p/eks-", podIdentity, true},
		{auth.SessionPerServiceAccount, "team-a", "arn:aws:sts::" + account + ":assumed-role/team-a/coffer-team-a@sa.app", secretOf("team-a"), false},
		{auth.SessionPerServiceAccount, "team-a", "arn:aws:sts::222233334444:assumed-role/shared-reader/coffer-team-a@sa.app", chained, false},
		{auth.SessionPerServiceAccount, "team-p", "arn:aws:sts::" + account + ":assumed-role/team-p/eks-", podIdentity, true},
	} {
		h, c := newWorkloadHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Identity.SessionScope = tc.scope }})
		seedTeams(h.fake)
		for _, pod := range []string{"web-1", "web-2", "web-1"} {
			h.fake.ResetCalls()
			if _, err := h.mountAttrs(t, c.podAttrs(tc.ns, "app", pod, tc.params)); err != nil {
				t.Fatal(err)
			}
			for _, call := range h.fake.Calls() {
				if call.Service != fakeaws.ServiceSecretsManager && call.Service != fakeaws.ServiceSSM {
					continue
				}
				if !strings.HasPrefix(call.Identity, tc.session) || strings.Contains(call.Identity, pod) != tc.namesPod {
					t.Errorf("scope %s, %s/%s: %s was made as %s, want a session %s naming the pod: %v", tc.scope, tc.ns, pod, call.Operation, call.Identity, tc.session, tc.namesPod)
				}
			}
		}
	}
}

// TestReplicasShareOneSessionPerServiceAccount: with
// --sts-session-scope=serviceaccount, 20 replicas of one ServiceAccount
// starting together cost one STS call, while a replica whose token is
// forged or names another pod still gets nothing from the shared
// credentials, and another ServiceAccount gets its own.
func TestReplicasShareOneSessionPerServiceAccount(t *testing.T) {
	h, c := newWorkloadHarness(t, harnessOptions{config: func(c *wiring.Config) {
		c.Identity.SessionScope, c.Cache.MaxStaleness = auth.SessionPerServiceAccount, time.Minute
	}})
	seedTeams(h.fake)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := h.mountAttrs(t, c.podAttrs("team-a", "app", fmt.Sprintf("web-%d", i), secretOf("team-a"))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := stsCalls(h.fake, "AssumeRoleWithWebIdentity"); n != 1 {
		t.Errorf("20 replicas of one ServiceAccount made %d STS calls, want 1", n)
	}
	if _, err := h.mountAttrs(t, c.podAttrs("team-b", "app", "web-0", secretOf("team-b"))); err != nil {
		t.Fatal(err)
	}
	if n := stsCalls(h.fake, "AssumeRoleWithWebIdentity"); n != 2 {
		t.Errorf("another ServiceAccount: %d STS calls in all, want 2 (its own session)", n)
	}

	// With the shared credentials warm, a token for another pod than the
	// mount names, or one the cluster did not sign, reads nothing.
	attacker := fakeaws.NewTestIssuer(t, c.issuer.URL())
	for name, issuer := range map[string]*fakeaws.Issuer{"another pod's genuine token": c.issuer, "a forged token": attacker} {
		cl := fakeaws.TokenClaims{Subject: "system:serviceaccount:team-a:app", Audiences: []string{auth.AudienceSTS}, PodName: "web-0", PodUID: podUID("web-0"), KeyID: c.issuer.KeyID()}
		b, _ := json.Marshal(map[string]map[string]string{auth.AudienceSTS: {"token": c.keep(issuer.TokenWithClaims(cl))}})
		h.fake.ResetCalls()
		resp, err := h.mountAttrs(t, podAttrsWithTokens("team-a", "app", "intruder", secretOf("team-a"), string(b)))
		if status.Code(err) != codes.Unauthenticated || len(resp.GetFiles()) != 0 {
			t.Errorf("%s for pod intruder: %v, %d files; want Unauthenticated", name, err, len(resp.GetFiles()))
		}
		if n := len(h.fake.Calls()); n != 0 {
			t.Errorf("%s caused %d AWS calls", name, n)
		}
	}
	assertNoTokensOrCredentials(t, h, c)
}

// TestForgedTokenWithWarmCredentials is the attack of issue 14: after a
// pod of a ServiceAccount mounted (its credentials are cached), a token
// signed by any other key, claiming that ServiceAccount, must read
// nothing, for IRSA and for Pod Identity, and make no AWS call at all.
func TestForgedTokenWithWarmCredentials(t *testing.T) {
	h, c := newWorkloadHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Cache.MaxStaleness = time.Minute }})
	seedTeams(h.fake)
	attacker := fakeaws.NewTestIssuer(t, c.issuer.URL())
	podIdentity := secretOf("team-p")
	podIdentity["usePodIdentity"] = "true"
	forge := func(ns, pod string, mod func(*fakeaws.TokenClaims)) string {
		tokens := map[string]map[string]string{}
		for _, aud := range []string{auth.AudienceSTS, auth.AudiencePodIdentity} {
			cl := fakeaws.TokenClaims{Subject: "system:serviceaccount:" + ns + ":app", Audiences: []string{aud}, PodName: pod, PodUID: podUID(pod)}
			mod(&cl)
			tokens[aud] = map[string]string{"token": c.keep(attacker.TokenWithClaims(cl))}
		}
		b, _ := json.Marshal(tokens)
		return string(b)
	}
	for _, tc := range []struct {
		ns     string
		params map[string]string
	}{{"team-a", secretOf("team-a")}, {"team-p", podIdentity}} {
		// The victim mounts: credentials and values are cached.
		if _, err := h.mountAttrs(t, c.podAttrs(tc.ns, "app", "victim", tc.params)); err != nil {
			t.Fatal(err)
		}
		for name, mod := range map[string]func(*fakeaws.TokenClaims){
			"the cluster's key id": func(cl *fakeaws.TokenClaims) { cl.KeyID = c.issuer.KeyID() },
			"its own key id":       func(*fakeaws.TokenClaims) {},
			"bound to no pod":      func(cl *fakeaws.TokenClaims) { cl.KeyID = c.issuer.KeyID(); cl.Unbound = true },
			"the victim pod's identity": func(cl *fakeaws.TokenClaims) {
				cl.KeyID = c.issuer.KeyID()
				cl.PodName = "victim"
				cl.PodUID = podUID("victim")
			},
		} {
			for _, pod := range []string{"victim", "attacker"} {
				h.fake.ResetCalls()
				resp, err := h.mountAttrs(t, podAttrsWithTokens(tc.ns, "app", pod, tc.params, forge(tc.ns, pod, mod)))
				if status.Code(err) != codes.Unauthenticated || len(resp.GetFiles()) != 0 {
					t.Fatalf("%s, forged token (%s) as pod %s: %v, %d files; want Unauthenticated", tc.ns, name, pod, err, len(resp.GetFiles()))
				}
				if !strings.Contains(err.Error(), "not signed by this cluster's ServiceAccount issuer") && !strings.Contains(err.Error(), "a key this cluster's ServiceAccount issuer does not have") {
					t.Errorf("forged token: the error does not say why: %v", err)
				}
				if n := len(h.fake.Calls()); n != 0 {
					t.Errorf("a forged token caused %d AWS calls", n)
				}
			}
		}
	}
	if got := sample(t, h.metrics, "coffer_mount_requests_total", map[string]string{"outcome": "error", "error_class": "identity_unauthenticated"}); got != 16 {
		t.Errorf("identity_unauthenticated mounts = %v, want 16", got)
	}
	assertNoTokensOrCredentials(t, h, c)
}

// TestTokenOfAnotherIssuerWithWarmCredentials: after a pod of a
// ServiceAccount mounted (its credentials are cached), a token signed with
// the cluster's own key but issued by another issuer (a key shared with
// another cluster) reads nothing and makes no AWS call: coffer checks iss
// before any cache, for IRSA and Pod Identity.
func TestTokenOfAnotherIssuerWithWarmCredentials(t *testing.T) {
	h, c := newWorkloadHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Cache.MaxStaleness = time.Minute }})
	seedTeams(h.fake)
	podIdentity := secretOf("team-p")
	podIdentity["usePodIdentity"] = "true"
	for _, tc := range []struct {
		ns     string
		params map[string]string
	}{{"team-a", secretOf("team-a")}, {"team-p", podIdentity}} {
		if _, err := h.mountAttrs(t, c.podAttrs(tc.ns, "app", "victim", tc.params)); err != nil {
			t.Fatal(err)
		}
		tokens := map[string]map[string]string{}
		for _, aud := range []string{auth.AudienceSTS, auth.AudiencePodIdentity} {
			cl := fakeaws.TokenClaims{Subject: "system:serviceaccount:" + tc.ns + ":app", Audiences: []string{aud}, PodName: "victim", PodUID: podUID("victim")}
			tokens[aud] = map[string]string{"token": c.keep(c.elsewhere.TokenWithClaims(cl))}
		}
		b, _ := json.Marshal(tokens)
		h.fake.ResetCalls()
		resp, err := h.mountAttrs(t, podAttrsWithTokens(tc.ns, "app", "victim", tc.params, string(b)))
		if status.Code(err) != codes.Unauthenticated || len(resp.GetFiles()) != 0 {
			t.Fatalf("%s: a token of another issuer: %v, %d files; want Unauthenticated", tc.ns, err, len(resp.GetFiles()))
		}
		if !strings.Contains(err.Error(), `issued by "https://oidc.example/another-cluster", not by this cluster's ServiceAccount issuer`) {
			t.Errorf("the error does not say why: %v", err)
		}
		if n := len(h.fake.Calls()); n != 0 {
			t.Errorf("a token of another issuer caused %d AWS calls", n)
		}
	}
	if got := sample(t, h.metrics, "coffer_mount_requests_total", map[string]string{"outcome": "error", "error_class": "identity_unauthenticated"}); got != 2 {
		t.Errorf("identity_unauthenticated mounts = %v, want 2", got)
	}
	assertNoTokensOrCredentials(t, h, c)
}

// TestTokenMustMatchThePod: a genuine token of one pod does not serve a
// mount whose attributes name another pod, ServiceAccount or namespace
// (attributes a pod author sets when the CSIDriver has podInfoOnMount:
// false), even with that identity's credentials cached.
func TestTokenMustMatchThePod(t *testing.T) {
	h, c := newWorkloadHarness(t)
	seedTeams(h.fake)
	if _, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "victim", secretOf("team-a"))); err != nil {
		t.Fatal(err)
	}
	tokensOf := func(ns, sa, pod string) string {
		b, _ := json.Marshal(map[string]map[string]string{auth.AudienceSTS: {"token": c.token(ns, sa, pod, auth.AudienceSTS, time.Hour)}})
		return string(b)
	}
	tests := map[string]struct {
		attrs string
		want  string
	}{
		"another pod's token":            {podAttrsWithTokens("team-a", "app", "victim", secretOf("team-a"), tokensOf("team-a", "app", "other")), "issued to pod team-a/other"},
		"another ServiceAccount's token": {podAttrsWithTokens("team-a", "app", "victim", secretOf("team-a"), tokensOf("team-b", "app", "victim")), `token is for "system:serviceaccount:team-b:app"`},
		"a previous pod of the same name": {func() string {
			var m map[string]string
			json.Unmarshal([]byte(podAttrsWithTokens("team-a", "app", "victim", secretOf("team-a"), tokensOf("team-a", "app", "victim"))), &m)
			m["csi.storage.k8s.io/pod.uid"] = "uid-of-the-new-pod"
			b, _ := json.Marshal(m)
			return string(b)
		}(), `(uid "uid-of-the-new-pod")`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h.fake.ResetCalls()
			_, err := h.mountAttrs(t, tc.attrs)
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want Unauthenticated naming %q", err, tc.want)
			}
			if n := len(h.fake.Calls()); n != 0 {
				t.Errorf("%d AWS calls", n)
			}
		})
	}
}

func TestIdentityErrorsTellTheFix(t *testing.T) {
	h, c := newWorkloadHarness(t)
	seedTeams(h.fake)
	validTokens := func(ns, sa, aud string, ttl time.Duration) string {
		b, _ := json.Marshal(map[string]map[string]string{aud: {"token": c.token(ns, sa, "p", aud, ttl), "expirationTimestamp": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
		return string(b)
	}
	wrongAudience, _ := json.Marshal(map[string]map[string]string{auth.AudienceSTS: {"token": c.token("team-a", "app", "p", "other-audience", time.Hour)}})
	tests := map[string]struct {
		attrs string
		code  codes.Code
		want  []string
	}{
		"no tokens (CSIDriver without tokenRequests)": {
			podAttrsWithTokens("team-a", "app", "p", secretOf("team-a"), ""),
			codes.FailedPrecondition, []string{"sent no ServiceAccount token", "tokenRequests", "sts.amazonaws.com"}},
		"no token for the STS audience": {
			podAttrsWithTokens("team-a", "app", "p", secretOf("team-a"), validTokens("team-a", "app", auth.AudiencePodIdentity, time.Hour)),
			codes.FailedPrecondition, []string{`no token for audience "sts.amazonaws.com"`}},
		"ServiceAccount without role annotation": {
			c.podAttrs("team-c", "app", "p", secretOf("team-a")),
			codes.FailedPrecondition, []string{"ServiceAccount team-c/app has no eks.amazonaws.com/role-arn annotation", "kubectl annotate serviceaccount -n team-c app"}},
		"expired token": {
			podAttrsWithTokens("team-a", "app", "p", secretOf("team-a"), validTokens("team-a", "app", auth.AudienceSTS, -time.Minute)),
			codes.Unauthenticated, []string{"has expired"}},
		"token for the wrong audience": {
			podAttrsWithTokens("team-a", "app", "p", secretOf("team-a"), string(wrongAudience)),
			codes.Unauthenticated, []string{`the ServiceAccount token sent for audience "sts.amazonaws.com" was issued for another audience`}},
		"token of another ServiceAccount": {
			podAttrsWithTokens("team-a", "app", "p", secretOf("team-a"), validTokens("team-b", "app", auth.AudienceSTS, time.Hour)),
			codes.Unauthenticated, []string{`token is for "system:serviceaccount:team-b:app"`}},
		"role does not trust the ServiceAccount": {
			c.podAttrs("team-d", "app", "p", secretOf("team-a")),
			codes.PermissionDenied, []string{"STS would not let system:serviceaccount:team-d:app assume role " + roleA, "AccessDenied", "trust policy"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := h.mountAttrs(t, tc.attrs)
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want code %v", err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	assertNoTokensOrCredentials(t, h, c)
}

func TestChainedRole(t *testing.T) {
	h, c := newWorkloadHarness(t)
	seedTeams(h.fake)
	params := secretOf("shared")
	params["assumeRoleArn"] = roleShared
	params["assumeRoleExternalId"] = sharedExtID
	resp, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "p", params))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := files(resp)
	if string(got["db"].Contents) != "shared-db-value" {
		t.Errorf("db = %q", got["db"].Contents)
	}
	// Reused: the pod's next mount (a rotation poll) makes no STS call.
	if _, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "p", params)); err != nil {
		t.Fatal(err)
	}
	if n := stsCalls(h.fake, "AssumeRole"); n != 1 {
		t.Errorf("AssumeRole calls = %d, want 1", n)
	}

	params["assumeRoleExternalId"] = "wrong"
	if _, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "p3", params)); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "assumeRoleArn") {
		t.Errorf("wrong external id: %v", err)
	}
	params["assumeRoleExternalId"] = sharedExtID
	_, err = h.mountAttrs(t, c.podAttrs("team-b", "app", "p4", params))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), roleB) {
		t.Errorf("untrusted pod role chaining: %v", err)
	}
	// The pod's own role cannot read the shared secrets: only the chain can.
	if _, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "p5", secretOf("shared"))); status.Code(err) != codes.PermissionDenied {
		t.Errorf("team A without chaining read shared secrets: %v", err)
	}
}

func TestPodIdentity(t *testing.T) {
	params := func(addressType string) map[string]string {
		p := secretOf("team-p")
		p["usePodIdentity"] = "true"
		if addressType != "" {
			p["preferredAddressType"] = addressType
		}
		return p
	}
	agentCalls := func(f *fakeaws.Server, name string) int {
		return f.CountCalls(func(c fakeaws.Call) bool { return c.Service == fakeaws.ServiceEKSAuth && c.Region == name })
	}
	t.Run("ipv4 by default", func(t *testing.T) {
		h, c := newWorkloadHarness(t)
		seedTeams(h.fake)
		resp, err := h.mountAttrs(t, c.podAttrs("team-p", "app", "p", params("")))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := files(resp); string(got["db"].Contents) != "team-p-db-value" {
			t.Errorf("db = %q", got["db"].Contents)
		}
		if agentCalls(h.fake, "ipv4") != 1 || agentCalls(h.fake, "ipv6") != 0 {
			t.Errorf("agent calls v4=%d v6=%d", agentCalls(h.fake, "ipv4"), agentCalls(h.fake, "ipv6"))
		}
		if n := stsCalls(h.fake, "AssumeRoleWithWebIdentity"); n != 0 {
			t.Errorf("Pod Identity made %d STS calls", n)
		}
	})
	t.Run("auto falls back to ipv6", func(t *testing.T) {
		h, c := newWorkloadHarness(t)
		seedTeams(h.fake)
		h.fake.InjectFault(fakeaws.Fault{Region: "ipv4", Kind: fakeaws.FaultReset})
		if _, err := h.mountAttrs(t, c.podAttrs("team-p", "app", "p", params("auto"))); err != nil {
			t.Fatal(err)
		}
		if agentCalls(h.fake, "ipv6") != 1 {
			t.Errorf("ipv6 agent calls = %d, want 1", agentCalls(h.fake, "ipv6"))
		}
	})
	t.Run("ipv6 only", func(t *testing.T) {
		h, c := newWorkloadHarness(t)
		seedTeams(h.fake)
		if _, err := h.mountAttrs(t, c.podAttrs("team-p", "app", "p", params("ipv6"))); err != nil {
			t.Fatal(err)
		}
		if agentCalls(h.fake, "ipv4") != 0 {
			t.Errorf("ipv6-only mount asked the ipv4 agent")
		}
	})
	t.Run("ipv4 only and the agent is down", func(t *testing.T) {
		h, c := newWorkloadHarness(t)
		seedTeams(h.fake)
		h.fake.SetRegionDown("ipv4", true)
		_, err := h.mountAttrs(t, c.podAttrs("team-p", "app", "p", params("ipv4")))
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "Pod Identity agent did not answer") {
			t.Errorf("err = %v", err)
		}
		if n, want := agentCalls(h.fake, "ipv4"), h.cfg.Identity.PodIdentityAttempts; n != want || want < 2 {
			t.Errorf("agent attempts = %d, want %d (--pod-identity-attempts: retried)", n, want)
		}
	})
	t.Run("no association", func(t *testing.T) {
		h, c := newWorkloadHarness(t)
		seedTeams(h.fake)
		_, err := h.mountAttrs(t, c.podAttrs("team-c", "app", "p", params("")))
		if err == nil || !strings.Contains(err.Error(), "EKS Pod Identity agent refused system:serviceaccount:team-c:app") {
			t.Errorf("err = %v", err)
		}
		assertNoTokensOrCredentials(t, h, c)
	})
}

func TestRegionFromNodeLabel(t *testing.T) {
	h, c := newWorkloadHarness(t)
	seedTeams(h.fake)
	var nodeReads counter
	c.kube.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		nodeReads.add()
		return false, nil, nil
	})
	params := secretOf("team-a") // no region: the node's label decides
	for range 5 {
		attrs := c.podAttrs("team-a", "app", "p", params)
		var m map[string]string
		json.Unmarshal([]byte(attrs), &m)
		delete(m, "region")
		b, _ := json.Marshal(m)
		if _, err := h.mountAttrs(t, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	if n := nodeReads.get(); n != 1 {
		t.Errorf("node read %d times, want once per process", n)
	}
	if n := h.fake.CountCalls(func(c fakeaws.Call) bool { return c.Service == fakeaws.ServiceSecretsManager && c.Region != primary }); n != 0 {
		t.Errorf("%d calls outside the node's region", n)
	}
}

// assertNoTokensOrCredentials checks that no token handed to the provider
// appears in its logs.
func assertNoTokensOrCredentials(t *testing.T, h *harness, c *cluster) {
	t.Helper()
	logs := h.logs.String()
	c.tokensMu.Lock()
	defer c.tokensMu.Unlock()
	for _, tok := range c.tokens {
		if strings.Contains(logs, tok) || strings.Contains(logs, tok[strings.LastIndexByte(tok, '.')+1:]) {
			t.Fatalf("a ServiceAccount token appears in the logs")
		}
	}
	if strings.Contains(logs, "ASIA") {
		t.Errorf("an access key id appears in the logs")
	}
}
