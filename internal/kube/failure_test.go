package kube

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestDescribeFailure: RBAC is named only for Forbidden; a cancelled or
// expired request is said to be one, also when client-go did not wrap the
// context's error; the API's message (which can echo the request) is never
// quoted.
func TestDescribeFailure(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		err   error
		level slog.Level
		want  string
	}{
		{"forbidden", context.Background(), apierrors.NewForbidden(gr, "web", errors.New("CANARY")), slog.LevelWarn, "refused (RBAC: needs patch on deployments)"},
		{"not found", context.Background(), apierrors.NewNotFound(gr, "web"), slog.LevelInfo, "the object no longer exists"},
		{"conflict", context.Background(), apierrors.NewConflict(gr, "web", errors.New("CANARY")), slog.LevelWarn, "the API answered Conflict (HTTP 409)"},
		{"cancelled", context.Background(), context.Canceled, slog.LevelDebug, "cancelled"},
		{"cancelled, unwrapped", cancelled, errors.New("client rate limiter Wait returned an error"), slog.LevelDebug, "cancelled"},
		{"deadline", context.Background(), context.DeadlineExceeded, slog.LevelInfo, "timed out"},
		{"unreachable", context.Background(), errors.New("dial tcp: CANARY"), slog.LevelWarn, "did not reach the API"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			level, why := DescribeFailure(tc.ctx, tc.err, "needs patch on deployments")
			if level != tc.level || !strings.Contains(why, tc.want) {
				t.Errorf("DescribeFailure = %v %q, want %v and %q", level, why, tc.level, tc.want)
			}
			if strings.Contains(why, "CANARY") {
				t.Errorf("DescribeFailure quotes the error: %q", why)
			}
		})
	}
}
