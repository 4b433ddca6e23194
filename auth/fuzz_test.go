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
