package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/kube"
)

// ResolverOptions configure a Resolver.
type ResolverOptions struct {
	// AWS is the provider's base SDK configuration (endpoints, FIPS...).
	AWS aws.Config
	// Kubernetes reads ServiceAccounts (IRSA role annotations).
	Kubernetes kube.ServiceAccountsGetter
	// Audience of the IRSA token (default sts.amazonaws.com).
	Audience string
	// Verifier checks every ServiceAccount token before anything else
	// uses it; required (without one, every identity is refused).
	Verifier *Verifier
	// PodIdentity is the EKS Pod Identity agent client.
	PodIdentity *PodIdentityAgent
	// ServiceAccountTTL is how long a ServiceAccount's role is reused.
	ServiceAccountTTL time.Duration
	// RefreshMargin: credentials are not reused this close to expiry
	// (default 5m).
	RefreshMargin time.Duration
	// MaxCachedIdentities bounds the credential cache (default 10000).
	MaxCachedIdentities int
	// OnCredentialFetch, when set, is told about every credential fetch
	// (not cache hits): mode is irsa, pod_identity or assume_role.
	OnCredentialFetch func(mode string, err error)
	// SessionScope says what the STS sessions coffer opens name, and so
	// which mounts share credentials (default SessionPerPod).
	SessionScope SessionScope
	// Clock is the time source of the credential and role caches (nil: the
	// real clock).
	Clock clock.PassiveClock
}

// SessionScope is what an STS session that coffer names stands for.
type SessionScope string

const (
	// SessionPerPod names each session after the pod that mounted
	// (coffer-<namespace>.<pod>): CloudTrail attributes every call to a
	// pod, and every pod makes its own STS call.
	SessionPerPod SessionScope = "pod"
	// SessionPerServiceAccount names each session after the ServiceAccount
	// (coffer-<namespace>@sa.<name>): the pods of one ServiceAccount share
	// credentials (each pod's token is still verified first), so replicas
	// starting together cost one STS call, and CloudTrail names the
	// ServiceAccount, not the pod. EKS Pod Identity names its sessions
	// itself, after the pod, so its credentials stay per pod.
	SessionPerServiceAccount SessionScope = "serviceaccount"
)

// ParseSessionScope reads a --sts-session-scope value.
func ParseSessionScope(s string) (SessionScope, error) {
	switch scope := SessionScope(s); scope {
	case SessionPerPod, SessionPerServiceAccount:
		return scope, nil
	}
	return "", fmt.Errorf("%q is not a session scope: use %q or %q", s, SessionPerPod, SessionPerServiceAccount)
}

// Resolver resolves a pod's AWS identity: IRSA or EKS Pod Identity, then an
// optional role chain, reusing credentials per identity and pod until
// shortly before they expire.
type Resolver struct {
	audience    string
	verifier    *Verifier
	sts         stsClients
	roles       *RoleLookup
	podIdentity *PodIdentityAgent
	cache       *credentialCache
	// endpoint names the STS endpoint settings in identity keys, so
	// credentials obtained through one endpoint are never handed out for
	// another.
	endpoint string
	onFetch  func(mode string, err error)
	scope    SessionScope
}

// NewResolver returns a Resolver.
func NewResolver(o ResolverOptions) *Resolver {
	if o.Audience == "" {
		o.Audience = AudienceSTS
	}
	if o.RefreshMargin <= 0 {
		o.RefreshMargin = 5 * time.Minute
	}
	if o.MaxCachedIdentities <= 0 {
		o.MaxCachedIdentities = 10000
	}
	if o.PodIdentity == nil {
		o.PodIdentity = &PodIdentityAgent{}
	}
	var roles *RoleLookup
	if o.Kubernetes != nil {
		roles = newRoleLookup(o.Kubernetes, o.ServiceAccountTTL, o.Clock)
	}
	endpoint := fmt.Sprintf("endpoint=%s", aws.ToString(o.AWS.BaseEndpoint))
	return &Resolver{
		audience:    o.Audience,
		verifier:    o.Verifier,
		sts:         stsClients{base: o.AWS},
		roles:       roles,
		podIdentity: o.PodIdentity,
		cache:       newCredentialCache(o.RefreshMargin, o.MaxCachedIdentities, o.Clock),
		endpoint:    endpoint,
		onFetch:     o.OnCredentialFetch,
		scope:       o.SessionScope,
	}
}

// session names the STS session coffer opens for req, whose token was
// verified as tok. Credentials are reused only under the same name
// (credentialKey), so the name is true for every call made with them. A
// token bound to no pod proves only its ServiceAccount, so its session
// names the ServiceAccount, marked apart from every pod and from the
// serviceaccount scope: CloudTrail tells a sync controller from a pod.
func (r *Resolver) session(req Request, tok verified) string {
	switch {
	case !tok.podBound:
		return sessionName(sessionSync, req.Namespace, req.ServiceAccount)
	case r.scope == SessionPerServiceAccount:
		return sessionName(sessionServiceAccount, req.Namespace, req.ServiceAccount)
	}
	return sessionName(sessionPod, req.Namespace, req.PodName)
}

