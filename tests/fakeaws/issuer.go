package fakeaws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// Issuer mints tokens shaped like Kubernetes ServiceAccount tokens (as the
// kubelet projects them for IRSA and EKS Pod Identity), for tests. Give the
// server its keys with SetJWKS(issuer.JWKS()) and, optionally,
// SetIssuer(issuer.URL()).
//
// An Issuer is immutable and safe for concurrent use.
type Issuer struct {
	url string
	key crypto.Signer // *rsa.PrivateKey or P-256 *ecdsa.PrivateKey
	kid string
	alg string
}

// NewIssuer returns an issuer with a fresh 2048-bit RSA key (RS256, like a
// default kube-apiserver).
func NewIssuer(issuerURL string) (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return NewIssuerWithKey(issuerURL, key)
}

// NewIssuerWithKey returns an issuer signing with key: an *rsa.PrivateKey
// (RS256) or a P-256 *ecdsa.PrivateKey (ES256). Generating a P-256 key is
// much cheaper than an RSA one, which adds up in tests that need several
// issuers.
func NewIssuerWithKey(issuerURL string, key crypto.Signer) (*Issuer, error) {
	var alg string
	switch k := key.(type) {
	case *rsa.PrivateKey:
		alg = "RS256"
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("fakeaws: issuer keys must be RSA or P-256 ECDSA")
		}
		alg = "ES256"
	default:
		return nil, fmt.Errorf("fakeaws: unsupported issuer key type %T", key)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	// The kube-apiserver's key id: the base64url SHA-256 of the DER public
	// key.
	sum := sha256.Sum256(der)
	return &Issuer{url: issuerURL, key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:]), alg: alg}, nil
}

// URL is the issuer ("iss") of the tokens.
func (i *Issuer) URL() string { return i.url }

// KeyID is the "kid" of the signing key.
func (i *Issuer) KeyID() string { return i.kid }

// JWKS returns the public key as a JSON Web Key Set, as a kube-apiserver
// serves it at /openid/v1/jwks.
func (i *Issuer) JWKS() []byte {
	k, err := jwkOf(i.key.Public(), i.kid)
	if err != nil {
		panic(err) // the key type was checked by NewIssuerWithKey
	}
	b, _ := json.Marshal(jwkSet{Keys: []jwkJSON{k}})
	return b
}

// Token returns a token for sub ("system:serviceaccount:<ns>:<name>") valid
// for ttl from now; a negative ttl gives an already expired token.
func (i *Issuer) Token(sub string, audiences []string, ttl time.Duration) string {
	now := time.Now()
	return i.TokenWithClaims(TokenClaims{Subject: sub, Audiences: audiences, IssuedAt: now, Expiry: now.Add(ttl)})
}

// TokenClaims describes a token to mint. Zero fields get the defaults of a
// Kubernetes token, so negative tests set only what they break.
type TokenClaims struct {
	Issuer    string // default: the Issuer's URL
	Subject   string
	Audiences []string
	IssuedAt  time.Time // default: now
	NotBefore time.Time // default: IssuedAt
	Expiry    time.Time // default: IssuedAt + 1h

	// The "kubernetes.io" claims; Namespace and ServiceAccount default to
	// those of a "system:serviceaccount:<ns>:<name>" Subject, PodName to
	// "<ServiceAccount>-pod".
	Namespace      string
	ServiceAccount string
	PodName        string
	// PodUID defaults to a random uid.
	PodUID string
	// Unbound leaves out the pod claim, as in a token from the
	// TokenRequest API bound to no pod.
	Unbound bool

	// KeyID overrides the header's "kid", e.g. to name another issuer's
	// key (a forged signature) or a key the server never saw.
	KeyID string
	// Extra claims are merged into the payload last; a nil value removes a
	// claim (e.g. "exp").
	Extra map[string]any
}

// TokenWithClaims returns a token with exactly the given claims.
func (i *Issuer) TokenWithClaims(c TokenClaims) string {
	if c.Issuer == "" {
		c.Issuer = i.url
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.NotBefore.IsZero() {
		c.NotBefore = c.IssuedAt
	}
	if c.Expiry.IsZero() {
		c.Expiry = c.IssuedAt.Add(time.Hour)
	}
	if ns, sa, ok := serviceAccountFromSubject(c.Subject); ok {
		if c.Namespace == "" {
			c.Namespace = ns
		}
		if c.ServiceAccount == "" {
			c.ServiceAccount = sa
		}
	}
	if c.PodName == "" && c.ServiceAccount != "" {
		c.PodName = c.ServiceAccount + "-pod"
	}
	if c.KeyID == "" {
		c.KeyID = i.kid
	}
	if c.PodUID == "" {
		c.PodUID = newUUID()
	}
	k8s := map[string]any{
		"namespace":      c.Namespace,
		"pod":            map[string]string{"name": c.PodName, "uid": c.PodUID},
		"serviceaccount": map[string]string{"name": c.ServiceAccount, "uid": newUUID()},
	}
	if c.Unbound {
		delete(k8s, "pod")
	}

	payload := map[string]any{
		"iss":           c.Issuer,
		"sub":           c.Subject,
		"aud":           c.Audiences,
		"iat":           c.IssuedAt.Unix(),
		"nbf":           c.NotBefore.Unix(),
		"exp":           c.Expiry.Unix(),
		"jti":           newUUID(),
		"kubernetes.io": k8s,
	}
	maps.Copy(payload, c.Extra)
	maps.DeleteFunc(payload, func(_ string, v any) bool { return v == nil })

	header, _ := json.Marshal(map[string]string{"alg": i.alg, "kid": c.KeyID, "typ": "JWT"})
	body, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("fakeaws: marshal token claims: %v", err)) // an unmarshalable Extra value
	}
	b64 := base64.RawURLEncoding
	signed := b64.EncodeToString(header) + "." + b64.EncodeToString(body)
	return signed + "." + b64.EncodeToString(i.sign([]byte(signed)))
}

func (i *Issuer) sign(data []byte) []byte {
	h := sha256.Sum256(data)
	switch k := i.key.(type) {
	case *rsa.PrivateKey:
		sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, h[:])
		if err != nil {
			panic(fmt.Sprintf("fakeaws: sign token: %v", err))
		}
		return sig
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
		if err != nil {
			panic(fmt.Sprintf("fakeaws: sign token: %v", err))
		}
		// JWS wants fixed-width R || S rather than ASN.1 DER.
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig
	}
	panic("unreachable: key type checked by NewIssuerWithKey")
}
