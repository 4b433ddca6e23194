// Package server adapts the provider to the driver's gRPC API
// (sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1) and owns the Unix
// socket's life: refuse a live owner, replace a stale socket, drain on
// shutdown and remove the socket.
package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
)

// RuntimeName is what Version reports as the provider's name.
const RuntimeName = "coffer"

// Mounter serves one Mount.
type Mounter interface {
	Mount(ctx context.Context, req provider.Request) (*provider.Result, error)
}

// Server implements v1alpha1.CSIDriverProviderServer.
type Server struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	Mounter Mounter
	// MountTimeout bounds every Mount: rotation calls from the driver may
	// carry no deadline at all.
	MountTimeout time.Duration
	// BuildVersion is coffer's version, reported by Version.
	BuildVersion string
	Logger       *slog.Logger
	// Slots bounds concurrent Mounts (nil: unbounded); see NewSlots.
	Slots chan struct{}
}

// NewSlots returns a bound of n concurrent Mounts for Server.Slots.
func NewSlots(n int) chan struct{} {
	if n <= 0 {
		return nil
	}
	return make(chan struct{}, n)
}

var _ v1alpha1.CSIDriverProviderServer = (*Server)(nil)

// Version reports the API version and coffer's build.
func (s *Server) Version(context.Context, *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: RuntimeName, RuntimeVersion: s.BuildVersion}, nil
}

// Mount translates the request, mounts, and translates back.
func (s *Server) Mount(ctx context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	if s.MountTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.MountTimeout)
		defer cancel()
	}
	if s.Slots != nil {
		// Queue rather than refuse: a burst of pod starts waits its turn,
		// within its own deadline.
		select {
		case s.Slots <- struct{}{}:
			defer func() { <-s.Slots }()
		case <-ctx.Done():
			return nil, status.Errorf(codes.ResourceExhausted, "%d mounts are in flight (--max-concurrent-mounts) and no slot freed up before the mount's deadline; the driver will retry", cap(s.Slots))
		}
	}
	current := make(map[string]string, len(req.GetCurrentObjectVersion()))
	for _, v := range req.GetCurrentObjectVersion() {
		current[v.GetId()] = v.GetVersion()
	}
	res, err := s.Mounter.Mount(ctx, provider.Request{
		Attributes:      req.GetAttributes(),
		Permission:      req.GetPermission(),
		CurrentVersions: current,
	})
	if err != nil {
		return nil, status.Error(Code(err), err.Error())
	}
	resp := &v1alpha1.MountResponse{
		Files:         make([]*v1alpha1.File, len(res.Files)),
		ObjectVersion: make([]*v1alpha1.ObjectVersion, len(res.Files)),
	}
	for i, f := range res.Files {
		resp.Files[i] = &v1alpha1.File{Path: f.Path, Mode: int32(f.Mode.Perm()), Contents: f.Data}
		resp.ObjectVersion[i] = &v1alpha1.ObjectVersion{Id: f.Path, Version: f.Version}
	}
	return resp, nil
}

// Code maps a mount error to the gRPC status code the driver sees. The
// driver retries UNAVAILABLE itself, so AWS outages are not reported as
// UNAVAILABLE: a retry storm against a struggling region helps no one.
func Code(err error) codes.Code {
	switch {
	case provider.IsInputError(err):
		return codes.InvalidArgument
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	var authErr *auth.Error
	if errors.As(err, &authErr) {
		return authCode(authErr.Reason)
	}
	var size *render.SizeError
	if errors.As(err, &size) {
		return codes.ResourceExhausted
	}
	var tmplErr *render.TemplateError
	if errors.As(err, &tmplErr) {
		return codes.FailedPrecondition
	}
	var objErrs fetch.Errors
	if errors.As(err, &objErrs) {
		return fetchCode(objErrs)
	}
	return codes.Internal
}

// fetchCode maps the most actionable object failure to a code.
func fetchCode(errs fetch.Errors) codes.Code {
	switch errs.MostActionable() {
	case fetch.KindAccessDenied:
		return codes.PermissionDenied
	case fetch.KindCredentials:
		return codes.Unauthenticated
	case fetch.KindNotFound:
		return codes.NotFound
	case fetch.KindInvalid, fetch.KindDecryption:
		return codes.FailedPrecondition
	case fetch.KindThrottled:
		return codes.ResourceExhausted
	case fetch.KindTimeout:
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

// authCode maps an auth failure reason to a code: configuration the user
// must fix, a refusal by AWS, or a token that is not acceptable.
func authCode(reason string) codes.Code {
	switch reason {
	case auth.ReasonDenied:
		return codes.PermissionDenied
	case auth.ReasonInvalidToken, auth.ReasonUnauthenticated:
		return codes.Unauthenticated
	case auth.ReasonUnreachable:
		return codes.Unavailable
	case auth.ReasonNoToken, auth.ReasonNoRole, auth.ReasonConfig:
		return codes.FailedPrecondition
	}
	return codes.Internal
}