// Identity resolves the AWS identity of the workload behind req.
func (r *Resolver) Identity(ctx context.Context, req Request) (Identity, error) {
	if req.Namespace == "" || req.ServiceAccount == "" {
		return Identity{}, &Error{Reason: ReasonConfig, Msg: "the driver did not say which pod and ServiceAccount the mount is for (csi.storage.k8s.io/pod.namespace and serviceAccount.name are missing); is the CSIDriver's podInfoOnMount true?"}
	}
	if r.verifier == nil {
		return Identity{}, &Error{Reason: ReasonConfig, Msg: "coffer was built without a ServiceAccount token verifier, so it trusts no token"}
	}
	subject := "system:serviceaccount:" + req.Namespace + ":" + req.ServiceAccount
	var base Identity
	var tok verified
	var err error
	if req.UsePodIdentity {
		base, tok, err = r.podIdentityIdentity(ctx, req, subject)
	} else {
		base, tok, err = r.irsaIdentity(ctx, req, subject)
	}
	if err != nil || req.AssumeRoleARN == "" {
		return base, err
	}
	return r.chain(ctx, req, base, tok)
}

func (r *Resolver) irsaIdentity(ctx context.Context, req Request, subject string) (Identity, verified, error) {
	tok, err := r.verifier.token(ctx, req.Tokens, r.audience, req)
	if err != nil {
		return Identity{}, tok, err
	}
	if r.roles == nil {
		return Identity{}, tok, &Error{Reason: ReasonConfig, Msg: "IRSA needs the Kubernetes API to read ServiceAccount role annotations, and coffer runs without one; run it in the cluster or pass --kubeconfig"}
	}
	role, err := r.roles.Role(ctx, req.Namespace, req.ServiceAccount)
	if err != nil {
		return Identity{}, tok, err
	}
	key := strings.Join([]string{"irsa", req.Namespace, req.ServiceAccount, role, req.Region, r.endpoint}, "|")
	session := r.session(req, tok)
	credKey := credentialKey(key, session)
	creds, err := r.cache.get(ctx, credKey, func(ctx context.Context) (aws.Credentials, error) {
		creds, err := r.sts.assumeRoleWithWebIdentity(ctx, req.Region, role, session, tok.token, subject)
		r.observe("irsa", err)
		return creds, err
	})
	if err != nil {
		return Identity{}, tok, err
	}
	id := identity(key, credKey, role, creds)
	id.Roles = []string{role}
	return id, tok, nil
}

func (r *Resolver) podIdentityIdentity(ctx context.Context, req Request, subject string) (Identity, verified, error) {
	tok, err := r.verifier.token(ctx, req.Tokens, AudiencePodIdentity, req)
	if err != nil {
		return Identity{}, tok, err
	}
	// The role is whatever the EKS association of this ServiceAccount
	// says; the key names the ServiceAccount, which determines it. EKS
	// names the role session after the pod of the token, so credentials
	// are reused per pod, whatever the session scope (and a token bound to
	// no pod gets the ServiceAccount's own).
	key := strings.Join([]string{"podidentity", req.Namespace, req.ServiceAccount, req.Region, req.PreferredAddressType}, "|")
	session := sessionName(sessionPod, req.Namespace, req.PodName)
	if !tok.podBound {
		session = sessionName(sessionSync, req.Namespace, req.ServiceAccount)
	}
	credKey := credentialKey(key, session)
	creds, err := r.cache.get(ctx, credKey, func(ctx context.Context) (aws.Credentials, error) {
		creds, err := r.podIdentity.credentials(ctx, tok.token, req.PreferredAddressType, subject)
		r.observe("pod_identity", err)
		return creds, err
	})
	if err != nil {
		return Identity{}, tok, err
	}
	return identity(key, credKey, "EKS Pod Identity of "+subject, creds), tok, nil
}

// chain assumes req.AssumeRoleARN with the pod's own credentials. coffer
// never uses its own identity for this: the pod's role must be trusted.
func (r *Resolver) chain(ctx context.Context, req Request, base Identity, tok verified) (Identity, error) {
	key := base.Key + "|chain|" + req.AssumeRoleARN
	if req.AssumeRoleExternalID != "" {
		// External ids are not secret, but keys appear in debugging output;
		// a digest keeps them distinct without spelling them out.
		sum := sha256.Sum256([]byte(req.AssumeRoleExternalID))
		key += "|extid:" + hex.EncodeToString(sum[:8])
	}
	session := r.session(req, tok)
	credKey := credentialKey(key, session)
	creds, err := r.cache.get(ctx, credKey, func(ctx context.Context) (aws.Credentials, error) {
		creds, err := r.sts.assumeRole(ctx, req.Region, base.Credentials, base.Description, req.AssumeRoleARN, req.AssumeRoleExternalID, session)
		r.observe("assume_role", err)
		return creds, err
	})
	if err != nil {
		return Identity{}, err
	}
	id := identity(key, credKey, req.AssumeRoleARN+" via "+base.Description, creds)
	id.Roles = append(slices.Clone(base.Roles), req.AssumeRoleARN)
	return id, nil
}

// credentialKey keys credentials by identity and STS session name:
// credentials are reused only where the session name they carry, which
// CloudTrail shows for every call made with them, names the pod asking.
func credentialKey(key, session string) string {
	return key + sessionSep + session
}

const sessionSep = "|session="

// Invalidate drops the cached credentials of a credential key (and, for a
// chained role, of the pod's own identity it was obtained with), so the
// next request fetches new ones.
func (r *Resolver) Invalidate(credKey string) {
	r.cache.remove(credKey)
	if base, rest, chained := strings.Cut(credKey, "|chain|"); chained {
		if _, session, ok := strings.Cut(rest, sessionSep); ok {
			r.cache.remove(credentialKey(base, session))
		}
	}
}

func (r *Resolver) observe(mode string, err error) {
	if r.onFetch != nil {
		r.onFetch(mode, err)
	}
}

func identity(key, credKey, description string, creds aws.Credentials) Identity {
	return Identity{
		Key:           key,
		CredentialKey: credKey,
		Description:   description,
		Credentials:   credentials.StaticCredentialsProvider{Value: creds},
	}
}
