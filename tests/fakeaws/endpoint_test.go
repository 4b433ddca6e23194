package fakeaws_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// TestEnvironmentEndpointOverride checks the path the end-to-end suite
// uses: an unmodified default SDK configuration pointed at the fake only
// through environment variables.
func TestEnvironmentEndpointOverride(t *testing.T) {
	e := newEnv(t)
	e.srv.PutSecretString(west, "env/secret", "from-env")
	e.srv.PutParameter(west, "/env/param", "p", "String")
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", e.ts.URL)
	t.Setenv("AWS_REGION", west)
	t.Setenv("AWS_ACCESS_KEY_ID", adminKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", adminPass)

	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("env/secret")})
	if err != nil || aws.ToString(out.SecretString) != "from-env" {
		t.Fatalf("GetSecretValue = %v, %v", out, err)
	}
	if _, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/env/param")}); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.CountCalls(func(c fakeaws.Call) bool { return c.Region == west && c.Outcome == fakeaws.OutcomeOK }); n != 2 {
		t.Errorf("%d ok calls in %s, want 2", n, west)
	}
}

// BenchmarkGetSecretValue measures the fake's overhead per SDK round trip,
// so benchmarks of the code under test can tell the two apart.
func BenchmarkGetSecretValue(b *testing.B) {
	srv, ts := fakeaws.NewTestServer(b)
	srv.AddIdentity(fakeaws.AllowAll(adminKey, adminPass))
	for i := range 100 {
		srv.PutSecretString(east, fmt.Sprintf("bench/%d", i), "value")
	}
	client := secretsmanager.NewFromConfig(fakeaws.AWSConfig(ts.URL, east, adminKey, adminPass, ""))
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(fmt.Sprintf("bench/%d", i%100))}); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.StopTimer()
	srv.ResetCalls()
}
