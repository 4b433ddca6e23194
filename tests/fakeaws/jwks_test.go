package fakeaws_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// fakeAPIServer serves /openid/v1/jwks over TLS to bearer-authenticated
// callers, like a kube-apiserver.
type fakeAPIServer struct {
	*httptest.Server
	fetches atomic.Int32
	mu      sync.Mutex
	jwks    []byte
}

func newFakeAPIServer(t *testing.T, token string, issuers ...*fakeaws.Issuer) *fakeAPIServer {
	a := &fakeAPIServer{}
	a.publish(t, issuers...)
	a.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fetches.Add(1)
		if r.URL.Path != "/openid/v1/jwks" || r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(a.jwks)
	}))
	t.Cleanup(a.Close)
	return a
}

// publish replaces the served key set with the issuers' keys.
func (a *fakeAPIServer) publish(t *testing.T, issuers ...*fakeaws.Issuer) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	for _, iss := range issuers {
		var one struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(iss.JWKS(), &one); err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, one.Keys...)
	}
	b, _ := json.Marshal(set)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.jwks = b
}

func TestJWKSFromURL(t *testing.T) {
	iss1, iss2, stranger := fakeaws.NewTestIssuer(t, issuerURL), fakeaws.NewTestIssuer(t, issuerURL), fakeaws.NewTestIssuer(t, issuerURL)
	api := newFakeAPIServer(t, "apiserver-token", iss1)
	srv, ts := fakeaws.NewTestServer(t)
	srv.SetJWKSURL(api.URL+"/openid/v1/jwks", "apiserver-token", api.Client())
	mustAddRole(t, srv, fakeaws.Role{ARN: roleA, TrustedSubjects: []string{subA}})
	e := &env{srv: srv, ts: ts}
	ctx := context.Background()
	federateWith := func(iss *fakeaws.Issuer) error {
		_, err := e.federate(ctx, roleA, iss.Token(subA, []string{stsAud}, time.Hour))
		return err
	}
	wantFetches := func(n int32) {
		t.Helper()
		if got := api.fetches.Load(); got != n {
			t.Errorf("%d JWKS fetches, want %d", got, n)
		}
	}

	if err := federateWith(iss1); err != nil {
		t.Fatal(err)
	}
	wantFetches(1) // fetched lazily, on first use
	if err := federateWith(iss1); err != nil {
		t.Fatal(err)
	}
	wantFetches(1) // and cached

	// Key rotation: the apiserver publishes a new key; a token signed with
	// it triggers one refetch.
	api.publish(t, iss1, iss2)
	if err := federateWith(iss2); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	wantFetches(2)

	// A key the apiserver does not have either: one refetch, then rejection.
	wantCode(t, federateWith(stranger), "InvalidIdentityToken")
	wantFetches(3)

	// The apiserver refusing the fake's credentials is an IdP outage.
	srv.SetJWKSURL(api.URL+"/openid/v1/jwks", "revoked", api.Client())
	wantCode(t, federateWith(iss1), "IDPCommunicationError")

	// Static keys and fetched keys combine.
	if err := srv.SetJWKS(stranger.JWKS()); err != nil {
		t.Fatal(err)
	}
	if err := federateWith(stranger); err != nil {
		t.Errorf("static key: %v", err)
	}
}

func TestSetJWKSRejectsGarbage(t *testing.T) {
	srv := fakeaws.New(fakeaws.Options{})
	for _, bad := range []string{`nope`, `{}`, `{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}`, `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`} {
		if err := srv.SetJWKS([]byte(bad)); err == nil {
			t.Errorf("SetJWKS(%s) succeeded", bad)
		}
	}
	// Keys the fake cannot use are skipped, not errors.
	if err := srv.SetJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA"},{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}`)); err != nil {
		t.Error(err)
	}
}
