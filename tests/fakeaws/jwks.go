package fakeaws

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"
)

const (
	jwksFetchTimeout = 10 * time.Second
	maxJWKSBytes     = 1 << 20
)

// oidcVerifier holds what tokens are verified against: the expected issuer
// and the signing keys, given inline (SetJWKS) and/or fetched from a JWKS
// URL such as a kube-apiserver's /openid/v1/jwks (SetJWKSURL).
//
// The fake plays a single OIDC provider. AWS looks the provider up by the
// token's issuer; here any issuer is accepted unless SetIssuer names one.
type oidcVerifier struct {
	mu         sync.Mutex
	issuer     string
	haveStatic bool
	static     []jwk
	remote     *jwksSource
	fetched    []jwk
	gen        uint64 // bumped by every successful fetch

	// fetchMu serialises fetches, so that a burst of tokens with an unknown
	// kid costs one fetch rather than one each.
	fetchMu sync.Mutex
}

type jwk struct {
	kid string
	alg string // "" if the JWK does not restrict it
	key crypto.PublicKey
}

type jwksSource struct {
	url    string
	bearer string
	client *http.Client
}

func newOIDCVerifier() *oidcVerifier { return &oidcVerifier{} }

// SetIssuer makes STS and the Pod Identity agent accept only tokens whose
// "iss" claim is issuer (e.g. the cluster's service-account-issuer). By
// default any issuer is accepted, as long as the signature verifies.
func (s *Server) SetIssuer(issuer string) {
	s.oidc.mu.Lock()
	defer s.oidc.mu.Unlock()
	s.oidc.issuer = issuer
}

// SetJWKS sets the keys (a JSON Web Key Set, RFC 7517) that token
// signatures are verified with. RSA and P-256 EC keys are supported; keys
// for other purposes or curves are ignored. Keys fetched from a JWKS URL are
// used as well.
func (s *Server) SetJWKS(jwksJSON []byte) error {
	keys, err := parseJWKS(jwksJSON)
	if err != nil {
		return err
	}
	s.oidc.mu.Lock()
	defer s.oidc.mu.Unlock()
	s.oidc.static, s.oidc.haveStatic = keys, true
	return nil
}

// SetJWKSURL makes the server fetch verification keys from url, e.g.
// https://<apiserver>/openid/v1/jwks, sending bearerToken (if non-empty) as
// "Authorization: Bearer". Keys are fetched when first needed and again
// whenever a token names a key id the server does not know, so key rotation
// works as with AWS. httpClient may be nil (then a default client is used);
// pass one that trusts the apiserver's CA, or skips verification, for
// self-signed certificates.
//
// A fetch failure is reported to callers as the identity provider being
// unreachable (STS IDPCommunicationError).
func (s *Server) SetJWKSURL(url, bearerToken string, httpClient *http.Client) {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: jwksFetchTimeout}
	}
	s.oidc.mu.Lock()
	defer s.oidc.mu.Unlock()
	s.oidc.remote = &jwksSource{url: url, bearer: bearerToken, client: httpClient}
	s.oidc.fetched = nil
}

// expectedIssuer returns the configured issuer ("" for any) and whether any
// keys are configured at all; without keys there is no OIDC provider.
func (v *oidcVerifier) expectedIssuer() (issuer string, configured bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.issuer, v.haveStatic || v.remote != nil
}

// keysFor returns the keys that may have signed a token with this kid and
// alg, refetching the JWKS URL once if none is known.
func (v *oidcVerifier) keysFor(ctx context.Context, kid, alg string) ([]crypto.PublicKey, *tokenError) {
	keys, src, gen := v.candidates(kid, alg)
	if len(keys) == 0 && src != nil {
		if err := v.refresh(ctx, src, gen); err != nil {
			return nil, &tokenError{tokKeysUnavailable, err.Error()}
		}
		keys, _, _ = v.candidates(kid, alg)
	}
	if len(keys) == 0 {
		return nil, &tokenError{tokUnknownKey, "no key with kid " + kid}
	}
	return keys, nil
}

