// Command fakeaws serves the fake Secrets Manager / SSM Parameter Store
// endpoint for demos and end-to-end tests.
//
//	fakeaws --addr 127.0.0.1:4566 --seed demo-seed.yaml --ready-file /tmp/fakeaws.url
//
// Point clients at it with AWS_ENDPOINT_URL=<printed URL>. The URL is printed
// on stdout (and written to --ready-file) once the listener is open; one log
// line per call goes to stderr, never containing secret values.
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

// run serves until ctx is cancelled (by SIGINT/SIGTERM in main).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakeaws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	seedPath := fs.String("seed", "", "YAML seed file with identities, secrets and parameters")
	readyFile := fs.String("ready-file", "", "write the server URL to this file once listening")
	account := fs.String("account-id", fakeaws.DefaultAccountID, "AWS account id used in ARNs")
	if err := fs.Parse(args); err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	srv := fakeaws.New(fakeaws.Options{AccountID: *account, Logger: logger})

	if *seedPath != "" {
		f, err := os.Open(*seedPath)
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
		logger.Info("seed loaded", "file", *seedPath, "identities", len(seed.Identities),
			"secrets", len(seed.Secrets), "parameters", len(seed.Parameters))
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()

	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	fmt.Fprintln(stdout, url)
	if *readyFile != "" {
		if err := writeAtomic(*readyFile, url+"\n"); err != nil {
			_ = hs.Close()
			return err
		}
	}
	logger.Info("listening", "url", url)

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}

	logger.Info("shutting down")
	srv.Close() // release requests held by hang faults or latency
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		_ = hs.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
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
