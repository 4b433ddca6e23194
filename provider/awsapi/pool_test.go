package awsapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// TestIdentitiesShareOneConnectionPool: clients of many identities reuse
// connections from one pool. Left to the SDK, each client builds its own
// transport, and every identity leaves idle connections (and their
// goroutines) behind.
func TestIdentitiesShareOneConnectionPool(t *testing.T) {
	for name, caBundle := range map[string]bool{"default": false, "custom CA bundle": true} {
		t.Run(name, func(t *testing.T) {
			fake := fakeaws.New(fakeaws.Options{})
			ts := httptest.NewUnstartedServer(fake.Handler())
			var opened atomic.Int64
			ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					opened.Add(1)
				}
			}
			ts.Start()
			t.Cleanup(func() { fake.Close(); ts.Close() })
			t.Setenv("AWS_ENDPOINT_URL", ts.URL)
			t.Setenv("AWS_CA_BUNDLE", "")
			if caBundle {
				// The shared config builds the HTTP client itself then.
				t.Setenv("AWS_CA_BUNDLE", writeCA(t, ts))
			}
			cfg, err := LoadConfig(context.Background(), Settings{Region: "us-east-1"})
			if err != nil {
				t.Fatal(err)
			}
			fake.PutSecretString("us-east-1", "a", "v")
			cache := NewClientCache(cfg, 0)
			var first aws.HTTPClient
			for i := range 50 {
				id := fakeaws.AllowAll(fmt.Sprintf("AKID%03d", i), "s")
				fake.AddIdentity(id)
				cl := cache.For(context.Background(), id.AccessKeyID, credentials.NewStaticCredentialsProvider(id.AccessKeyID, "s", ""))
				sm := cl.SecretsManager("us-east-1").(*secretsmanager.Client)
				if first == nil {
					first = sm.Options().HTTPClient
				} else if sm.Options().HTTPClient != first {
					t.Fatal("two identities' clients have different HTTP clients")
				}
				if _, err := sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("a")}); err != nil {
					t.Fatal(err)
				}
			}
			// Without a shared pool it is one connection per identity (50).
			// A shared pool reuses one or two; on a loaded machine (-race,
			// other builds) an idle connection is sometimes dropped and
			// redialled, so the bound leaves room for that, far below 50.
			if n := opened.Load(); n > 25 {
				t.Errorf("50 sequential calls of 50 identities opened %d connections; they should reuse a few", n)
			}
		})
	}
}

// writeCA writes the test server's certificate as a CA bundle (the server
// is plain HTTP; only the SDK's handling of the setting matters here).
func writeCA(t *testing.T, _ any) string {
	t.Helper()
	path := t.TempDir() + "/ca.pem"
	const pem = "-----BEGIN CERTIFICATE-----\nMIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjASMRAw\nDgYDVQQKEwdBY21lIENvMB4XDTE3MTAyMDE5NDMwNloXDTE4MTAyMDE5NDMwNlow\nEjEQMA4GA1UEChMHQWNtZSBDbzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABD0d\n7VNhbWvZLWPuj/RtHFjvtJBEwOkhbN/BnnE8rnZR8+sbwnc/KhCk3FhnpHZnQz7B\n5aETbbIgmuvewdjvSBSjYzBhMA4GA1UdDwEB/wQEAwICpDATBgNVHSUEDDAKBggr\nBgEFBQcDATAPBgNVHRMBAf8EBTADAQH/MCkGA1UdEQQiMCCCDmxvY2FsaG9zdDo1\nNDUzgg4xMjcuMC4wLjE6NTQ1MzAKBggqhkjOPQQDAgNIADBFAiEA2zpJEPQyz6/l\nWf86aX6PepsntZv2GYlA5UpabfT2EZICICpJ5h/iI+i341gBmLiAFQOyTDT+/wQc\n6MF9+Yw1Yy0t\n-----END CERTIFICATE-----\n"
	if err := os.WriteFile(path, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
