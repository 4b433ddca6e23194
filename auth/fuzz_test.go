package auth

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// FuzzToken: whatever the driver's tokens attribute holds, reading it never
// panics and no error contains a token.
func FuzzToken(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bnM6YXBwIn0.c2ln", "sts.amazonaws.com", "2030-01-01T00:00:00Z")
	f.Add("a.b.c", "other", "")
	f.Add("", "sts.amazonaws.com", "bad")
	iss := fakeaws.NewTestIssuer(f, "https://fuzz")
	v := NewVerifier(VerifierOptions{Keys: staticKeys(iss.JWKS()), Issuers: []string{iss.URL()}})
	f.Add(iss.Token("system:serviceaccount:ns:app", []string{AudienceSTS}, time.Hour), AudienceSTS, "")
	f.Fuzz(func(t *testing.T, tok, audience, expiry string) {
		const canary = "CANARYTOKEN"
		secret := canary + tok
		raw, _ := json.Marshal(map[string]map[string]string{audience: {"token": secret, "expirationTimestamp": expiry}})
		_, err := v.token(context.Background(), string(raw), AudienceSTS, Request{Namespace: "ns", ServiceAccount: "app"})
		if err != nil && strings.Contains(err.Error(), canary) {
			t.Fatalf("error contains the token: %v", err)
		}
		// And the raw attribute itself, as the fuzzer mutates it.
		if _, err := v.token(context.Background(), secret, AudienceSTS, Request{}); err != nil && strings.Contains(err.Error(), canary) {
			t.Fatalf("error contains the attribute: %v", err)
		}
	})
}

// FuzzSessionName: any two distinct workloads (kind, namespace, name) get
// two session names, and every name is one STS accepts.
func FuzzSessionName(f *testing.F) {
	f.Add(uint8(0), "team-a", "web", uint8(0), "team", "a-web")
	f.Add(uint8(2), "team", "app", uint8(0), "team", "sync-app")
	f.Add(uint8(1), "team", "app", uint8(0), "team", "sa-app")
	f.Add(uint8(0), "n", strings.Repeat("p", 100), uint8(0), "n", strings.Repeat("p", 38)+"-AAAAAAAAAAAAAAAA")
	f.Add(uint8(0), "team", "a/b", uint8(0), "team", "a-b")
	kinds := []sessionKind{sessionPod, sessionServiceAccount, sessionSync}
	f.Fuzz(func(t *testing.T, k1 uint8, ns1, n1 string, k2 uint8, ns2, n2 string) {
		a := sessionName(kinds[int(k1)%len(kinds)], ns1, n1)
		b := sessionName(kinds[int(k2)%len(kinds)], ns2, n2)
		for _, s := range []string{a, b} {
			if !validSession(s) {
				t.Fatalf("%q is not a valid STS session name", s)
			}
		}
		same := kinds[int(k1)%len(kinds)] == kinds[int(k2)%len(kinds)] && ns1 == ns2 && n1 == n2
		if (a == b) != same {
			t.Fatalf("(%d %q %q) and (%d %q %q): session names %q and %q", k1, ns1, n1, k2, ns2, n2, a, b)
		}
	})
}
