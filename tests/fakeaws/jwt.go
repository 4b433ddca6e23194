package fakeaws

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
)

// JWT verification for web identity (STS) and ServiceAccount (Pod Identity)
// tokens: only what Kubernetes issuers produce, compact JWS signed with
// RS256 or ES256.

// tokenErrKind classifies why a token was rejected; STS and the Pod
// Identity agent report each kind with their own error code.
type tokenErrKind int

const (
	tokMalformed       tokenErrKind = iota + 1
	tokUnknownIssuer                // no JWKS configured, or iss is not the configured issuer
	tokUnknownKey                   // no key with the token's kid, even after refetching
	tokBadSignature                 //
	tokExpired                      // exp not in the future
	tokNotYetValid                  // nbf in the future
	tokKeysUnavailable              // the JWKS URL could not be fetched
)

type tokenError struct {
	kind   tokenErrKind
	detail string
}

func (e *tokenError) Error() string { return e.detail }

// tokenClaims are the claims the fake looks at.
type tokenClaims struct {
	Issuer     string        `json:"iss"`
	Subject    string        `json:"sub"`
	Audience   audience      `json:"aud"`
	Expiry     *numericDate  `json:"exp"`
	NotBefore  *numericDate  `json:"nbf"`
	Kubernetes *k8sClaimsSet `json:"kubernetes.io"`
}

type k8sClaimsSet struct {
	Namespace string `json:"namespace"`
	Pod       *struct {
		Name string `json:"name"`
	} `json:"pod"`
}

// audience is "aud": a single string or an array of strings (RFC 7519).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = many
	return nil
}

// numericDate is a JWT time: seconds since the epoch, possibly fractional.
type numericDate struct{ time.Time }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return errors.New("invalid NumericDate")
	}
	sec, frac := math.Modf(f)
	d.Time = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// verifyToken checks a compact JWT's signature against the configured keys,
// then its issuer and validity window at now. It returns the claims
// whenever the signature is good, even if the token is expired, so callers
// can record whose token it was.
func (v *oidcVerifier) verifyToken(ctx context.Context, token string, now time.Time) (*tokenClaims, *tokenError) {
	malformed := func(detail string) (*tokenClaims, *tokenError) {
		return nil, &tokenError{tokMalformed, detail}
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return malformed("not a compact JWS")
	}
	var hdr jwtHeader
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return malformed("bad header: " + err.Error())
	}
	var claims tokenClaims
	if err := decodeSegment(parts[1], &claims); err != nil {
		return malformed("bad payload: " + err.Error())
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return malformed("bad signature encoding")
	}
	if hdr.Alg != "RS256" && hdr.Alg != "ES256" {
		// Also rejects "none" and HMAC algorithms, which a public-key
		// verifier must never accept.
		return malformed("unsupported alg " + hdr.Alg)
	}
	if want, configured := v.expectedIssuer(); !configured || (want != "" && claims.Issuer != want) {
		return nil, &tokenError{tokUnknownIssuer, claims.Issuer}
	}

	keys, terr := v.keysFor(ctx, hdr.Kid, hdr.Alg)
	if terr != nil {
		return nil, terr
	}
	signed := []byte(parts[0] + "." + parts[1])
	if !slices.ContainsFunc(keys, func(k crypto.PublicKey) bool { return verifyJWS(hdr.Alg, k, signed, sig) }) {
		return nil, &tokenError{tokBadSignature, "signature verification failed"}
	}

	if claims.Expiry == nil {
		// Kubernetes always sets exp; a token without one is not a
		// ServiceAccount token.
		return &claims, &tokenError{tokMalformed, "missing exp"}
	}
	if !now.Before(claims.Expiry.Time) {
		return &claims, &tokenError{tokExpired, "expired"}
	}
	if claims.NotBefore != nil && now.Before(claims.NotBefore.Time) {
		return &claims, &tokenError{tokNotYetValid, "not yet valid"}
	}
	return &claims, nil
}

func decodeSegment(seg string, v any) error {
	// Tolerate padding, which some encoders emit despite RFC 7515.
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	return dec.Decode(v)
}

// verifyJWS checks a JWS signature over signed with key.
func verifyJWS(alg string, key crypto.PublicKey, signed, sig []byte) bool {
	h := sha256.Sum256(signed)
	switch alg {
	case "RS256":
		k, ok := key.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig) == nil
	case "ES256":
		// JWS encodes an ECDSA signature as the fixed-width R || S, not
		// ASN.1 DER.
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k.Curve != elliptic.P256() || len(sig) != 64 {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k, h[:], r, s)
	}
	return false
}

// keyMatchesAlg reports whether a key can verify alg signatures.
func keyMatchesAlg(key crypto.PublicKey, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return alg == "RS256"
	case *ecdsa.PublicKey:
		return alg == "ES256" && k.Curve == elliptic.P256()
	}
	return false
}

// serviceAccountFromSubject splits "system:serviceaccount:<ns>:<name>".
func serviceAccountFromSubject(sub string) (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(sub, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	if !ok || namespace == "" || name == "" || strings.Contains(name, ":") {
		return "", "", false
	}
	return namespace, name, true
}
