package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

var rolePattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`)

// checkRole validates an IAM role ARN.
func checkRole(arn string) error {
	if !rolePattern.MatchString(arn) || len(arn) > 2048 {
		return fmt.Errorf("%q is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)", arn)
	}
	return nil
}

// sessionKind is what an STS session coffer opens stands for. Its marker
// separates the namespace from the name in the session name; namespaces
// hold neither '.' nor '@', so the first of those ends the namespace and
// says the kind.
type sessionKind string

const (
	// sessionPod: a pod, proven by its token (coffer-<ns>.<pod>).
	sessionPod sessionKind = "."
	// sessionServiceAccount: the pods of a ServiceAccount, under
	// --sts-session-scope=serviceaccount (coffer-<ns>@sa.<name>).
	sessionServiceAccount sessionKind = "@sa."
	// sessionSync: a token bound to no pod, which a sync controller
	// (coffer-controller sync, the Secrets Store sync controller) requests for the
	// ServiceAccount itself (coffer-<ns>@sync.<name>). No pod can be named
	// so: pod names hold no '@'.
	sessionSync sessionKind = "@sync."
)

// sessionPrefix starts every session name coffer opens.
const sessionPrefix = "coffer-"

// maxSessionName is STS's limit on a role session name.
const maxSessionName = 64

// sessionDigestBytes is the part of a SHA-256 digest that ends a session
// name too long (or too odd) to spell out: 96 bits, so that no two names a
// tenant can choose share one, even when searched for (a 32-bit digest is
// found by brute force in minutes).
const sessionDigestBytes = 12

// sessionDigestMark separates a long name's readable start from its
// digest. Readable names never hold it (Kubernetes names have no '='), so
// no readable name equals a digested one.
const sessionDigestMark = "="

var (
	// Kubernetes namespaces are DNS labels: no '.', no '@'.
	plainNamespace = regexp.MustCompile(`^[a-z0-9-]+$`)
	// Pod and ServiceAccount names are DNS subdomains: no '@', no '='.
	plainName = regexp.MustCompile(`^[a-z0-9.-]+$`)
	// sessionUnsafe is what STS refuses in a session name; the readable
	// start of a digested name replaces it.
	sessionUnsafe = regexp.MustCompile(`[^\w+=,.@-]`)
)

// sessionName names an STS session so that CloudTrail shows which
// workload read what, and so that no two workloads share a name:
//
//	coffer-<namespace>.<pod>          a pod
//	coffer-<namespace>@sa.<name>      a ServiceAccount's pods (scope serviceaccount)
//	coffer-<namespace>@sync.<name>    a ServiceAccount's token bound to no pod
//
// Namespaces hold no '.' or '@' and names no '@', so each readable name
// spells one workload: sessionName("team-a", "web") is coffer-team-a.web
// and sessionName("team", "a-web") coffer-team.a-web. A name over STS's 64
// characters, or one Kubernetes would not allow, keeps its start and ends
// in '=' and a 96-bit digest of the unambiguous full form (kind and
// length-prefixed fields): the pods of one ReplicaSet differ only in their
// last characters, which a plain cut would drop, giving them all one
// session name and one set of credentials.
//
// Credentials are reused only under the same session name (credentialKey),
// so the name stays true for every call made with them.
func sessionName(kind sessionKind, namespace, name string) string {
	full := sessionPrefix + namespace + string(kind) + name
	if len(full) <= maxSessionName && plainNamespace.MatchString(namespace) && plainName.MatchString(name) {
		return full
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%d:%s|%d:%s", kind, len(namespace), namespace, len(name), name))
	digest := base64.RawURLEncoding.EncodeToString(sum[:sessionDigestBytes])
	start := sessionUnsafe.ReplaceAllString(strings.ToValidUTF8(full, "-"), "-")
	start = start[:min(len(start), maxSessionName-len(sessionDigestMark)-len(digest))]
	return start + sessionDigestMark + digest
}
