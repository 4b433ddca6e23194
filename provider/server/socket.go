package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"k8s.io/utils/clock"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// Listen opens the provider's Unix socket at path. A socket file nobody
// answers on (left by a crashed provider) is replaced; a socket a live
// server answers on is an error, so two providers never fight over one name.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the provider directory: %w", err)
	}
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("checking %s: %w", path, err)
	case info.Mode()&fs.ModeSocket == 0:
		return nil, fmt.Errorf("%s exists and is not a socket; remove it or choose another --provider-dir/--provider-name", path)
	default:
		conn, dialErr := net.DialTimeout("unix", path, time.Second)
		if dialErr == nil {
			conn.Close()
			return nil, fmt.Errorf("another provider is serving on %s; stop it first, or choose another --provider-name", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	// Only the driver (root on the node) talks to the provider.
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("restricting %s: %w", path, err)
	}
	return lis, nil
}

// ServeOptions configure Serve.
type ServeOptions struct {
	// MaxMessageBytes bounds what the server sends and receives (default
	// 4 MiB, the driver's receive limit).
	MaxMessageBytes int
	// ShutdownTimeout bounds how long in-flight Mounts may finish after the
	// context ends (default 20s).
	ShutdownTimeout time.Duration
	// Register adds more services (health) to the gRPC server.
	Register func(*grpc.Server)
	Logger   *slog.Logger
	// Clock times ShutdownTimeout (nil: the real clock).
	Clock clock.Clock
}

// Serve serves the provider on lis until ctx ends, then stops accepting,
// lets in-flight Mounts finish within ShutdownTimeout, and removes the
// socket. It returns nil after a clean shutdown.
func Serve(ctx context.Context, lis net.Listener, srv v1alpha1.CSIDriverProviderServer, opts ServeOptions) error {
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 4 << 20
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 20 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	g := grpc.NewServer(grpc.MaxRecvMsgSize(opts.MaxMessageBytes), grpc.MaxSendMsgSize(opts.MaxMessageBytes),
		grpc.UnaryInterceptor(recoverPanics(log)))
	v1alpha1.RegisterCSIDriverProviderServer(g, srv)
	// The standard gRPC health service, on the same socket: what the
	// readiness probe (and any gRPC-aware tool) asks.
	health := grpchealth.NewServer()
	healthpb.RegisterHealthServer(g, health)
	if opts.Register != nil {
		opts.Register(g)
	}
	path := lis.Addr().String()
	defer os.Remove(path)

	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", path, err)
	case <-ctx.Done():
	}
	health.Shutdown() // report NOT_SERVING while draining
	log.Info("shutting down: no new connections, waiting for in-flight mounts", "timeout", opts.ShutdownTimeout)
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
		log.Info("shut down cleanly")
	case <-opts.Clock.After(opts.ShutdownTimeout):
		log.Warn("in-flight mounts did not finish in time; stopping them", "timeout", opts.ShutdownTimeout)
		g.Stop()
	}
	return nil
}

// recoverPanics turns a panic in a handler into an error for that one
// call: a bug hit by one pod's mount must not take down the provider every
// pod on the node depends on. The stack is logged (it holds no values:
// Go prints arguments as raw words, not contents).
func recoverPanics(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic while serving a request; the request failed, the provider goes on", "method", info.FullMethod, "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "internal error in coffer while serving %s; see the provider's log", info.FullMethod)
			}
		}()
		return handler(ctx, req)
	}
}
