package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/flight"
)

// KeySource reads the cluster's ServiceAccount issuer keys: the JSON Web
// Key Set the kube-apiserver serves at /openid/v1/jwks.
type KeySource func(ctx context.Context) ([]byte, error)

// maxJWKSBytes bounds a key set document: a cluster has a handful of keys.
const maxJWKSBytes = 1 << 20

// IssuerSource reads the cluster's ServiceAccount issuer: the "issuer" of
// the OpenID discovery document the kube-apiserver serves at
// /.well-known/openid-configuration (its first --service-account-issuer,
// the one it signs new tokens with).
type IssuerSource func(ctx context.Context) (string, error)

// DiscoveryPath is where the kube-apiserver serves its OpenID discovery
// document.
const DiscoveryPath = "/.well-known/openid-configuration"

// maxIssuerBytes bounds an issuer URL (Kubernetes takes any URL; this is
// far beyond any real one).
const maxIssuerBytes = 2048

// APIServerIssuer reads the issuer from the Kubernetes API's discovery
// document, with the same credentials and permission as APIServerKeys.
func APIServerIssuer(client rest.Interface) IssuerSource {
	return func(ctx context.Context) (string, error) {
		body, err := client.Get().AbsPath(DiscoveryPath).Stream(ctx)
		if err != nil {
			return "", err
		}
		defer body.Close()
		raw, err := readBounded(body)
		if err != nil {
			return "", err
		}
		return parseIssuer(raw)
	}
}

// parseIssuer takes the issuer out of an OpenID discovery document.
func parseIssuer(raw []byte) (string, error) {
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Issuer == "" || len(doc.Issuer) > maxIssuerBytes {
		return "", fmt.Errorf("the discovery document names no issuer of at most %d bytes", maxIssuerBytes)
	}
	return doc.Issuer, nil
}

// JWKSPath is where the kube-apiserver serves its token-signing keys.
const JWKSPath = "/openid/v1/jwks"

// APIServerKeys reads the keys from the Kubernetes API (client-go's REST
// client of the discovery API, so coffer's own credentials and TLS
// settings apply). coffer needs get on the non-resource URL /openid/v1/jwks,
// which Kubernetes grants every ServiceAccount by default
// (system:service-account-issuer-discovery).
func APIServerKeys(client rest.Interface) KeySource {
	return func(ctx context.Context) ([]byte, error) {
		body, err := client.Get().AbsPath(JWKSPath).Stream(ctx)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		return readBounded(body)
	}
}

// URLKeys reads the keys from url (the OIDC issuer's jwks_uri, e.g. an EKS
// cluster's public https://oidc.eks.<region>.amazonaws.com/id/<id>/keys).
func URLKeys(client *http.Client, url string) KeySource {
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP %d from %s", resp.StatusCode, url)
		}
		return readBounded(resp.Body)
	}
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("the key set is over %d bytes", maxJWKSBytes)
	}
	return b, nil
}

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	Keys KeySource
	// MinRefresh is the least time between two reads of the keys, however
	// many tokens name a key (or an issuer) coffer does not know, and
	// whether or not the keys ever loaded (default 30s): forged tokens
	// cannot turn into a stream of requests to the apiserver.
	MinRefresh time.Duration
	// MaxAge: keys older than this are read again on the next token, so a
	// key the cluster retired stops verifying (default 1h).
	MaxAge time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// Issuers are the issuers ("iss") whose tokens are accepted: all of
	// the kube-apiserver's --service-account-issuer values. When empty,
	// Discover reads the one the cluster signs with, along with the keys.
	// With neither, every token is refused.
	Issuers  []string
	Discover IssuerSource
	// Clock is the time source of token expiry and key refreshes (nil: the
	// real clock).
	Clock clock.PassiveClock
}

