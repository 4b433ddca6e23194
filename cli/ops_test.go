package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestStartOps: each command's operational endpoints, as startOps opens
// them for serve (health, metrics, pprof, health and metrics sharing an
// address) and for coffer-controller sync (metrics only, which answers
// /healthz too). The listeners are open when it returns.
func TestStartOps(t *testing.T) {
	notReady := func(context.Context) error { return errors.New("no socket") }
	reg := prometheus.NewRegistry()
	for _, tc := range []struct {
		name string
		// addrs names which endpoints get an address: "health",
		// "metrics", "pprof", or "shared" (health and metrics on one).
		addrs []string
		// want is each endpoint's HTTP status, by the endpoint named
		// first in addrs and the path.
		want map[string]int
	}{
		{"sync: metrics only", []string{"metrics"}, map[string]int{"/metrics": 200, "/healthz": 200, "/readyz": 503, "/debug/pprof/": 404}},
		{"serve: health only", []string{"health"}, map[string]int{"/metrics": 404, "/healthz": 200, "/readyz": 503}},
		{"serve: health and metrics on one address", []string{"shared"}, map[string]int{"/metrics": 200, "/healthz": 200}},
		{"serve: pprof", []string{"pprof"}, map[string]int{"/debug/pprof/": 200, "/metrics": 404}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addr := freeAddr(t)
			var a opsAddrs
			switch tc.addrs[0] {
			case "metrics":
				a.metrics = addr
			case "health":
				a.health = addr
			case "shared":
				a.health, a.metrics = addr, addr
			case "pprof":
				a.pprof = addr
			}
			if err := startOps(ctx, a, notReady, reg, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			for path, want := range tc.want {
				resp, err := http.Get("http://" + addr + path)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
				}
			}
		})
	}
}

// TestStartOpsAddressInUse: an address that cannot be listened on fails
// the command, and closes the listeners already opened.
func TestStartOpsAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	health := freeAddr(t)
	err = startOps(context.Background(), opsAddrs{health: health, metrics: taken.Addr().String()}, nil, nil, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("startOps on a taken address succeeded")
	}
	lis, err := net.Listen("tcp", health)
	if err != nil {
		t.Fatalf("the health listener was left open: %v", err)
	}
	lis.Close()
}
