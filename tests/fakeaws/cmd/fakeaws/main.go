// Command fakeaws serves the fake Secrets Manager / SSM Parameter Store / STS
// / SQS endpoint, and optionally an EKS Pod Identity agent, for demos and
// end-to-end tests. The seed's queues receive the change events of writes,
// with its eventDelivery faults (see fakeaws.Seed).
//
//	fakeaws --addr 127.0.0.1:4566 --seed demo-seed.yaml --ready-file /tmp/fakeaws.url \
//	    --jwks-url https://kubernetes.default.svc/openid/v1/jwks \
//	    --jwks-bearer-token-file /var/run/secrets/kubernetes.io/serviceaccount/token \
//	    --jwks-ca-file /var/run/secrets/kubernetes.io/serviceaccount/ca.crt \
//	    --pod-identity-addr 127.0.0.1:0 --pod-identity-ready-file /tmp/agent.url
//
// Point clients at it with AWS_ENDPOINT_URL=<printed URL>; for Pod Identity,
// AWS_CONTAINER_CREDENTIALS_FULL_URI=<agent URL>. The URL is printed on
// stdout (and written to --ready-file) once every listener is open; one log
// line per call goes to stderr, never containing secret values or tokens.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fakeaws:", err)
		os.Exit(1)
	}
}

type options struct {
	addr, seedPath, readyFile, account string
	oidc                               oidcFlags
	podAddr, podReadyFile              string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("fakeaws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	fs.StringVar(&o.seedPath, "seed", "", "YAML seed file with identities, roles, Pod Identity associations, secrets, parameters, queues and event delivery faults")
	fs.StringVar(&o.readyFile, "ready-file", "", "write the server URL to this file once listening")
	fs.StringVar(&o.account, "account-id", fakeaws.DefaultAccountID, "AWS account id used in ARNs")
	o.oidc.register(fs)
	fs.StringVar(&o.podAddr, "pod-identity-addr", "", "also serve an EKS Pod Identity agent (GET /v1/credentials) on this address")
	fs.StringVar(&o.podReadyFile, "pod-identity-ready-file", "", "write the agent's credentials URL to this file once listening")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.podReadyFile != "" && o.podAddr == "" {
		return nil, errors.New("--pod-identity-ready-file needs --pod-identity-addr")
	}
	return &o, nil
}

// run serves until ctx is cancelled (by SIGINT/SIGTERM in main).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	srv := fakeaws.New(fakeaws.Options{AccountID: o.account, Logger: logger})
	if err := applySeedFile(srv, o.seedPath, logger); err != nil {
		return err
	}
	if err := o.oidc.apply(srv); err != nil {
		return err
	}

	// Open every listener before announcing readiness, so that a script
	// waiting for the ready file finds everything up.
	var listeners []*listener
	defer func() {
		for _, l := range listeners {
			_ = l.hs.Close()
			_ = l.ln.Close() // in case Serve never took it over
		}
	}()
	api, err := listen(o.addr, srv.Handler())
	if err != nil {
		return err
	}
	listeners = append(listeners, api)
	url := "http://" + api.ln.Addr().String()
	if o.podAddr != "" {
		agent, err := listen(o.podAddr, srv.PodIdentityAgent())
		if err != nil {
			return err
		}
		listeners = append(listeners, agent)
		agentURL := "http://" + agent.ln.Addr().String() + "/v1/credentials"
		if o.podReadyFile != "" {
			if err := writeAtomic(o.podReadyFile, agentURL+"\n"); err != nil {
				return err
			}
		}
		logger.Info("pod identity agent listening", "url", agentURL)
	}

	fmt.Fprintln(stdout, url)
	if o.readyFile != "" {
		if err := writeAtomic(o.readyFile, url+"\n"); err != nil {
			return err
		}
	}
	logger.Info("listening", "url", url)

	serveErr := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { serveErr <- l.hs.Serve(l.ln) }()
	}
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}

	logger.Info("shutting down")
	srv.Close() // release requests held by hang faults or latency
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, l := range listeners {
		if err := l.hs.Shutdown(shutdownCtx); err != nil {
			_ = l.hs.Close()
		}
	}
	for range listeners {
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	return nil
}

type listener struct {
	ln net.Listener
	hs *http.Server
}

func listen(addr string, h http.Handler) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &listener{ln: ln, hs: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}, nil
}

func applySeedFile(srv *fakeaws.Server, path string, logger *slog.Logger) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	seed, err := fakeaws.LoadSeed(f)
	f.Close()
	if err != nil {
		return err
	}
	if err := srv.ApplySeed(seed); err != nil {
		return err
	}
	logger.Info("seed loaded", "file", path, "identities", len(seed.Identities), "roles", len(seed.Roles),
		"podIdentityAssociations", len(seed.PodIdentityAssociations),
		"secrets", len(seed.Secrets), "parameters", len(seed.Parameters), "queues", len(seed.Queues))
	return nil
}

// writeAtomic writes via a temporary file and rename, so a script polling
// for the file never reads a partial URL.
func writeAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fakeaws-ready-*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
