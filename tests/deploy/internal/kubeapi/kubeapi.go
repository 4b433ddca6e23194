// Package kubeapi runs a real etcd and kube-apiserver on loopback, with the
// shared cluster harness (tests/harness) the end-to-end suite and the node
// tier use, with the end-to-end suite's flags (plus --allow-privileged, as
// in real clusters), for tests that need only the API: server-side dry-run
// of manifests against the real schemas, admission and authorisation. The
// binaries come from the end-to-end suite's provisioning
// (tests/e2e/hack/provision.sh).
package kubeapi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"

	"github.com/coffer-csi/coffer/tests/harness"
)

// Server is a running etcd and kube-apiserver.
type Server struct {
	URL   string // https://127.0.0.1:<port>
	CAPEM []byte
	Token string // a system:masters bearer token

	dir   string
	group *harness.Group
}

// Start starts etcd and kube-apiserver in a new directory under dir and
// returns once the apiserver is ready. On error everything started is
// stopped.
func Start(ctx context.Context, etcdBin, apiserverBin, dir string) (s *Server, err error) {
	root, err := os.MkdirTemp(dir, "kubeapi-")
	if err != nil {
		return nil, err
	}
	s = &Server{dir: root, group: &harness.Group{LogDir: filepath.Join(root, "logs")}}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, s.Logs(40))
			s.Stop()
		}
	}()
	for _, d := range []string{"pki", "etcd", "logs"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return s, err
		}
	}
	etcdURL, _, err := harness.StartEtcd(ctx, s.group, etcdBin, filepath.Join(root, "etcd"))
	if err != nil {
		return s, err
	}
	api, err := harness.StartAPIServer(ctx, s.group, harness.APIServerOptions{
		Bin:     apiserverBin,
		PKIDir:  filepath.Join(root, "pki"),
		EtcdURL: etcdURL,
		Args: []string{
			"--disable-admission-plugins=ServiceAccount",
			// As in every real cluster (kubeadm, EKS): the driver's own
			// DaemonSet is privileged, and is rejected without it.
			"--allow-privileged=true",
		},
	})
	if err != nil {
		return s, err
	}
	s.URL, s.CAPEM, s.Token = api.URL, api.CAPEM, api.AdminToken
	return s, nil
}

// RESTConfig is the admin's client configuration.
func (s *Server) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            s.URL,
		BearerToken:     s.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.CAPEM},
		QPS:             100,
		Burst:           200,
	}
}

// Stop stops the apiserver, then etcd, and removes the directory.
func (s *Server) Stop() {
	s.group.StopAll(10 * time.Second)
	_ = os.RemoveAll(s.dir)
}

// Logs returns the last lines each component logged.
func (s *Server) Logs(lines int) string {
	return s.group.LogTailsSince(nil, lines)
}
