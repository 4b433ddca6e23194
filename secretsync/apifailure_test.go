package secretsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
)

// TestStatusWriteFailures: a failed status write is logged by its cause.
// Only the authorizer's refusal sends the operator to RBAC (an admission
// policy's, also Forbidden, does not); a write cut short because the
// controller is stopping (or stepped down as leader) is no warning at all.
func TestStatusWriteFailures(t *testing.T) {
	spcs := schema.GroupResource{Group: SPCResource.Group, Resource: SPCResource.Resource}
	tests := []struct {
		name      string
		err       error
		cancelled bool // the request's context ended
		level     string
		want      string
	}{
		{"leader stepped down", fmt.Errorf(`Patch "https://apiserver/x": %w`, context.Canceled), true, "DEBUG", "cancelled (coffer is stopping, or is no longer the leader)"},
		{"cancelled, error not wrapped", errors.New("http2: client connection lost"), true, "DEBUG", "cancelled"},
		{"deadline", fmt.Errorf("client rate limiter Wait returned an error: %w", context.DeadlineExceeded), false, "INFO", "timed out"},
		{"forbidden", apierrors.NewForbidden(spcs, testSPC, errors.New(`User "system:serviceaccount:coffer:coffer-sync" cannot patch resource "secretproviderclasses" in API group "secrets-store.csi.x-k8s.io" in the namespace "team"`)), false, "WARN", "refused (RBAC: coffer-controller sync needs patch on secretproviderclasses)"},
		{"refused by a policy", apierrors.NewForbidden(spcs, testSPC, errors.New("ValidatingAdmissionPolicy 'p' with binding 'b' denied request: no")), false, "WARN", "refused by an admission policy or webhook, not by RBAC"},
		{"deleted meanwhile", apierrors.NewNotFound(spcs, testSPC), false, "INFO", "the object no longer exists"},
		{"apiserver error", apierrors.NewInternalError(errors.New("etcd")), false, "WARN", "the API answered InternalError (HTTP 500)"},
		{"no answer", errors.New("dial tcp 10.0.0.1:443: connect: connection refused"), false, "WARN", "the request did not reach the API, or its answer was unreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dyn := dynamicClient(spcObject(testSPC, classParams(seedDecl)))
			dyn.PrependReactor("patch", SPCResource.Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, tt.err
			})
			var logs bytes.Buffer
			c := &Controller{Dynamic: dyn, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancelled {
				cancel()
			}
			defer cancel()
			st := Status{ObservedGeneration: 1, Ready: "True"}
			c.writeStatus(ctx, &SPC{Namespace: testNS, Name: testSPC, Generation: 1}, &st)
			line := logs.String()
			if strings.Count(line, "\n") != 1 || !strings.Contains(line, "level="+tt.level+" ") ||
				!strings.Contains(line, "secret sync: writing the status annotation failed: "+tt.want) ||
				!strings.Contains(line, "secretProviderClass="+testNS+"/"+testSPC) {
				t.Errorf("logged %q, want one %s line saying %q", line, tt.level, tt.want)
			}
			if !strings.Contains(tt.want, "(RBAC:") && strings.Contains(line, "(RBAC:") {
				t.Errorf("blames RBAC: %s", line)
			}
		})
	}
}

// TestMountTriggerReadFailures: after a mount, a class that cannot be read
// is blamed on RBAC only when the API refused the read.
func TestMountTriggerReadFailures(t *testing.T) {
	spcs := schema.GroupResource{Group: SPCResource.Group, Resource: SPCResource.Resource}
	tests := []struct {
		name, level, want string
		err               error
	}{
		{"forbidden", "WARN", "refused (RBAC: coffer needs get on secretproviderclasses)", apierrors.NewForbidden(spcs, testSPC, errors.New(`User "system:serviceaccount:kube-system:coffer" cannot get resource "secretproviderclasses" in API group "secrets-store.csi.x-k8s.io" in the namespace "team"`))},
		{"timed out", "INFO", "timed out", fmt.Errorf(`Get "https://apiserver/x": %w`, context.DeadlineExceeded)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ff := &fakeFiles{t: t, content: defaultContent(), version: "v1"}
			dyn := dynamicClient()
			dyn.PrependReactor("get", SPCResource.Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, tt.err
			})
			m := &MountTrigger{SPCs: dyn.Resource(SPCResource), Files: ff.Files, Engine: e.engine, Logger: e.engine.Logger}
			m.AfterMount(context.Background(), mountOf(t, classParams(mountDecl), "app", defaultContent()))
			m.waitIdle(t)
			logs := e.logs.String()
			if !strings.Contains(logs, "level="+tt.level+` msg="secret sync: reading the SecretProviderClass failed: `+tt.want) {
				t.Errorf("logged %q, want a %s line saying %q", logs, tt.level, tt.want)
			}
			if tt.level != "WARN" && strings.Contains(logs, "RBAC") {
				t.Errorf("blames RBAC: %s", logs)
			}
		})
	}
}
