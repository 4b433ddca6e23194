package secretsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// logAPIFailure logs a request to the API that failed while doing
// something ("writing the status annotation"), at the level its cause
// deserves, so that an operator is sent to RBAC only when RBAC refused it:
//   - the request's context was cancelled: coffer is stopping, or
//     coffer-controller sync stepped down as leader; nothing to fix (Debug);
//   - its deadline passed: the sync ran out of time, an apiserver slow to
//     answer (Info);
//   - Forbidden: a missing permission, named by rbac ("coffer-controller
//     sync needs patch on secretproviderclasses") (Warn);
//   - NotFound: the object was deleted meanwhile (Info);
//   - anything else, by the API's reason and HTTP code (Warn).
//
// ctx is the request's context: client-go does not wrap every error of a
// cancelled context.
func logAPIFailure(ctx context.Context, log *slog.Logger, doing, rbac string, err error, attrs ...any) {
	level, why := classifyAPIFailure(ctx, err, rbac)
	log.Log(ctx, level, "secret sync: "+doing+" failed: "+why, append(attrs, "error", err)...)
}

func classifyAPIFailure(ctx context.Context, err error, rbac string) (slog.Level, string) {
	var status apierrors.APIStatus
	switch {
	case errors.Is(err, context.Canceled) || (!errors.As(err, &status) && errors.Is(ctx.Err(), context.Canceled)):
		return slog.LevelDebug, "cancelled (coffer is stopping, or is no longer the leader)"
	case errors.Is(err, context.DeadlineExceeded) || (!errors.As(err, &status) && errors.Is(ctx.Err(), context.DeadlineExceeded)):
		return slog.LevelInfo, "timed out (the apiserver did not answer within the sync's time); retried with the next sync"
	case apierrors.IsForbidden(err):
		return slog.LevelWarn, "refused (RBAC: " + rbac + ")"
	case apierrors.IsNotFound(err):
		return slog.LevelInfo, "the object no longer exists"
	case errors.As(err, &status):
		return slog.LevelWarn, fmt.Sprintf("the API answered %s (HTTP %d)", status.Status().Reason, status.Status().Code)
	default:
		return slog.LevelWarn, "the request did not reach the API, or its answer was unreadable"
	}
}