func (v *oidcVerifier) candidates(kid, alg string) (keys []crypto.PublicKey, src *jwksSource, gen uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, set := range [][]jwk{v.static, v.fetched} {
		for _, k := range set {
			if (kid == "" || k.kid == kid) && (k.alg == "" || k.alg == alg) && keyMatchesAlg(k.key, alg) {
				keys = append(keys, k.key)
			}
		}
	}
	return keys, v.remote, v.gen
}

// refresh fetches the JWKS unless another fetch completed since the caller
// looked (seen), in which case the caller just looks again.
func (v *oidcVerifier) refresh(ctx context.Context, src *jwksSource, seen uint64) error {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	v.mu.Lock()
	stale := v.gen != seen || v.remote != src
	v.mu.Unlock()
	if stale {
		return nil
	}
	keys, err := src.fetch(ctx)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.remote == src { // not replaced by SetJWKSURL meanwhile
		v.fetched = keys
		v.gen++
	}
	return nil
}

func (src *jwksSource) fetch(ctx context.Context) ([]jwk, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url, nil)
	if err != nil {
		return nil, err
	}
	// kube-apiserver serves /openid/v1/jwks only as application/jwk-set+json
	// (406 for plain application/json).
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if src.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+src.bearer)
	}
	resp, err := src.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS from %s: HTTP %d", src.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	return parseJWKS(body)
}

// jwkJSON is one JSON Web Key (RFC 7517/7518), as served by Kubernetes.
type jwkJSON struct {
	Kty string `json:"kty"`
	Use string `json:"use,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

type jwkSet struct {
	Keys []jwkJSON `json:"keys"`
}

func parseJWKS(b []byte) ([]jwk, error) {
	var set jwkSet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("fakeaws: parse JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New(`fakeaws: parse JWKS: no "keys" member`)
	}
	var keys []jwk
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			return nil, fmt.Errorf("fakeaws: parse JWKS: key %d (kid %q): %w", i, k.Kid, err)
		}
		if pub != nil {
			keys = append(keys, jwk{kid: k.Kid, alg: k.Alg, key: pub})
		}
	}
	return keys, nil
}

// publicKey decodes the key; it returns nil, nil for key types the fake does
// not verify with.
func (k *jwkJSON) publicKey() (crypto.PublicKey, error) {
	b64 := base64.RawURLEncoding
	switch k.Kty {
	case "RSA":
		n, err := b64.DecodeString(k.N)
		if err != nil || len(n) == 0 {
			return nil, errors.New("bad RSA modulus")
		}
		e, err := b64.DecodeString(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA exponent")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		if k.Crv != "P-256" {
			return nil, nil
		}
		x, errX := b64.DecodeString(k.X)
		y, errY := b64.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("bad P-256 coordinates")
		}
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	}
	return nil, nil
}

// jwkOf encodes a public key as a JWK.
func jwkOf(pub crypto.PublicKey, kid string) (jwkJSON, error) {
	b64 := base64.RawURLEncoding
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return jwkJSON{Kty: "RSA", Use: "sig", Kid: kid, Alg: "RS256",
			N: b64.EncodeToString(k.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return jwkJSON{}, errors.New("only P-256 EC keys are supported")
		}
		raw, err := k.Bytes() // 0x04 || X || Y
		if err != nil {
			return jwkJSON{}, err
		}
		return jwkJSON{Kty: "EC", Use: "sig", Kid: kid, Alg: "ES256", Crv: "P-256",
			X: b64.EncodeToString(raw[1:33]), Y: b64.EncodeToString(raw[33:])}, nil
	}
	return jwkJSON{}, fmt.Errorf("unsupported key type %T", pub)
}

// logTokenRejection says why a token was refused when the reason is the
// fake's own trouble (the JWKS URL could not be fetched): AWS's error text
// does not say, and that is what a test author needs to know. The detail
// names the URL and the HTTP failure, never the token.
func (s *Server) logTokenRejection(e *tokenError) {
	if s.logger != nil && e.kind == tokKeysUnavailable {
		s.logger.Warn("cannot fetch the JWKS to verify a token", "error", e.detail)
	}
}
