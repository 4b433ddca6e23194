package auth

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// recordingTransport records the hosts asked and answers nothing: these
// tests are about where STS calls go, not what they return.
type recordingTransport struct {
	mu    sync.Mutex
	hosts []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Host)
	r.mu.Unlock()
	return nil, errors.New("recorded")
}

// TestSTSFollowsEndpointSettings proves that STS honours the same endpoint
// settings as the other AWS clients: regional endpoints, FIPS and custom
// endpoint URLs (AWS's own provider gets FIPS and custom endpoints wrong).
func TestSTSFollowsEndpointSettings(t *testing.T) {
	tests := map[string]struct {
		env  map[string]string
		opts []func(*config.LoadOptions) error
		want string
	}{
		"regional":                {want: "sts.eu-central-1.amazonaws.com"},
		"FIPS by option":          {opts: []func(*config.LoadOptions) error{config.WithUseFIPSEndpoint(aws.FIPSEndpointStateEnabled)}, want: "sts-fips.eu-central-1.amazonaws.com"},
		"FIPS by environment":     {env: map[string]string{"AWS_USE_FIPS_ENDPOINT": "true"}, want: "sts-fips.eu-central-1.amazonaws.com"},
		"custom endpoint for all": {env: map[string]string{"AWS_ENDPOINT_URL": "http://vpce.example:8443"}, want: "vpce.example:8443"},
		"custom endpoint for STS": {env: map[string]string{"AWS_ENDPOINT_URL": "http://other.example", "AWS_ENDPOINT_URL_STS": "http://sts-vpce.example"}, want: "sts-vpce.example"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_USE_FIPS_ENDPOINT", "AWS_PROFILE", "AWS_REGION", "AWS_CA_BUNDLE"} {
				t.Setenv(k, "")
			}
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			rt := &recordingTransport{}
			opts := append([]func(*config.LoadOptions) error{
				config.WithHTTPClient(&http.Client{Transport: rt}),
				config.WithRetryMaxAttempts(1),
			}, tc.opts...)
			cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			s := stsClients{base: cfg}
			if _, err := s.assumeRoleWithWebIdentity(context.Background(), "eu-central-1", "arn:aws:iam::111122223333:role/r", "s", "tok", "sub"); err == nil {
				t.Fatal("no error from a transport that answers nothing")
			}
			if len(rt.hosts) == 0 || rt.hosts[0] != tc.want {
				t.Errorf("STS called %v, want %s", rt.hosts, tc.want)
			}
		})
	}
}
