package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// hs256 signs payload (base64url claims) with HMAC-SHA256 keyed by key,
// under the key id kid.
func hs256(t *testing.T, key []byte, kid, payload string) string {
	t.Helper()
	header, err := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT", "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	signed := base64.RawURLEncoding.EncodeToString(header) + "." + payload
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// keySource serves a key set that tests can swap, counting reads.
type keySource struct {
	mu    sync.Mutex
	jwks  []byte
	err   error
	reads atomic.Int64
}

func (k *keySource) set(jwks []byte, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.jwks, k.err = jwks, err
}

func (k *keySource) source(context.Context) ([]byte, error) {
	k.reads.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.jwks, k.err
}

func tokensAttr(t *testing.T, entries map[string]string) string {
	t.Helper()
	m := map[string]serviceAccountToken{}
	for aud, tok := range entries {
		m[aud] = serviceAccountToken{Token: tok, ExpirationTimestamp: time.Now().Add(time.Hour)}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const (
	testPodUID = "8c1b7f2e-0000-4000-8000-00000000a001"
	testSub    = "system:serviceaccount:team:app"
)

func TestVerifyToken(t *testing.T) {
	cluster := fakeaws.NewTestIssuer(t, "https://cluster.example")
	attacker := fakeaws.NewTestIssuer(t, "https://cluster.example")
	keys := &keySource{}
	keys.set(cluster.JWKS(), nil)
	v := NewVerifier(VerifierOptions{Keys: keys.source, Issuers: []string{"https://cluster.example"}})
	req := Request{Namespace: "team", ServiceAccount: "app", PodName: "app-0", PodUID: testPodUID}
	claims := func(mod func(*fakeaws.TokenClaims)) fakeaws.TokenClaims {
		c := fakeaws.TokenClaims{Subject: testSub, Audiences: []string{AudienceSTS}, PodName: "app-0", PodUID: testPodUID}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	sts := func(tok string) string { return tokensAttr(t, map[string]string{AudienceSTS: tok}) }
	good := cluster.TokenWithClaims(claims(nil))
	tests := map[string]struct {
		raw        string
		wantReason string
		wantMsg    []string
	}{
		"valid, bound to the pod":                   {raw: sts(good)},
		"valid, bound to no pod (TokenRequest API)": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.Unbound = true })))},
		"valid, expires within the leeway": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) {
			c.IssuedAt = time.Now().Add(-time.Hour)
			c.Expiry = time.Now().Add(-10 * time.Second)
		})))},
		"attribute missing": {raw: "", wantReason: ReasonNoToken, wantMsg: []string{"sent no ServiceAccount token", "tokenRequests", "audience=sts.amazonaws.com"}},
		"audience missing":  {raw: tokensAttr(t, map[string]string{AudiencePodIdentity: good}), wantReason: ReasonNoToken, wantMsg: []string{`no token for audience "sts.amazonaws.com"`, "pods.eks.amazonaws.com"}},
		"not JSON":          {raw: "{", wantReason: ReasonInvalidToken, wantMsg: []string{"not the JSON"}},
		"not a JWT":         {raw: sts("opaque"), wantReason: ReasonUnauthenticated, wantMsg: []string{"not a JWT signed with RS256 or ES256"}},
		"forged: another key under the cluster's key id": {raw: sts(attacker.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.KeyID = cluster.KeyID() }))),
			wantReason: ReasonUnauthenticated, wantMsg: []string{"not signed by this cluster's ServiceAccount issuer"}},
		"forged: a key the cluster does not have": {raw: sts(attacker.TokenWithClaims(claims(nil))), wantReason: ReasonUnauthenticated, wantMsg: []string{"a key this cluster's ServiceAccount issuer does not have"}},
		"forged: unsigned (alg none)":             {raw: sts("eyJhbGciOiJub25lIn0." + strings.Split(good, ".")[1] + "."), wantReason: ReasonUnauthenticated, wantMsg: []string{"not a JWT signed"}},
		// The classic confusion: HMAC keyed with the cluster's public key set.
		"forged: HS256 keyed with the public keys": {raw: sts(hs256(t, cluster.JWKS(), cluster.KeyID(), strings.Split(good, ".")[1])), wantReason: ReasonUnauthenticated, wantMsg: []string{"not a JWT signed with RS256 or ES256"}},
		"expired": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) {
			c.IssuedAt = time.Now().Add(-2 * time.Hour)
			c.Expiry = time.Now().Add(-time.Minute)
		}))), wantReason: ReasonUnauthenticated, wantMsg: []string{"has expired"}},
		"not valid yet": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.NotBefore = time.Now().Add(time.Hour) }))), wantReason: ReasonUnauthenticated, wantMsg: []string{"not valid yet"}},
		"never expires": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.Extra = map[string]any{"exp": nil} }))), wantReason: ReasonUnauthenticated, wantMsg: []string{"never expires"}},
		"wrong audience": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.Audiences = []string{"https://kubernetes.default.svc"} }))),
			wantReason: ReasonUnauthenticated, wantMsg: []string{`sent for audience "sts.amazonaws.com" was issued for another audience`}},
		"other ServiceAccount": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.Subject = "system:serviceaccount:team:other" }))),
			wantReason: ReasonUnauthenticated, wantMsg: []string{`"system:serviceaccount:team:other"`, `"system:serviceaccount:team:app"`}},
		"other namespace claim": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.Namespace = "elsewhere" }))),
			wantReason: ReasonUnauthenticated, wantMsg: []string{"lacks matching kubernetes.io namespace and serviceaccount claims"}},
		"other ServiceAccount claim": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.ServiceAccount = "other" }))),
			wantReason: ReasonUnauthenticated, wantMsg: []string{"lacks matching kubernetes.io"}},
		"no kubernetes.io claims": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.Extra = map[string]any{"kubernetes.io": nil} }))),
			wantReason: ReasonUnauthenticated, wantMsg: []string{"lacks matching kubernetes.io"}},
		"another pod's token": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.PodName = "app-1" }))),
			wantReason: ReasonUnauthenticated, wantMsg: []string{"issued to pod team/app-1", `name pod "app-0"`, "podInfoOnMount: true"}},
		"same pod name, another uid (a previous pod)": {raw: sts(cluster.TokenWithClaims(claims(func(c *fakeaws.TokenClaims) { c.PodUID = "8c1b7f2e-0000-4000-8000-00000000dead" }))),
			wantReason: ReasonUnauthenticated, wantMsg: []string{"uid 8c1b7f2e-0000-4000-8000-00000000dead", testPodUID}},
		"oversized": {raw: sts(strings.Repeat("a", maxTokenBytes+1)), wantReason: ReasonUnauthenticated, wantMsg: []string{"over 16384 bytes"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tok, err := v.token(context.Background(), tc.raw, AudienceSTS, req)
			if tc.wantReason == "" {
				if err != nil || tok.token == "" {
					t.Fatalf("token = %q, %v", tok.token, err)
				}
				return
			}
			var ae *Error
			if !errors.As(err, &ae) || ae.Reason != tc.wantReason {
				t.Fatalf("err = %v, want reason %s", err, tc.wantReason)
			}
			for _, w := range tc.wantMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "eyJ") {
				t.Errorf("error contains a token: %q", err)
			}
		})
	}
	// One read of the keys served every valid token; the forged ones with
	// unknown key ids asked again at most once (rate limited).
	if n := keys.reads.Load(); n > 2 {
		t.Errorf("the keys were read %d times, want at most 2", n)
	}
}

