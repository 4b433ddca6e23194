package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// The AWS provider (ASCP), measured beside coffer against the same fakes.
// Its binary comes from ASCP_BIN (make bench ASCP_BIN=...); it is never
// built or kept in this repository.
//
// ASCP reads the Kubernetes API with in-cluster configuration (fixed file
// paths under /var/run/secrets) and builds its STS client without the
// SDK's endpoint settings, so it is run as it would be in a pod: in a mount
// namespace of its own where /run holds the ServiceAccount files for a TLS
// copy of the bench's Kubernetes API, with Secrets Manager and Parameter
// Store at the fake through AWS_ENDPOINT_URL, and STS reached at its real
// host name through an HTTPS proxy on loopback that hands the connection
// to the fake, with a certificate of a CA trusted through SSL_CERT_FILE.
// It gets coffer's client-side Kubernetes API limits (20/s, bursts of 40;
// its own defaults are 5 and 10), so that neither waits on its own limiter
// where the other does not.

// peerHowTo says how to measure ASCP when no binary is given.
const peerHowTo = "no ASCP_BIN given: the AWS provider column is empty. Build it with ../shared/peers/build-ascp.sh /tmp/ascp and run make bench ASCP_BIN=/tmp/ascp (as root: it runs in a mount namespace of its own)"

func peerBinary() string { return os.Getenv("ASCP_BIN") }

// subject is the provider a scenario measures: coffer, or ASCP (which
// takes none of coffer's flags).
type subject struct{ peer bool }

var (
	cofferSubject = subject{}
	peerSubject   = subject{peer: true}
)

func (s subject) start(t testing.TB, e *env, cofferFlags ...string) *coffer {
	if s.peer {
		return startPeer(t, e)
	}
	return startCoffer(t, e, cofferFlags...)
}

// startPeer starts ASCP against e and connects to it as the driver does.
func startPeer(t testing.TB, e *env) *coffer {
	dir, err := os.MkdirTemp("", "ascp-bench")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ca, caPEM := newCA(t)

	// The Kubernetes API over TLS, as in-cluster configuration wants it.
	kube := httptest.NewTLSServer(e.kube.server.Config.Handler)
	t.Cleanup(kube.Close)
	sa := filepath.Join(dir, "serviceaccount")
	if err := os.MkdirAll(sa, 0o700); err != nil {
		t.Fatal(err)
	}
	kubeCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kube.Certificate().Raw})
	for name, data := range map[string][]byte{"ca.crt": kubeCA, "token": []byte("bench"), "namespace": []byte("kube-system")} {
		if err := os.WriteFile(filepath.Join(sa, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The fake again, over TLS with a certificate for AWS host names.
	awsTLS := httptest.NewUnstartedServer(e.fake.Handler())
	awsTLS.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "*.amazonaws.com", "*."+region+".amazonaws.com")}}
	awsTLS.StartTLS()
	t.Cleanup(awsTLS.Close)
	proxy := httptest.NewServer(connectProxy(awsTLS.Listener.Addr().String()))
	t.Cleanup(proxy.Close)
	caFile := filepath.Join(dir, "aws-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	logFile, err := os.Create(filepath.Join(dir, "ascp.log"))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(kube.Listener.Addr().String())
	script := `set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/secrets/kubernetes.io
cp -r "$SA_DIR" /run/secrets/kubernetes.io/serviceaccount
exec "$ASCP" --provider-volume "$SOCKET_DIR" --driver-writes-secrets --qps 20 --burst 40`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(),
		"ASCP="+peerBinary(), "SA_DIR="+sa, "SOCKET_DIR="+dir,
		"KUBERNETES_SERVICE_HOST="+host, "KUBERNETES_SERVICE_PORT="+port,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER="+e.url, "AWS_ENDPOINT_URL_SSM="+e.url,
		"HTTPS_PROXY="+proxy.URL, "NO_PROXY=127.0.0.1,localhost", "SSL_CERT_FILE="+caFile,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_REGION=")
	p := startProcess(t, cmd, dir, logFile, cmd.Args)
	p.targets = filepath.Join(dir, "pods")
	return p
}

// connectProxy answers CONNECT by piping the connection to target, whatever
// host was asked for.
func connectProxy(target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		upstream, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		client, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")
		done := make(chan struct{}, 2)
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			done <- struct{}{}
		}
		go pipe(upstream, client)
		go pipe(client, upstream)
		<-done
		client.Close()
		upstream.Close()
		<-done
	})
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB) (*testCA, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "coffer bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func (ca *testCA) issue(t testing.TB, names ...string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: strings.Join(names, ",")}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestPeerMounts checks that ASCP runs against the fakes: one mount of
// Secrets Manager and Parameter Store objects, as in the report.
func TestPeerMounts(t *testing.T) {
	if peerBinary() == "" {
		t.Skip(peerHowTo)
	}
	e := newEnv(t, 0)
	p := startPeer(t, e)
	objects := e.objects("peer", 2, 2)
	e.serviceAccount(t, "peer", "app")
	resp, _, err := p.mount(e.attrs("peer", "app", "pod", objects), nil)
	if err != nil {
		log, _ := os.ReadFile(p.stderr.Name())
		t.Fatalf("ASCP mount: %v\n%s", err, log)
	}
	if len(resp.Files) != 4 {
		t.Errorf("ASCP returned %d files, want 4", len(resp.Files))
	}
	if n := e.calls(fakeaws.ServiceSTS, ""); n != 1 {
		t.Errorf("ASCP made %d STS calls through the proxy, want 1", n)
	}
}
