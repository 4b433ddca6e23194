package ops

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadinessFollowsTheGRPCServer: readiness is a real gRPC call over the
// socket, so it goes false when the gRPC server stops while HTTP answers.
func TestReadinessFollowsTheGRPCServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "ops")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "p.sock")
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	go g.Serve(lis)

	probe := &SocketProbe{Socket: socket}
	defer probe.Close()
	reg := prometheus.NewRegistry()
	ts := httptest.NewServer(Handler(probe.Check, reg))
	defer ts.Close()

	if code, _ := get(t, ts.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz = %d with the gRPC server up", code)
	}
	hs.Shutdown() // draining: NOT_SERVING
	if code, body := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "NOT_SERVING") {
		t.Errorf("readyz while draining = %d %q", code, body)
	}
	g.Stop()
	if code, _ := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz with the gRPC server stopped = %d, want 503", code)
	}
	if code, _ := get(t, ts.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz = %d; the process is alive", code)
	}
	if code, _ := get(t, ts.URL+"/metrics"); code != http.StatusOK {
		t.Errorf("metrics = %d", code)
	}
	if err := probe.Check(context.Background()); err == nil {
		t.Error("probe passed with no server")
	}
}

func TestHandlerWithoutMetrics(t *testing.T) {
	ts := httptest.NewServer(Handler(func(context.Context) error { return nil }, nil))
	defer ts.Close()
	if code, _ := get(t, ts.URL+"/metrics"); code != http.StatusNotFound {
		t.Errorf("metrics served on the health-only listener: %d", code)
	}
}
