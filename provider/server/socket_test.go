package server_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/provider/server"
)

func TestListenReplacesStaleSocket(t *testing.T) {
	socket := filepath.Join(shortTempDir(t), "aws.sock")
	// A socket file nobody listens on, as a crashed provider leaves it.
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(socket); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	lis, err := server.Listen(socket)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	lis.Close()
}

func TestListenRefusesLiveSocket(t *testing.T) {
	socket := filepath.Join(shortTempDir(t), "aws.sock")
	live, err := server.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, err = server.Listen(socket)
	if err == nil || !strings.Contains(err.Error(), "another provider is serving") {
		t.Fatalf("Listen over a live socket: err = %v", err)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "aws.sock")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("err = %v", err)
	}
}

func TestServeDrainsAndRemovesSocket(t *testing.T) {
	h := newHarness(t)
	h.fake.PutSecretString(primary, "slow", "v")
	h.fake.SetLatency(500 * time.Millisecond)
	// Start a mount, then shut down while it is in flight: it must finish.
	done := make(chan error, 1)
	go func() {
		_, err := h.mount(t, map[string]string{"objects": "- {objectName: slow, objectType: secretsmanager}"})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	h.stop(t)
	if err := <-done; err != nil {
		t.Errorf("in-flight mount failed during shutdown: %v", err)
	}
	if _, err := os.Stat(h.socket); !os.IsNotExist(err) {
		t.Errorf("socket still present after shutdown: %v", err)
	}
}
