package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// sameKeyIssuers are two issuers that sign with one key (one key id): a
// token of the second is genuinely signed with the cluster's key but names
// another issuer, as when one key signs for several clusters.
func sameKeyIssuers(t *testing.T, cluster, other string) (*fakeaws.Issuer, *fakeaws.Issuer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := fakeaws.NewIssuerWithKey(cluster, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fakeaws.NewIssuerWithKey(other, key)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestTokenOfAnotherIssuerIsRefused: a token whose iss is none of the
// cluster's is refused as unauthenticated, even when its signature
// verifies with the cluster's keys, and before any key is read.
func TestTokenOfAnotherIssuerIsRefused(t *testing.T) {
	cluster, elsewhere := sameKeyIssuers(t, "https://cluster.example", "https://elsewhere.example")
	req := Request{Namespace: "team", ServiceAccount: "app", PodName: "app-0", PodUID: testPodUID}
	claims := fakeaws.TokenClaims{Subject: testSub, Audiences: []string{AudienceSTS}, PodName: "app-0", PodUID: testPodUID}
	noIss := claims
	noIss.Extra = map[string]any{"iss": nil}
	longIss := claims
	longIss.Extra = map[string]any{"iss": strings.Repeat("x", 10000)}

	for name, o := range map[string]VerifierOptions{
		"configured issuers": {Issuers: []string{"https://old.example", "https://cluster.example"}},
		"discovered issuer":  {Discover: func(context.Context) (string, error) { return "https://cluster.example", nil }},
	} {
		t.Run(name, func(t *testing.T) {
			keys := &keySource{}
			keys.set(cluster.JWKS(), nil)
			o.Keys = keys.source
			v := NewVerifier(o)
			for what, tok := range map[string]string{
				"another issuer, the cluster's key": elsewhere.TokenWithClaims(claims),
				"no issuer":                         cluster.TokenWithClaims(noIss),
				"a 10 KB issuer":                    cluster.TokenWithClaims(longIss),
			} {
				_, err := v.verify(context.Background(), tok, AudienceSTS, req)
				var ae *Error
				if !errors.As(err, &ae) || ae.Reason != ReasonUnauthenticated || !strings.Contains(err.Error(), "not by this cluster's ServiceAccount issuer (") {
					t.Errorf("%s: err = %v, want unauthenticated naming the issuer", what, err)
				}
				if err != nil && len(err.Error()) > 800 {
					t.Errorf("%s: the error is %d bytes: an unverified claim is quoted whole", what, len(err.Error()))
				}
			}
			if o.Issuers != nil && keys.reads.Load() != 0 {
				t.Errorf("tokens of other issuers read the keys %d times, want 0", keys.reads.Load())
			}
			if _, err := v.verify(context.Background(), cluster.TokenWithClaims(claims), AudienceSTS, req); err != nil {
				t.Errorf("the cluster's own token: %v", err)
			}
			if n := keys.reads.Load(); n != 1 {
				t.Errorf("the keys were read %d times, want once", n)
			}
		})
	}
}

// TestIssuerFromDiscovery: the issuer is read from the discovery document
// the kube-apiserver serves, bounded and checked.
func TestIssuerFromDiscovery(t *testing.T) {
	for doc, want := range map[string]string{
		`{"issuer":"https://kubernetes.default.svc.cluster.local","jwks_uri":"https://x/openid/v1/jwks"}`: "https://kubernetes.default.svc.cluster.local",
		`{"issuer":""}`: "",
		`{}`:            "",
		`not json`:      "",
		`{"issuer":"` + strings.Repeat("x", maxIssuerBytes+1) + `"}`: "",
	} {
		got, err := parseIssuer([]byte(doc))
		if got != want || (err == nil) != (want != "") {
			t.Errorf("parseIssuer(%.40q) = %q, %v; want %q", doc, got, err, want)
		}
	}
	// Without issuers and without discovery, every token is refused.
	cluster := fakeaws.NewTestIssuer(t, "https://c")
	v := NewVerifier(VerifierOptions{Keys: staticKeys(cluster.JWKS())})
	req := Request{Namespace: "team", ServiceAccount: "app", PodName: "app-0", PodUID: testPodUID}
	_, err := v.verify(context.Background(), cluster.TokenWithClaims(fakeaws.TokenClaims{Subject: testSub, Audiences: []string{AudienceSTS}, PodName: "app-0", PodUID: testPodUID}), AudienceSTS, req)
	var ae *Error
	if !errors.As(err, &ae) || ae.Reason != ReasonConfig || !strings.Contains(err.Error(), "--service-account-issuer") {
		t.Errorf("no issuer known: err = %v, want a config error naming --service-account-issuer", err)
	}
}

// TestForgedTokensBeforeKeysLoad: while the keys have never loaded (the
// apiserver is down, or slow), a flood of forged tokens costs one read of
// the keys per MinRefresh, not one per token: concurrent ones share a
// read, and later ones get its failure until the next read is due.
func TestForgedTokensBeforeKeysLoad(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	clock, advance := clk.Now, clk.Step
	cluster, attacker := fakeaws.NewTestIssuer(t, "https://c"), fakeaws.NewTestIssuer(t, "https://c")
	var reads, discoveries atomic.Int64
	var down atomic.Bool
	down.Store(true)
	keys := func(context.Context) ([]byte, error) {
		reads.Add(1)
		if down.Load() {
			return nil, errors.New("connection refused")
		}
		return cluster.JWKS(), nil
	}
	discover := func(context.Context) (string, error) {
		discoveries.Add(1)
		if down.Load() {
			return "", errors.New("connection refused")
		}
		return "https://c", nil
	}
	req := Request{Namespace: "team", ServiceAccount: "app", PodName: "app-0", PodUID: testPodUID}
	forged := attacker.TokenWithClaims(fakeaws.TokenClaims{Subject: testSub, Audiences: []string{AudienceSTS}, PodName: "app-0", PodUID: testPodUID})
	for name, o := range map[string]VerifierOptions{
		"configured issuer": {Keys: keys, Issuers: []string{"https://c"}, MinRefresh: time.Minute},
		"discovered issuer": {Keys: keys, Discover: discover, MinRefresh: time.Minute},
	} {
		t.Run(name, func(t *testing.T) {
			reads.Store(0)
			discoveries.Store(0)
			down.Store(true)
			v := NewVerifier(o)
			v.clock = clk
			flood := func() {
				var wg sync.WaitGroup
				for range 1000 {
					wg.Go(func() {
						if _, err := v.verify(context.Background(), forged, AudienceSTS, req); err == nil {
							t.Error("a forged token was accepted")
						}
					})
				}
				wg.Wait()
			}
			flood()
			flood()
			if n, d := reads.Load(), discoveries.Load(); n+d > 1 {
				t.Errorf("2,000 forged tokens before the keys loaded made %d key reads and %d issuer reads, want 1 read in all", n, d)
			}
			// The next read is due after MinRefresh; it succeeds, and
			// forged tokens still cost nothing more.
			down.Store(false)
			advance(2 * time.Minute)
			before := reads.Load()
			flood()
			if n := reads.Load() - before; n != 1 {
				t.Errorf("after MinRefresh, 1,000 forged tokens read the keys %d times, want once", n)
			}
			if _, err := v.verify(context.Background(), cluster.TokenWithClaims(fakeaws.TokenClaims{Subject: testSub, Audiences: []string{AudienceSTS}, PodName: "app-0", PodUID: testPodUID, IssuedAt: clock()}), AudienceSTS, req); err != nil {
				t.Errorf("the cluster's own token after the keys loaded: %v", err)
			}
		})
	}
}

// TestKeyReadThatPanics: a read of the keys that panics fails the tokens
// waiting for it, and the ones after it until the next read is due, with
// an error rather than a crash.
func TestKeyReadThatPanics(t *testing.T) {
	cluster := fakeaws.NewTestIssuer(t, "https://c")
	var reads atomic.Int64
	v := NewVerifier(VerifierOptions{Issuers: []string{"https://c"}, Keys: func(context.Context) ([]byte, error) {
		reads.Add(1)
		panic("boom")
	}})
	req := Request{Namespace: "team", ServiceAccount: "app", PodName: "app-0", PodUID: testPodUID}
	tok := cluster.TokenWithClaims(fakeaws.TokenClaims{Subject: testSub, Audiences: []string{AudienceSTS}, PodName: "app-0", PodUID: testPodUID})
	for range 3 {
		if _, err := v.verify(context.Background(), tok, AudienceSTS, req); err == nil {
			t.Fatal("a token was accepted without keys")
		}
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("the keys were read %d times, want once", n)
	}
}
