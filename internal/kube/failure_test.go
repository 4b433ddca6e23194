package kube

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestDescribeFailure: RBAC is named only when the authorizer refused the
// request, not an admission policy or webhook (also Forbidden); a cancelled or
// expired request is said to be one, also when client-go did not wrap the
// context's error; the API's message (which can echo the request) is never
// quoted.
func TestDescribeFailure(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	// The apiserver's words for each (k8s.io/apiserver's forbiddenMessage,
	// a ValidatingAdmissionPolicy's and a webhook's denial), with CANARY
	// where a request's content can appear.
	rbacForbidden := apierrors.NewForbidden(gr, "web", errors.New(`User "system:serviceaccount:coffer:coffer-sync" cannot patch resource "deployments" in API group "apps" in the namespace "CANARY"`))
	policyForbidden := apierrors.NewForbidden(gr, "web", errors.New(`ValidatingAdmissionPolicy 'coffer-sync-workload-restarts' with binding 'coffer-sync-workload-restarts' denied request: CANARY`))
	webhookForbidden := &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 403, Reason: metav1.StatusReasonForbidden, Message: `admission webhook "policy.example.com" denied the request: CANARY cannot be changed`}}
	terminating := apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "db", errors.New("unable to create new content in namespace CANARY because it is being terminated"))
	terminating.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause, Message: "namespace CANARY is being terminated", Field: "metadata.namespace"}}
	tests := []struct {
		name  string
		ctx   context.Context
		err   error
		level slog.Level
		want  string
	}{
		{"forbidden by RBAC", context.Background(), rbacForbidden, slog.LevelWarn, "refused (RBAC: needs patch on deployments)"},
		{"forbidden by a policy", context.Background(), policyForbidden, slog.LevelWarn, "refused by an admission policy or webhook, not by RBAC"},
		{"forbidden by a webhook", context.Background(), webhookForbidden, slog.LevelWarn, "refused by an admission policy or webhook, not by RBAC"},
		{"namespace being deleted", context.Background(), terminating, slog.LevelInfo, "the namespace is being deleted"},
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
