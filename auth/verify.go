package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"k8s.io/client-go/rest"

	"github.com/coffer-csi/coffer/internal/flight"
)

// KeySource reads the cluster's ServiceAccount issuer keys: the JSON Web
// Key Set the kube-apiserver serves at /openid/v1/jwks.
type KeySource func(ctx context.Context) ([]byte, error)

// maxJWKSBytes bounds a key set document: a cluster has a handful of keys.
const maxJWKSBytes = 1 << 20

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
	// many tokens name a key coffer does not know (default 30s): forged
	// tokens cannot turn into a stream of requests to the apiserver.
	MinRefresh time.Duration
	// MaxAge: keys older than this are read again on the next token, so a
	// key the cluster retired stops verifying (default 1h).
	MaxAge time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30s).
	Leeway time.Duration
}

// Verifier checks ServiceAccount tokens locally against the cluster's
// issuer keys, read once and kept: at steady state verifying a token costs
// no request to Kubernetes or AWS.
type Verifier struct {
	keys                       KeySource
	minRefresh, maxAge, leeway time.Duration
	now                        func() time.Time

	mu      sync.Mutex
	set     *jose.JSONWebKeySet
	fetched time.Time // last successful read
	tried   time.Time // last attempt
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
	return &Verifier{keys: o.Keys, minRefresh: o.MinRefresh, maxAge: o.MaxAge, leeway: o.Leeway, now: time.Now}
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

// verify checks that tok is a ServiceAccount token signed by the cluster's
// issuer, for audience, current, and issued to the workload req names:
// its namespace and ServiceAccount and, when the token is bound to a pod
// (as kubelet's always are), that pod's name and uid.
func (v *Verifier) verify(ctx context.Context, tok, audience string, req Request) error {
	if len(tok) > maxTokenBytes {
		return unauthenticated("the ServiceAccount token for audience %q is over %d bytes", audience, maxTokenBytes)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(parsed.Headers) != 1 {
		return unauthenticated("the ServiceAccount token for audience %q is not a JWT signed with RS256 or ES256", audience)
	}
	key, err := v.key(ctx, parsed.Headers[0].KeyID)
	if err != nil {
		return err
	}
	var c serviceAccountClaims
	if err := parsed.Claims(key, &c); err != nil {
		return unauthenticated("the ServiceAccount token for audience %q is not signed by this cluster's ServiceAccount issuer", audience)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{AnyAudience: jwt.Audience{audience}, Time: v.now()}, v.leeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return unauthenticated("the ServiceAccount token for audience %q has expired; kubelet should have refreshed it (is the node's clock right?)", audience)
		case errors.Is(err, jwt.ErrInvalidAudience):
			return unauthenticated("the ServiceAccount token sent for audience %q was issued for another audience", audience)
		default:
			return unauthenticated("the ServiceAccount token for audience %q is not valid yet (is the node's clock right?)", audience)
		}
	}
	if c.Expiry == nil {
		return unauthenticated("the ServiceAccount token for audience %q never expires: only TokenRequest tokens (as kubelet sends) are accepted", audience)
	}
	want := "system:serviceaccount:" + req.Namespace + ":" + req.ServiceAccount
	if c.Subject != want {
		return unauthenticated("the ServiceAccount token is for %q but the mount's attributes say the pod runs as %q", c.Subject, want)
	}
	k := c.Kubernetes
	if k == nil || k.Namespace != req.Namespace || k.ServiceAccount == nil || k.ServiceAccount.Name != req.ServiceAccount {
		return unauthenticated("the ServiceAccount token for %q lacks matching kubernetes.io namespace and serviceaccount claims", want)
	}
	// A token bound to a pod proves which pod mounts: the attributes must
	// name it, or a pod could pass itself off as another (the session
	// name in CloudTrail names the pod). A token bound to no pod comes
	// from the TokenRequest API directly (coffer sync, the Secrets Store
	// sync controller): it proves only the ServiceAccount, which anyone
	// holding it could present to AWS under any session name anyway.
	if p := k.Pod; p != nil && (p.Name != req.PodName || p.UID != req.PodUID) {
		return unauthenticated("the ServiceAccount token was issued to pod %s/%s (uid %s), but the mount's attributes name pod %q (uid %q): the csi.storage.k8s.io/pod.* attributes must come from kubelet (CSIDriver podInfoOnMount: true)",
			req.Namespace, p.Name, p.UID, req.PodName, req.PodUID)
	}
	return nil
}

// key returns the issuer's key kid, reading the key set when it is unknown
// or old, at most once per MinRefresh.
func (v *Verifier) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	v.mu.Lock()
	set, fetched, tried := v.set, v.fetched, v.tried
	v.mu.Unlock()
	now := v.now()
	if k := find(set, kid); k != nil && now.Sub(fetched) < v.maxAge {
		return k, nil
	}
	if set == nil || now.Sub(tried) >= v.minRefresh {
		fresh, err := flight.Do(ctx, &v.flights, "jwks", "waiting for the cluster's ServiceAccount issuer keys", 10*time.Second, v.refresh)
		switch {
		case err == nil:
			set = fresh
		case set == nil:
			return nil, err
		}
	}
	if k := find(set, kid); k != nil {
		return k, nil
	}
	return nil, unauthenticated("the ServiceAccount token is signed with a key this cluster's ServiceAccount issuer does not have")
}

// refresh reads the key set. After a failed read, key keeps using the
// previous keys (they were the cluster's a moment ago) and reports the
// failure only when there are none.
func (v *Verifier) refresh(ctx context.Context) (*jose.JSONWebKeySet, error) {
	v.mu.Lock()
	v.tried = v.now()
	v.mu.Unlock()
	if v.keys == nil {
		return nil, &Error{Reason: ReasonConfig, Msg: "coffer has no source of the cluster's ServiceAccount issuer keys, so it cannot verify tokens"}
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
	v.mu.Lock()
	v.set, v.fetched = &set, v.now()
	v.mu.Unlock()
	return &set, nil
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
