package fakeaws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/coffer-csi/coffer/internal/sdkhttp"
)

// NewTestServer starts a fake on a loopback httptest server that is shut
// down when the test ends. It has no identities and no data.
func NewTestServer(t testing.TB, opts ...Options) (*Server, *httptest.Server) {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s := New(o)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		// Release hung requests first: httptest.Server.Close waits for
		// every in-flight handler.
		s.Close()
		ts.Close()
	})
	return s, ts
}

// AWSConfig returns an SDK configuration that sends requests to endpoint
// (e.g. an httptest server URL), signed with static credentials for region.
// Retries are disabled so that injected faults are visible to the caller;
// set RetryMaxAttempts to test retry behaviour.
func AWSConfig(endpoint, region, accessKeyID, secretAccessKey, sessionToken string) aws.Config {
	return aws.Config{
		Region:           region,
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, sessionToken),
		RetryMaxAttempts: 1,
		HTTPClient:       sdkhttp.New(),
	}
}

// NewTestIssuer returns an issuer with a fresh P-256 key, for tests that
// need a cluster's token issuer, or an attacker's. It is the one way tests
// make an issuer: P-256 keys take microseconds, RSA keys (NewIssuer) tens
// of milliseconds under the race detector.
func NewTestIssuer(t testing.TB, issuerURL string) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewIssuerWithKey(issuerURL, key)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}
