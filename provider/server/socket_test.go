package server_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/coffer-csi/coffer/provider"
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
	defer lis.Close()
	// Replaced: a 0600 socket on which the new listener answers (binding
	// over the stale file itself fails with "address already in use").
	now, err := os.Stat(socket)
	if err != nil {
		t.Fatalf("no socket after Listen: %v", err)
	}
	if now.Mode()&os.ModeSocket == 0 || now.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a 0600 socket", now.Mode())
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := lis.Accept()
		if err == nil {
			_, err = c.Write([]byte("x"))
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatalf("dialling the replaced socket: %v", err)
	}
	defer c.Close()
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil || buf[0] != 'x' {
		t.Errorf("read %q, %v from the new listener", buf, err)
	}
	if err := <-accepted; err != nil {
		t.Errorf("the new listener: %v", err)
	}
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

// panickyMounter panics, as a bug would.
type panickyMounter struct{}

func (panickyMounter) Mount(context.Context, provider.Request) (*provider.Result, error) {
	panic("bug")
}

func TestPanicFailsOneMountNotTheProvider(t *testing.T) {
	socket := filepath.Join(shortTempDir(t), "aws.sock")
	lis, err := server.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, lis, &server.Server{Mounter: panickyMounter{}}, server.ServeOptions{})
	}()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := v1alpha1.NewCSIDriverProviderClient(conn)
	for range 2 { // the provider is still there for the second call
		_, err := client.Mount(context.Background(), &v1alpha1.MountRequest{})
		if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "internal error in coffer") {
			t.Fatalf("err = %v", err)
		}
	}
	if _, err := client.Version(context.Background(), &v1alpha1.VersionRequest{}); err != nil {
		t.Errorf("Version after a panic: %v", err)
	}
}

// shortTempDir returns a temporary directory with a short path: Unix socket
// paths are limited to about 100 bytes, and t.TempDir can be longer.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "coffer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
