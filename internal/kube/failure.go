package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// DescribeFailure says why a request to the API failed, and at what level
// it deserves to be logged, so that an operator is sent to RBAC only when
// RBAC refused it:
//   - the request's context was cancelled: coffer is stopping, or the
//     controller stepped down as leader; nothing to fix (Debug);
//   - its deadline passed: an apiserver slow to answer (Info);
//   - Forbidden in the authorizer's words ("User ... cannot patch resource
//     ..."): a missing permission, named by rbac ("coffer-controller sync
//     needs patch on secretproviderclasses") (Warn);
//   - Forbidden otherwise: an admission policy or webhook refused the
//     request (the chart's ValidatingAdmissionPolicies answer Forbidden
//     too), which no RBAC grants (Warn); Forbidden because the namespace
//     is being deleted (Info);
//   - NotFound: the object was deleted meanwhile (Info);
//   - anything else, by the API's reason and HTTP code (Warn).
//
// The description never quotes the API's message, which can echo what the
// request carried. ctx is the request's context: client-go does not wrap
// every error of a cancelled context.
func DescribeFailure(ctx context.Context, err error, rbac string) (slog.Level, string) {
	var status apierrors.APIStatus
	isStatus := errors.As(err, &status)
	switch {
	case errors.Is(err, context.Canceled) || (!isStatus && errors.Is(ctx.Err(), context.Canceled)):
		return slog.LevelDebug, "cancelled (coffer is stopping, or is no longer the leader)"
	case errors.Is(err, context.DeadlineExceeded) || (!isStatus && errors.Is(ctx.Err(), context.DeadlineExceeded)):
		return slog.LevelInfo, "timed out (the apiserver did not answer in time)"
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return slog.LevelInfo, "refused: the namespace is being deleted"
	case ForbiddenByRBAC(err):
		return slog.LevelWarn, "refused (RBAC: " + rbac + ")"
	case apierrors.IsForbidden(err):
		return slog.LevelWarn, "refused by an admission policy or webhook, not by RBAC (the log has its message)"
	case apierrors.IsNotFound(err):
		return slog.LevelInfo, "the object no longer exists"
	case isStatus:
		return slog.LevelWarn, fmt.Sprintf("the API answered %s (HTTP %d)", status.Status().Reason, status.Status().Code)
	default:
		return slog.LevelWarn, "the request did not reach the API, or its answer was unreadable"
	}
}

// ForbiddenByRBAC: err is a Forbidden status in the words of the
// apiserver's authorizer, `User "..." cannot <verb> resource "..." ...`,
// rather than an admission policy's or webhook's refusal (Forbidden too,
// saying who refused and why), which no RBAC grant fixes.
func ForbiddenByRBAC(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsForbidden(err) || !errors.As(err, &status) {
		return false
	}
	m := status.Status().Message
	return strings.Contains(m, `User "`) && strings.Contains(m, `" cannot `)
}
