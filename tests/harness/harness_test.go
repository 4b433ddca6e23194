package harness

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProcessLogsStopsAndReportsExit(t *testing.T) {
	g := &Group{LogDir: t.TempDir()}
	p, err := g.Spawn("echo", "/bin/sh", []string{"HARNESS_X=marker"}, "-c", "echo $HARNESS_X; exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitReady(context.Background(), p, 10*time.Second, func(context.Context) error {
		if !strings.Contains(p.LogSince(0), "marker") {
			return os.ErrNotExist
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mark := p.LogSize()
	g.StopAll(time.Second)
	if exited, _ := p.Exited(); !exited {
		t.Fatal("still running after StopAll")
	}
	if p.LogSince(mark) != "" {
		t.Errorf("logged after the mark: %q", p.LogSince(mark))
	}
	if s := g.LogTailsSince(nil, 5); !strings.Contains(s, "----- echo") || !strings.Contains(s, "marker") {
		t.Errorf("tails: %q", s)
	}
}

func TestWaitReadyReportsExitWithLog(t *testing.T) {
	g := &Group{LogDir: t.TempDir()}
	p, err := g.Spawn("dies", "/bin/sh", nil, "-c", "echo bad flag >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	err = WaitReady(context.Background(), p, 10*time.Second, func(context.Context) error { return os.ErrNotExist })
	if err == nil || !strings.Contains(err.Error(), "dies exited") || !strings.Contains(err.Error(), "bad flag") {
		t.Errorf("error %v, want the exit and the log tail", err)
	}
}

func TestTail(t *testing.T) {
	if got := Tail("a\nb\nc\n", 2); got != "[... 1 earlier lines]\nb\nc" {
		t.Errorf("%q", got)
	}
}

func TestServingCertNamesEveryAddress(t *testing.T) {
	dir := t.TempDir()
	certPEM, err := WriteServingCert(filepath.Join(dir, "c"), filepath.Join(dir, "k"), "x", []net.IP{net.ParseIP("198.18.0.1")}, []string{"kubernetes.default.svc"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"127.0.0.1", "198.18.0.1", "localhost", "kubernetes.default.svc"} {
		if err := cert.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "k")); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
}
