package auth

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/bounded"
	"github.com/coffer-csi/coffer/internal/kube"

	"github.com/coffer-csi/coffer/internal/flight"
)

// RoleAnnotation is the ServiceAccount annotation that names the IAM role
// of IRSA, as EKS's pod identity webhook reads it.
const RoleAnnotation = "eks.amazonaws.com/role-arn"

// RoleLookup finds the IRSA role of a ServiceAccount and remembers it for a
// while, so that steady-state mounts make no Kubernetes API calls and a
// burst of pods of one ServiceAccount makes one.
type RoleLookup struct {
	client kube.ServiceAccountsGetter
	// ttl is how long an answer is reused; negativeTTL how long "no such
	// ServiceAccount / no annotation" is, shorter so a fix shows up quickly.
	ttl, negativeTTL time.Duration
	clock            clock.PassiveClock

	// entries holds the answers of at most maxRoleEntries ServiceAccounts,
	// each until its ttl (or negativeTTL) ends; when full, the
	// ServiceAccount least recently looked up is dropped.
	entries *bounded.LRU[roleEntry]
	flights flight.Group
}

type roleEntry struct {
	role string
	err  error
}

// NewRoleLookup returns a lookup that reuses answers for ttl (default 2m).
func NewRoleLookup(client kube.ServiceAccountsGetter, ttl time.Duration) *RoleLookup {
	return newRoleLookup(client, ttl, nil)
}

// newRoleLookup is NewRoleLookup on clk (nil: the real clock).
func newRoleLookup(client kube.ServiceAccountsGetter, ttl time.Duration, clk clock.PassiveClock) *RoleLookup {
	if ttl <= 0 {
		ttl = 2 * time.Minute
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &RoleLookup{client: client, ttl: ttl, negativeTTL: min(ttl, 10*time.Second), clock: clk, entries: bounded.NewLRU[roleEntry](maxRoleEntries, clk)}
}

// maxRoleEntries bounds the cache: far more ServiceAccounts than one node
// mounts for.
const maxRoleEntries = 10000

// Role returns the role ARN annotated on namespace/name.
func (l *RoleLookup) Role(ctx context.Context, namespace, name string) (string, error) {
	key := namespace + "/" + name
	if e, ok := l.entries.Get(key); ok {
		return e.role, e.err
	}
	// The answer serves every caller waiting for it.
	return flight.Do(ctx, &l.flights, key, "looking up ServiceAccount "+key, 10*time.Second, func(ctx context.Context) (string, error) {
		role, err := l.fetch(ctx, namespace, name)
		ttl := l.ttl
		if err != nil {
			ttl = l.negativeTTL
		}
		if _, transient := err.(*transientError); !transient {
			l.entries.AddUntil(key, roleEntry{role: role, err: err}, l.clock.Now().Add(ttl))
		}
		return role, err
	})
}

// transientError marks lookup failures that must not be cached.
type transientError struct{ error }

func (e *transientError) Unwrap() error { return e.error }

func (l *RoleLookup) fetch(ctx context.Context, namespace, name string) (string, error) {
	sa, err := l.client.ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", &Error{Reason: ReasonNoRole, Msg: fmt.Sprintf("ServiceAccount %s/%s does not exist", namespace, name)}
	case apierrors.IsForbidden(err):
		return "", &transientError{&Error{Reason: ReasonConfig, Msg: fmt.Sprintf("coffer may not read ServiceAccount %s/%s; its RBAC needs get on serviceaccounts", namespace, name), Err: err}}
	case err != nil:
		return "", &transientError{&Error{Reason: ReasonOther, Msg: fmt.Sprintf("reading ServiceAccount %s/%s", namespace, name), Err: err}}
	}
	role := sa.Annotations[RoleAnnotation]
	if role == "" {
		return "", &Error{Reason: ReasonNoRole, Msg: fmt.Sprintf(
			"ServiceAccount %s/%s has no %s annotation, so coffer does not know which IAM role the pod may use; "+
				"annotate it (kubectl annotate serviceaccount -n %s %s %s=arn:aws:iam::<account>:role/<role>) "+
				"or set usePodIdentity: \"true\" in the SecretProviderClass for EKS Pod Identity",
			namespace, name, RoleAnnotation, namespace, name, RoleAnnotation)}
	}
	if err := checkRole(role); err != nil {
		return "", &Error{Reason: ReasonNoRole, Msg: fmt.Sprintf("ServiceAccount %s/%s annotation %s: %v", namespace, name, RoleAnnotation, err)}
	}
	return role, nil
}
