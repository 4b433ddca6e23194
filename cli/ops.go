package cli

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coffer-csi/coffer/internal/ops"
)

// opsAddrs are the addresses of the operational HTTP endpoints (empty:
// off).
type opsAddrs struct{ health, metrics, pprof string }

// startOps opens the operational HTTP listeners of a long-running command
// (health, metrics, pprof), serving until ctx ends; health and metrics
// share one listener when given the same address, and the metrics
// listener answers /healthz and /readyz too.
func startOps(ctx context.Context, a opsAddrs, ready func(context.Context) error, reg *prometheus.Registry, log *slog.Logger) error {
	type endpoint struct {
		addr    string
		handler http.Handler
	}
	var eps []endpoint
	switch {
	case a.health != "" && a.health == a.metrics:
		eps = append(eps, endpoint{a.health, ops.Handler(ready, reg)})
	default:
		if a.health != "" {
			eps = append(eps, endpoint{a.health, ops.Handler(ready, nil)})
		}
		if a.metrics != "" {
			eps = append(eps, endpoint{a.metrics, ops.Handler(ready, reg)})
		}
	}
	if a.pprof != "" {
		eps = append(eps, endpoint{a.pprof, ops.PprofHandler()})
	}
	listeners := make([]net.Listener, 0, len(eps))
	for _, ep := range eps {
		lis, err := ops.Listen(ep.addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return err
		}
		listeners = append(listeners, lis)
	}
	for i, ep := range eps {
		go ops.Serve(ctx, listeners[i], ep.handler, log)
	}
	return nil
}
