package cli

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/pflag"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/kube"
)

// identityFlags configure workload identity, the same for `serve` and
// `sync`: both resolve identities with the same auth code.
type identityFlags struct {
	stsAudience   string
	agentIPv4URL  string
	agentIPv6URL  string
	agentTimeout  time.Duration
	agentAttempts int
	saCacheTTL    time.Duration
	refreshMargin time.Duration
	jwksURL       string
	issuers       []string
	sessionScope  string
}

func (f *identityFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.stsAudience, "sts-audience", auth.AudienceSTS, "audience of the ServiceAccount token exchanged with STS for IRSA")
	fs.StringVar(&f.agentIPv4URL, "pod-identity-agent-ipv4-url", auth.DefaultPodIdentityIPv4URL, "EKS Pod Identity agent, IPv4")
	fs.StringVar(&f.agentIPv6URL, "pod-identity-agent-ipv6-url", auth.DefaultPodIdentityIPv6URL, "EKS Pod Identity agent, IPv6")
	fs.DurationVar(&f.agentTimeout, "pod-identity-timeout", 2*time.Second, "timeout of each request to the Pod Identity agent")
	fs.IntVar(&f.agentAttempts, "pod-identity-attempts", 3, "rounds of requests over the agent's addresses before giving up")
	fs.DurationVar(&f.saCacheTTL, "serviceaccount-cache-ttl", 2*time.Minute, "how long a ServiceAccount's IRSA role annotation is reused before it is read again")
	fs.DurationVar(&f.refreshMargin, "credential-refresh-margin", 5*time.Minute, "credentials are reused until this long before they expire")
	fs.StringVar(&f.sessionScope, "sts-session-scope", string(auth.SessionPerPod), "what the STS sessions coffer opens name: pod (coffer-<namespace>.<pod>; one STS call per pod) or serviceaccount (coffer-<namespace>@sa.<name>; the pods of a ServiceAccount share credentials, one STS call for replicas starting together; CloudTrail then names the ServiceAccount, not the pod). EKS Pod Identity sessions always name the pod")
	fs.StringVar(&f.jwksURL, "service-account-jwks-url", "", "where ServiceAccount tokens' signing keys are read (a JSON Web Key Set); default: the Kubernetes API's /openid/v1/jwks")
	fs.StringArrayVar(&f.issuers, "service-account-issuer", nil, "an issuer (iss) whose ServiceAccount tokens coffer accepts; repeat it to name each of the kube-apiserver's --service-account-issuer values (while migrating issuers). Default: the one the Kubernetes API names at /.well-known/openid-configuration, read with the keys")
}

func (f *identityFlags) validate() []error {
	var errs []error
	if f.agentTimeout <= 0 || f.agentAttempts <= 0 {
		errs = append(errs, errors.New("--pod-identity-timeout and --pod-identity-attempts must be positive"))
	}
	if f.refreshMargin < 0 || f.saCacheTTL <= 0 {
		errs = append(errs, errors.New("--credential-refresh-margin must not be negative and --serviceaccount-cache-ttl must be positive"))
	}
	if _, err := auth.ParseSessionScope(f.sessionScope); err != nil {
		errs = append(errs, fmt.Errorf("--sts-session-scope: %w", err))
	}
	for _, iss := range f.issuers {
		if iss == "" || len(iss) > 2048 {
			errs = append(errs, fmt.Errorf("--service-account-issuer %q must be a non-empty issuer of at most 2048 bytes (the kube-apiserver's --service-account-issuer)", iss))
		}
	}
	if f.jwksURL != "" {
		if u, err := url.Parse(f.jwksURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--service-account-jwks-url %q is not an http(s) URL", f.jwksURL))
		}
	}
	return errs
}

// resolver builds the identity resolver these flags describe.
func (f *identityFlags) resolver(awsCfg aws.Config, client *kube.Client, onFetch func(mode string, err error)) *auth.Resolver {
	keys := auth.APIServerKeys(client.RESTClient())
	if f.jwksURL != "" {
		keys = auth.URLKeys(&http.Client{Timeout: 10 * time.Second}, f.jwksURL)
	}
	return auth.NewResolver(auth.ResolverOptions{
		AWS:               awsCfg,
		Kubernetes:        client,
		Audience:          f.stsAudience,
		Verifier:          auth.NewVerifier(auth.VerifierOptions{Keys: keys, Issuers: f.issuers, Discover: auth.APIServerIssuer(client.RESTClient())}),
		PodIdentity:       &auth.PodIdentityAgent{IPv4URL: f.agentIPv4URL, IPv6URL: f.agentIPv6URL, Timeout: f.agentTimeout, Attempts: f.agentAttempts},
		ServiceAccountTTL: f.saCacheTTL,
		RefreshMargin:     f.refreshMargin,
		OnCredentialFetch: onFetch,
		SessionScope:      auth.SessionScope(f.sessionScope),
	})
}
