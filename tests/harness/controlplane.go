package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// StartEtcd starts etcd on free loopback ports with its data in dataDir and
// returns its client URL once it is healthy.
func StartEtcd(ctx context.Context, g *Group, bin, dataDir string) (string, *Process, error) {
	ports, err := FreePorts("127.0.0.1", 2)
	if err != nil {
		return "", nil, err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	p, err := g.Spawn("etcd", bin, nil,
		"--name=test", "--data-dir="+dataDir,
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=test="+peer, "--log-level=warn", "--logger=zap")
	if err != nil {
		return "", nil, err
	}
	return client, p, WaitReady(ctx, p, time.Minute, func(ctx context.Context) error {
		return HTTPOK(ctx, http.DefaultClient, client+"/health", "")
	})
}

// APIServerOptions say how to run kube-apiserver. The zero value of each
// field is what the end-to-end suite uses.
type APIServerOptions struct {
	Bin     string
	PKIDir  string // certificates, keys and the token file are written here
	EtcdURL string
	// BindAddress is where it listens (127.0.0.1) and Host the address in
	// its URL (the bind address, or 127.0.0.1 if that is 0.0.0.0).
	BindAddress, Host string
	Port              int // 0: a free port
	// More addresses and names for the serving certificate.
	CertIPs   []net.IP
	CertNames []string
	// AuthorizationMode is RBAC unless set (e.g. Node,RBAC).
	AuthorizationMode string
	// ServiceClusterIPRange is 10.0.0.0/24 unless set.
	ServiceClusterIPRange string
	// Tokens are more lines of the static token file: token,user,uid,groups.
	Tokens []string
	// Args are more flags, after the common ones.
	Args []string
}

// APIServer is a running kube-apiserver.
type APIServer struct {
	URL        string // https://<host>:<port>
	CAPEM      []byte // its serving certificate, which is its own CA
	AdminToken string // a system:masters bearer token
	PKIDir     string
	Process    *Process
}

// StartAPIServer starts kube-apiserver against etcd and returns once
// /readyz answers. Its ServiceAccount issuer is its own URL, which serves
// the discovery document and /openid/v1/jwks, as a cluster's OIDC issuer
// does.
func StartAPIServer(ctx context.Context, g *Group, o APIServerOptions) (*APIServer, error) {
	bind := o.BindAddress
	if bind == "" {
		bind = "127.0.0.1"
	}
	host := o.Host
	if host == "" {
		host = bind
		if host == "0.0.0.0" {
			host = "127.0.0.1"
		}
	}
	port := o.Port
	if port == 0 {
		ports, err := FreePorts(host, 1)
		if err != nil {
			return nil, err
		}
		port = ports[0]
	}
	authz := o.AuthorizationMode
	if authz == "" {
		authz = "RBAC"
	}
	ipRange := o.ServiceClusterIPRange
	if ipRange == "" {
		ipRange = "10.0.0.0/24"
	}
	s := &APIServer{
		URL:        "https://" + net.JoinHostPort(host, strconv.Itoa(port)),
		AdminToken: RandomToken(),
		PKIDir:     o.PKIDir,
	}
	pki := func(name string) string { return filepath.Join(o.PKIDir, name) }
	var err error
	if s.CAPEM, err = WriteServingCert(pki("apiserver.crt"), pki("apiserver.key"), "coffer-test-apiserver", o.CertIPs, o.CertNames); err != nil {
		return nil, err
	}
	if err := WriteServiceAccountKey(pki("sa.key"), pki("sa.pub")); err != nil {
		return nil, err
	}
	tokens := append([]string{s.AdminToken + ",admin,admin-uid,system:masters"}, o.Tokens...)
	if err := os.WriteFile(pki("tokens.csv"), []byte(strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	args := append([]string{
		"--etcd-servers=" + o.EtcdURL,
		"--bind-address=" + bind, fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file=" + pki("apiserver.crt"), "--tls-private-key-file=" + pki("apiserver.key"),
		"--cert-dir=" + o.PKIDir,
		"--token-auth-file=" + pki("tokens.csv"),
		"--authorization-mode=" + authz,
		"--service-account-key-file=" + pki("sa.pub"),
		"--service-account-signing-key-file=" + pki("sa.key"),
		"--service-account-issuer=" + s.URL,
		"--service-cluster-ip-range=" + ipRange,
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}, o.Args...)
	if s.Process, err = g.Spawn("kube-apiserver", o.Bin, nil, args...); err != nil {
		return nil, err
	}
	hc := s.HTTPClient()
	if err := WaitReady(ctx, s.Process, 2*time.Minute, func(ctx context.Context) error {
		return HTTPOK(ctx, hc, s.URL+"/readyz", s.AdminToken)
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// HTTPClient trusts exactly the apiserver's certificate.
func (s *APIServer) HTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
