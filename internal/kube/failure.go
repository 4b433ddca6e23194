package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// DescribeFailure says why a request to the API failed, and at what level
// it deserves to be logged, so that an operator is sent to RBAC only when
// RBAC refused it:
//   - the request's context was cancelled: coffer is stopping, or the
//     controller stepped down as leader; nothing to fix (Debug);
//   - its deadline passed: an apiserver slow to answer (Info);
//   - Forbidden: a missing permission, named by rbac ("coffer-controller
//     sync needs patch on secretproviderclasses") (Warn);
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
	case apierrors.IsForbidden(err):
		return slog.LevelWarn, "refused (RBAC: " + rbac + ")"
	case apierrors.IsNotFound(err):
		return slog.LevelInfo, "the object no longer exists"
	case isStatus:
		return slog.LevelWarn, fmt.Sprintf("the API answered %s (HTTP %d)", status.Status().Reason, status.Status().Code)
	default:
		return slog.LevelWarn, "the request did not reach the API, or its answer was unreadable"
	}
}
