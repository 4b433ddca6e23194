package fakeaws_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

const (
	east      = "us-east-1"
	west      = "us-west-2"
	adminKey  = "AKIDADMIN"
	adminPass = "admin-secret-key"
)

// env is a fake server with an all-powerful identity registered.
type env struct {
	srv *fakeaws.Server
	ts  *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv, ts := fakeaws.NewTestServer(t)
	srv.AddIdentity(fakeaws.AllowAll(adminKey, adminPass))
	return &env{srv: srv, ts: ts}
}

// creds identifies the caller of a client.
type creds struct{ key, secret, token string }

var admin = creds{adminKey, adminPass, ""}

func (e *env) sm(region string, c creds) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(fakeaws.AWSConfig(e.ts.URL, region, c.key, c.secret, c.token))
}

func (e *env) ssm(region string, c creds) *ssm.Client {
	return ssm.NewFromConfig(fakeaws.AWSConfig(e.ts.URL, region, c.key, c.secret, c.token))
}

// errCode returns the AWS error code of err, "" for nil and "<non-API>" for
// transport errors.
func errCode(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "<non-API>"
}

func errMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

// httpStatus returns the HTTP status of a failed call, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := errCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

// httptestServer serves srv like NewTestServer does, for tests that build
// the Server themselves.
func httptestServer(t *testing.T, srv *fakeaws.Server) *httptest.Server {
	return serveHandler(t, srv, srv.Handler())
}

// serveHandler serves one of srv's handlers (Handler, RegionalHandler,
// PodIdentityAgent...) on its own loopback server.
func serveHandler(t *testing.T, srv *fakeaws.Server, h http.Handler) *httptest.Server {
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	return ts
}