func TestVerifierKeys(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	clock, advance := clk.Now, clk.Step
	first, second := fakeaws.NewTestIssuer(t, "https://c"), fakeaws.NewTestIssuer(t, "https://c")
	keys := &keySource{}
	keys.set(first.JWKS(), nil)
	v := NewVerifier(VerifierOptions{Keys: keys.source, Issuers: []string{"https://c"}, MinRefresh: time.Minute, MaxAge: time.Hour})
	v.clock = clk
	req := Request{Namespace: "team", ServiceAccount: "app", PodName: "app-0", PodUID: testPodUID}
	tok := func(iss *fakeaws.Issuer) string {
		return iss.TokenWithClaims(fakeaws.TokenClaims{Subject: testSub, Audiences: []string{AudienceSTS}, PodName: "app-0", PodUID: testPodUID, IssuedAt: clock()})
	}
	verify := func(tok string) error { return verifyErr(v, tok, req) }

	// A burst of mounts reads the keys once; steady state reads nothing.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if err := verify(tok(first)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := keys.reads.Load(); n != 1 {
		t.Fatalf("a burst of 50 read the keys %d times, want 1", n)
	}

	// A flood of tokens naming unknown keys reads the keys at most once
	// per MinRefresh.
	for range 100 {
		if err := verify(tok(second)); err == nil {
			t.Fatal("a token of a key the cluster does not have was accepted")
		}
	}
	if n := keys.reads.Load(); n != 1 {
		t.Errorf("100 unknown-key tokens right after a read read the keys %d more times, want 0", n-1)
	}
	advance(2 * time.Minute)
	for range 100 {
		if err := verify(tok(second)); err == nil {
			t.Fatal("a token of a key the cluster does not have was accepted")
		}
	}
	if n := keys.reads.Load(); n != 2 {
		t.Errorf("100 unknown-key tokens read the keys %d more times, want 1", n-1)
	}

	// The cluster rotates its key: once MinRefresh has passed, the new
	// key is read and verifies.
	keys.set(append([]byte(nil), []byte(`{"keys":[`+jwkOf(t, first)+`,`+jwkOf(t, second)+`]}`)...), nil)
	advance(2 * time.Minute)
	if err := verify(tok(second)); err != nil {
		t.Fatalf("after rotation: %v", err)
	}

	// The apiserver is unreachable: known keys keep verifying, even past
	// MaxAge, and the failure is retried only once per MinRefresh.
	keys.set(nil, errors.New("connection refused"))
	advance(2 * time.Hour)
	before := keys.reads.Load()
	for range 10 {
		if err := verify(tok(first)); err != nil {
			t.Fatalf("with old keys and the apiserver down: %v", err)
		}
	}
	if n := keys.reads.Load() - before; n != 1 {
		t.Errorf("10 mounts with the apiserver down read the keys %d times, want 1", n)
	}

	// Without any keys, the failure is reported as such.
	cold := NewVerifier(VerifierOptions{Keys: keys.source, Issuers: []string{"https://c"}})
	err := verifyErr(cold, tok(first), req)
	var ae *Error
	if !errors.As(err, &ae) || ae.Reason != ReasonUnreachable || !strings.Contains(err.Error(), "could not read the cluster's ServiceAccount issuer keys") {
		t.Errorf("no keys: %v", err)
	}
	keys.set([]byte(`{"keys":[]}`), nil)
	if err := verifyErr(NewVerifier(VerifierOptions{Keys: keys.source, Issuers: []string{"https://c"}}), tok(first), req); err == nil || !strings.Contains(err.Error(), "not a JSON Web Key Set with keys") {
		t.Errorf("empty key set: %v", err)
	}
}

// jwkOf is the single key of iss's key set.
func jwkOf(t *testing.T, iss *fakeaws.Issuer) string {
	t.Helper()
	var set struct{ Keys []json.RawMessage }
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("key set: %v", err)
	}
	return string(set.Keys[0])
}

// verifyErr verifies tok for the STS audience.
func verifyErr(v *Verifier, tok string, req Request) error {
	_, err := v.verify(context.Background(), tok, AudienceSTS, req)
	return err
}
