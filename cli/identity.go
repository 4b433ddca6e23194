package cli

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/spf13/pflag"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/wiring"
)

// registerIdentity registers the workload identity flags, the same for
// `serve` and `sync`: both resolve identities with the same auth code.
func registerIdentity(fs *pflag.FlagSet, f *wiring.Identity, d wiring.Identity) {
	fs.StringVar(&f.STSAudience, "sts-audience", d.STSAudience, "audience of the ServiceAccount token exchanged with STS for IRSA")
	fs.StringVar(&f.PodIdentityIPv4URL, "pod-identity-agent-ipv4-url", d.PodIdentityIPv4URL, "EKS Pod Identity agent, IPv4")
	fs.StringVar(&f.PodIdentityIPv6URL, "pod-identity-agent-ipv6-url", d.PodIdentityIPv6URL, "EKS Pod Identity agent, IPv6")
	fs.DurationVar(&f.PodIdentityTimeout, "pod-identity-timeout", d.PodIdentityTimeout, "timeout of each request to the Pod Identity agent")
	fs.IntVar(&f.PodIdentityAttempts, "pod-identity-attempts", d.PodIdentityAttempts, "rounds of requests over the agent's addresses before giving up")
	fs.DurationVar(&f.ServiceAccountTTL, "serviceaccount-cache-ttl", d.ServiceAccountTTL, "how long a ServiceAccount's IRSA role annotation is reused before it is read again")
	fs.DurationVar(&f.RefreshMargin, "credential-refresh-margin", d.RefreshMargin, "credentials are reused until this long before they expire")
	fs.StringVar((*string)(&f.SessionScope), "sts-session-scope", string(d.SessionScope), "what the STS sessions coffer opens name: pod (coffer-<namespace>.<pod>; one STS call per pod) or serviceaccount (coffer-<namespace>@sa.<name>; the pods of a ServiceAccount share credentials, one STS call for replicas starting together; CloudTrail then names the ServiceAccount, not the pod). EKS Pod Identity sessions always name the pod")
	fs.StringVar(&f.JWKSURL, "service-account-jwks-url", d.JWKSURL, "where ServiceAccount tokens' signing keys are read (a JSON Web Key Set); default: the Kubernetes API's /openid/v1/jwks")
	fs.StringArrayVar(&f.Issuers, "service-account-issuer", d.Issuers, "an issuer (iss) whose ServiceAccount tokens coffer accepts; repeat it to name each of the kube-apiserver's --service-account-issuer values (while migrating issuers). Default: the one the Kubernetes API names at /.well-known/openid-configuration, read with the keys")
}

func validateIdentity(f wiring.Identity) []error {
	var errs []error
	if f.PodIdentityTimeout <= 0 || f.PodIdentityAttempts <= 0 {
		errs = append(errs, errors.New("--pod-identity-timeout and --pod-identity-attempts must be positive"))
	}
	if f.RefreshMargin < 0 || f.ServiceAccountTTL <= 0 {
		errs = append(errs, errors.New("--credential-refresh-margin must not be negative and --serviceaccount-cache-ttl must be positive"))
	}
	if _, err := auth.ParseSessionScope(string(f.SessionScope)); err != nil {
		errs = append(errs, fmt.Errorf("--sts-session-scope: %w", err))
	}
	for _, iss := range f.Issuers {
		if iss == "" || len(iss) > 2048 {
			errs = append(errs, fmt.Errorf("--service-account-issuer %q must be a non-empty issuer of at most 2048 bytes (the kube-apiserver's --service-account-issuer)", iss))
		}
	}
	if f.JWKSURL != "" {
		if u, err := url.Parse(f.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--service-account-jwks-url %q is not an http(s) URL", f.JWKSURL))
		}
	}
	return errs
}
