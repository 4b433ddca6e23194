package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// oidcFlags configure how web identity and ServiceAccount tokens are
// verified: with a static JWKS file and/or keys fetched from a
// kube-apiserver.
type oidcFlags struct {
	jwksFile      string
	jwksURL       string
	jwksTokenFile string
	jwksCAFile    string
	jwksInsecure  bool
	issuer        string
}

func (o *oidcFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.jwksFile, "jwks-file", "", "JSON Web Key Set to verify web identity and ServiceAccount tokens with")
	fs.StringVar(&o.jwksURL, "jwks-url", "", "fetch verification keys from this URL, e.g. https://<apiserver>/openid/v1/jwks (refetched on unknown key ids)")
	fs.StringVar(&o.jwksTokenFile, "jwks-bearer-token-file", "", "send the token in this file as a bearer token to --jwks-url; re-read on every fetch, so rotated projected tokens keep working")
	fs.StringVar(&o.jwksCAFile, "jwks-ca-file", "", "PEM CA certificates that --jwks-url's server certificate must chain to")
	fs.BoolVar(&o.jwksInsecure, "jwks-insecure", false, "do not verify --jwks-url's TLS certificate")
	fs.StringVar(&o.issuer, "issuer", "", "accept only tokens whose iss claim is this issuer")
}

func (o *oidcFlags) apply(srv *fakeaws.Server) error {
	if o.jwksURL == "" && (o.jwksTokenFile != "" || o.jwksCAFile != "" || o.jwksInsecure) {
		return errors.New("--jwks-bearer-token-file, --jwks-ca-file and --jwks-insecure need --jwks-url")
	}
	if o.jwksCAFile != "" && o.jwksInsecure {
		return errors.New("--jwks-ca-file and --jwks-insecure are mutually exclusive")
	}
	if o.issuer != "" {
		srv.SetIssuer(o.issuer)
	}
	if o.jwksFile != "" {
		b, err := os.ReadFile(o.jwksFile)
		if err != nil {
			return err
		}
		if err := srv.SetJWKS(b); err != nil {
			return fmt.Errorf("%s: %w", o.jwksFile, err)
		}
	}
	if o.jwksURL != "" {
		client, err := o.httpClient()
		if err != nil {
			return err
		}
		srv.SetJWKSURL(o.jwksURL, "", client)
	}
	return nil
}

func (o *oidcFlags) httpClient() (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case o.jwksInsecure:
		tlsConfig.InsecureSkipVerify = true // explicitly requested, for self-signed apiservers
	case o.jwksCAFile != "":
		pem, err := os.ReadFile(o.jwksCAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", o.jwksCAFile)
		}
		tlsConfig.RootCAs = pool
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	var rt http.RoundTripper = transport
	if o.jwksTokenFile != "" {
		// Fail at startup, not at the first token, if the file is unreadable.
		if _, err := readToken(o.jwksTokenFile); err != nil {
			return nil, err
		}
		rt = &bearerFileTransport{path: o.jwksTokenFile, base: transport}
	}
	return &http.Client{Transport: rt, Timeout: 10 * time.Second}, nil
}

// bearerFileTransport authenticates each request with the token currently
// in a file: the kubelet rotates projected ServiceAccount tokens in place.
type bearerFileTransport struct {
	path string
	base http.RoundTripper
}

func (t *bearerFileTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	token, err := readToken(t.path)
	if err != nil {
		if r.Body != nil {
			r.Body.Close() // RoundTrippers own the body, even on error
		}
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return t.base.RoundTrip(r)
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read bearer token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("read bearer token: %s is empty", path)
	}
	return token, nil
}