// Verifier checks ServiceAccount tokens locally against the cluster's
// issuer keys, read once and kept: at steady state verifying a token costs
// no request to Kubernetes or AWS.
type Verifier struct {
	keys                       KeySource
	issuers                    []string
	discover                   IssuerSource
	minRefresh, maxAge, leeway time.Duration
	clock                      clock.PassiveClock

	mu      sync.Mutex
	state   *trust    // the last successful read; nil before the first
	tried   time.Time // the last read's start
	lastErr error     // the last read's failure
	flights flight.Group
}

// NewVerifier returns a Verifier reading keys from o.Keys.
func NewVerifier(o VerifierOptions) *Verifier {
	if o.MinRefresh <= 0 {
		o.MinRefresh = 30 * time.Second
	}
	if o.MaxAge <= 0 {
		o.MaxAge = time.Hour
	}
	if o.Leeway <= 0 {
		o.Leeway = 30 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return &Verifier{keys: o.Keys, issuers: slices.Clone(o.Issuers), discover: o.Discover, minRefresh: o.MinRefresh, maxAge: o.MaxAge, leeway: o.Leeway, clock: o.Clock}
}

// maxTokenBytes bounds a token before it is parsed; Kubernetes tokens are
// about 1 KiB.
const maxTokenBytes = 16 << 10

// maxKeys bounds the keys kept from a key set.
const maxKeys = 64

// serviceAccountClaims are the claims of a Kubernetes ServiceAccount token
// (TokenRequest API) that coffer checks.
type serviceAccountClaims struct {
	jwt.Claims
	Kubernetes *struct {
		Namespace      string     `json:"namespace"`
		Pod            *objectRef `json:"pod"`
		ServiceAccount *objectRef `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

type objectRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// unauthenticated is the error of a token coffer refuses. It never holds
// the token.
func unauthenticated(format string, args ...any) error {
	return &Error{Reason: ReasonUnauthenticated, Msg: fmt.Sprintf(format, args...) + "; the mount is refused"}
}

// verify checks that tok is a ServiceAccount token issued by one of the
// cluster's issuers and signed with its keys, for audience, current, and
// issued to the workload req names: its namespace and ServiceAccount and,
// when the token is bound to a pod (as kubelet's always are), that pod's
// name and uid. podBound says whether the token names a pod.
func (v *Verifier) verify(ctx context.Context, tok, audience string, req Request) (podBound bool, err error) {
	if len(tok) > maxTokenBytes {
		return false, unauthenticated("the ServiceAccount token for audience %q is over %d bytes", audience, maxTokenBytes)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(parsed.Headers) != 1 {
		return false, unauthenticated("the ServiceAccount token for audience %q is not a JWT signed with RS256 or ES256", audience)
	}
	// The issuer is checked before the signature, on the claims as sent:
	// a token from another issuer is refused without a key lookup, so
	// tokens minted anywhere else cost nothing. Acceptance still rests on
	// the signature, and the issuer is checked again on the signed claims.
	var unverified jwt.Claims
	if err := parsed.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return false, unauthenticated("the ServiceAccount token for audience %q has claims that are not a JSON object", audience)
	}
	if err := v.checkIssuer(ctx, unverified.Issuer, audience); err != nil {
		return false, err
	}
	kid := parsed.Headers[0].KeyID
	st, err := v.trusted(ctx, func(st *trust) bool { return find(st.keys, kid) != nil })
	if err != nil {
		return false, err
	}
	key := find(st.keys, kid)
	if key == nil {
		return false, unauthenticated("the ServiceAccount token is signed with a key this cluster's ServiceAccount issuer does not have")
	}
	var c serviceAccountClaims
	if err := parsed.Claims(key, &c); err != nil {
		return false, unauthenticated("the ServiceAccount token for audience %q is not signed by this cluster's ServiceAccount issuer", audience)
	}
	if !st.issuer(c.Issuer) {
		return false, unauthenticated("the ServiceAccount token for audience %q was not issued by this cluster's ServiceAccount issuer", audience)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{AnyAudience: jwt.Audience{audience}, Time: v.clock.Now()}, v.leeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return false, unauthenticated("the ServiceAccount token for audience %q has expired; kubelet should have refreshed it (is the node's clock right?)", audience)
		case errors.Is(err, jwt.ErrInvalidAudience):
			return false, unauthenticated("the ServiceAccount token sent for audience %q was issued for another audience", audience)
		default:
			return false, unauthenticated("the ServiceAccount token for audience %q is not valid yet (is the node's clock right?)", audience)
		}
	}
	if c.Expiry == nil {
		return false, unauthenticated("the ServiceAccount token for audience %q never expires: only TokenRequest tokens (as kubelet sends) are accepted", audience)
	}
	want := "system:serviceaccount:" + req.Namespace + ":" + req.ServiceAccount
	if c.Subject != want {
		return false, unauthenticated("the ServiceAccount token is for %q but the mount's attributes say the pod runs as %q", c.Subject, want)
	}
	k := c.Kubernetes
	if k == nil || k.Namespace != req.Namespace || k.ServiceAccount == nil || k.ServiceAccount.Name != req.ServiceAccount {
		return false, unauthenticated("the ServiceAccount token for %q lacks matching kubernetes.io namespace and serviceaccount claims", want)
	}
	// A token bound to a pod proves which pod mounts: the attributes must
	// name it, or a pod could pass itself off as another (the session
	// name in CloudTrail names the pod). A token bound to no pod comes
	// from the TokenRequest API directly (coffer-controller sync, the Secrets Store
	// sync controller): it proves only the ServiceAccount, so its session
	// names the ServiceAccount, never a pod (Resolver.session).
	if p := k.Pod; p != nil && (p.Name != req.PodName || p.UID != req.PodUID) {
		return false, unauthenticated("the ServiceAccount token was issued to pod %s/%s (uid %s), but the mount's attributes name pod %q (uid %q): the csi.storage.k8s.io/pod.* attributes must come from kubelet (CSIDriver podInfoOnMount: true)",
			req.Namespace, p.Name, p.UID, req.PodName, req.PodUID)
	}
	return k.Pod != nil, nil
}

// checkIssuer refuses a token whose issuer is none of the cluster's. With
// configured issuers it reads nothing; a discovered issuer is read with the
// keys (and read again, as they are, at most once per MinRefresh, when a
// token names another: the cluster may have moved to a new issuer).
func (v *Verifier) checkIssuer(ctx context.Context, iss, audience string) error {
	issuers := v.issuers
	if len(issuers) == 0 {
		st, err := v.trusted(ctx, func(st *trust) bool { return st.issuer(iss) })
		if err != nil {
			return err
		}
		issuers = st.issuers
	}
	if iss == "" || !slices.Contains(issuers, iss) {
		return unauthenticated("the ServiceAccount token for audience %q was issued by %s, not by this cluster's ServiceAccount issuer (%s); if the cluster has several (kube-apiserver --service-account-issuer), name each with coffer's --service-account-issuer",
			audience, quoteClaim(iss), strings.Join(issuers, ", "))
	}
	return nil
}

// quoteClaim quotes a claim of an unverified token for a message, cut
// short: anyone can write it, at any length.
func quoteClaim(s string) string {
	const keep = 100
	if len(s) > keep {
		return strconv.Quote(s[:keep]) + "..."
	}
	return strconv.Quote(s)
}

// trust is what tokens are checked against, read together: the issuer's
// keys and, unless configured, the issuer itself.
type trust struct {
	keys    *jose.JSONWebKeySet
	issuers []string
	fetched time.Time
}

func (t *trust) issuer(iss string) bool {
	return iss != "" && slices.Contains(t.issuers, iss)
}

// trusted returns what tokens are checked against, reading it again when
// it lacks what ok asks for (a key id, an issuer) or is older than MaxAge.
// Reads happen at most once per MinRefresh, whether or not any ever
// succeeded, and concurrent callers share one: however many tokens arrive,
// forged or not, before the first read or after, they cost at most one
// read per MinRefresh. While nothing was ever read, callers get the last
// read's failure until the next read is due. After a failed read, the
// previous trust stays in use (it was the cluster's a moment ago).
func (v *Verifier) trusted(ctx context.Context, ok func(*trust) bool) (*trust, error) {
	v.mu.Lock()
	st := v.state
	v.mu.Unlock()
	if st != nil && ok(st) && v.clock.Now().Sub(st.fetched) < v.maxAge {
		return st, nil
	}
	return flight.Do(ctx, &v.flights, "trust", "waiting for the cluster's ServiceAccount issuer keys", 10*time.Second, v.refresh)
}

// refresh reads the key set (and the issuer, when discovered), unless a
// read started less than MinRefresh ago: then it returns what that read
// left. The check runs inside the shared flight, so callers that raced
// past trusted's look at the state still read at most once per MinRefresh.
func (v *Verifier) refresh(ctx context.Context) (*trust, error) {
	v.mu.Lock()
	now := v.clock.Now()
	if !v.tried.IsZero() && now.Sub(v.tried) < v.minRefresh {
		st, err := v.state, v.lastErr
		v.mu.Unlock()
		if st != nil {
			return st, nil
		}
		if err == nil { // the last read ended without an answer (a panic)
			err = &Error{Reason: ReasonUnreachable, Msg: "coffer has not read the cluster's ServiceAccount issuer keys yet; it tries again shortly"}
		}
		return nil, err
	}
	v.tried = now
	v.mu.Unlock()
	st, err := v.read(ctx)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		v.lastErr = err
		if v.state != nil {
			return v.state, nil
		}
		return nil, err
	}
	v.state, v.lastErr = st, nil
	return st, nil
}

// read reads the key set and, unless issuers were configured, the issuer.
func (v *Verifier) read(ctx context.Context) (*trust, error) {
	if v.keys == nil {
		return nil, &Error{Reason: ReasonConfig, Msg: "coffer has no source of the cluster's ServiceAccount issuer keys, so it cannot verify tokens"}
	}
	issuers := v.issuers
	if len(issuers) == 0 {
		if v.discover == nil {
			return nil, &Error{Reason: ReasonConfig, Msg: "coffer knows no ServiceAccount issuer of this cluster, so it cannot verify tokens; set --service-account-issuer"}
		}
		iss, err := v.discover(ctx)
		if err != nil {
			return nil, &Error{Reason: ReasonUnreachable, Msg: "coffer could not read the cluster's ServiceAccount issuer (GET " + DiscoveryPath + "; coffer needs the ClusterRole system:service-account-issuer-discovery, bound by default to all ServiceAccounts, or --service-account-issuer)", Err: err}
		}
		issuers = []string{iss}
	}
	raw, err := v.keys(ctx)
	if err != nil {
		return nil, &Error{Reason: ReasonUnreachable, Msg: "coffer could not read the cluster's ServiceAccount issuer keys (GET " + JWKSPath + "; coffer needs the ClusterRole system:service-account-issuer-discovery, bound by default to all ServiceAccounts, or --service-account-jwks-url)", Err: err}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) == 0 {
		return nil, &Error{Reason: ReasonUnreachable, Msg: "the cluster's ServiceAccount issuer keys are not a JSON Web Key Set with keys"}
	}
	kept := set.Keys[:0]
	for _, k := range set.Keys {
		if len(kept) < maxKeys && k.Valid() && k.IsPublic() {
			kept = append(kept, k)
		}
	}
	set.Keys = kept
	return &trust{keys: &set, issuers: issuers, fetched: v.clock.Now()}, nil
}

func find(set *jose.JSONWebKeySet, kid string) *jose.JSONWebKey {
	if set == nil {
		return nil
	}
	for i := range set.Keys {
		if set.Keys[i].KeyID == kid {
			return &set.Keys[i]
		}
	}
	return nil
}
