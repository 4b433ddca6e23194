package fakeaws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

func TestDemoSeed(t *testing.T) {
	srv, ts := demoServer(t)
	e := &env{srv: srv, ts: ts}
	demo := creds{"AKIDDEMO", "demo-secret-key", ""}
	ctx := context.Background()

	for _, region := range []string{east, west} {
		smc, ssmc := e.sm(region, demo), e.ssm(region, demo)

		cur, err := smc.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db")})
		if err != nil {
			t.Fatalf("%s: %v", region, err)
		}
		var db struct {
			Username, Password string
			Port               int
		}
		if err := json.Unmarshal([]byte(aws.ToString(cur.SecretString)), &db); err != nil || db.Password != "s3cr3t-demo" || db.Port != 5432 {
			t.Errorf("%s: prod/db = %+v (%v)", region, db, err)
		}
		prev, err := smc.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db"), VersionStage: aws.String("AWSPREVIOUS")})
		if err != nil || aws.ToString(prev.VersionId) != "11111111-1111-4111-8111-111111111111" {
			t.Errorf("%s: AWSPREVIOUS = %v, %v", region, prev, err)
		}
		cert, err := smc.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/tls-cert")})
		if err != nil || !bytes.HasPrefix(cert.SecretBinary, []byte("-----BEGIN CERTIFICATE-----")) {
			t.Errorf("%s: tls-cert = %q, %v", region, cert.SecretBinary, err)
		}
		if _, err := smc.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/api-key")}); err != nil {
			t.Errorf("%s: api-key: %v", region, err)
		}

		out, err := ssmc.GetParameters(ctx, &ssm.GetParametersInput{
			Names:          []string{"/app/prod/token:stable", "/app/prod/token", "/app/prod/db-host", "/app/prod/feature-flags"},
			WithDecryption: aws.Bool(true),
		})
		if err != nil || len(out.InvalidParameters) != 0 || len(out.Parameters) != 4 {
			t.Fatalf("%s: GetParameters = %+v, %v", region, out, err)
		}
		if v := aws.ToString(out.Parameters[0].Value); v != "demo-token-v1" || out.Parameters[0].Version != 1 {
			t.Errorf("%s: token:stable = %q v%d", region, v, out.Parameters[0].Version)
		}
		if v := aws.ToString(out.Parameters[1].Value); v != "demo-token-v2" || out.Parameters[1].Version != 2 {
			t.Errorf("%s: token = %q v%d", region, v, out.Parameters[1].Version)
		}
	}
}

func TestSeedSecretVersionsAndTags(t *testing.T) {
	const doc = `
identities:
  - accessKeyId: AKIDSEED
    secretAccessKey: seed-secret
    name: arn:aws:sts::123456789012:assumed-role/seeded/s
    actions: [secretsmanager:GetSecretValue]
    resources: ["arn:aws:secretsmanager:*:*:secret:app/*"]
    statements:
      - actions: [secretsmanager:BatchGetSecretValue, secretsmanager:ListSecrets]
        resources: ["*"]
secrets:
  - region: eu-west-1
    name: app/rotating
    tags: {team: core}
    versions:
      - {versionId: v1, string: one}
      - {versionId: v2, string: two}
      - {versionId: v3, string: three, stages: [AWSPENDING]}
  - region: eu-west-1
    name: app/unset
parameters:
  - region: eu-west-1
    name: /x
    values: [a, b, c]
    labels: {prod: 2, canary: 3}
`
	seed, err := fakeaws.LoadSeed(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	srv, ts := fakeaws.NewTestServer(t)
	if err := srv.ApplySeed(seed); err != nil {
		t.Fatal(err)
	}
	stages, _ := srv.SecretVersionStages("eu-west-1", "app/rotating")
	want := map[string][]string{"v1": {"AWSPREVIOUS"}, "v2": {"AWSCURRENT"}, "v3": {"AWSPENDING"}}
	if len(stages) != 3 || stages["v1"][0] != want["v1"][0] || stages["v2"][0] != want["v2"][0] || stages["v3"][0] != want["v3"][0] {
		t.Errorf("stages = %v, want %v", stages, want)
	}

	e := &env{srv: srv, ts: ts}
	out, err := e.sm("eu-west-1", creds{"AKIDSEED", "seed-secret", ""}).BatchGetSecretValue(context.Background(), &secretsmanager.BatchGetSecretValueInput{
		Filters: []smtypes.Filter{{Key: smtypes.FilterNameStringTypeTagKey, Values: []string{"team"}}},
	})
	if err != nil || len(out.SecretValues) != 1 || aws.ToString(out.SecretValues[0].SecretString) != "two" {
		t.Errorf("batch by tag = %+v, %v", out, err)
	}

	srv.AddIdentity(fakeaws.AllowAll(adminKey, adminPass))
	for sel, want := range map[string]string{"/x": "c", "/x:prod": "b", "/x:canary": "c", "/x:1": "a"} {
		p, err := e.ssm("eu-west-1", admin).GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(sel)})
		if err != nil || aws.ToString(p.Parameter.Value) != want {
			t.Errorf("%s = %v, %v; want %q", sel, p, err, want)
		}
	}
	_, err = e.sm("eu-west-1", admin).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/unset")})
	wantCode(t, err, "ResourceNotFoundException")
}

func TestLoadSeedErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", "secrets:\n  - region: r\n    name: n\n    strng: x\n", "strng"},
		{"no region", "secrets:\n  - name: n\n    string: x\n", "region"},
		{"both value forms", "secrets:\n  - region: r\n    name: n\n    string: x\n    versions: [{string: y}]\n", "not both"},
		{"bad base64", "secrets:\n  - region: r\n    name: n\n    binary: '!!!'\n", "base64"},
		{"version without value", "secrets:\n  - region: r\n    name: n\n    versions: [{versionId: a}]\n", "exactly one"},
		{"identity without key", "identities:\n  - secretAccessKey: x\n", "accessKeyId"},
		{"bad parameter type", "parameters:\n  - region: r\n    name: /p\n    type: Blob\n    value: x\n", "Blob"},
		{"parameter without value", "parameters:\n  - region: r\n    name: /p\n", "value"},
		{"label on missing version", "parameters:\n  - region: r\n    name: /p\n    values: [a]\n    labels: {l: 2}\n", "missing version"},
		{"invalid label", "parameters:\n  - region: r\n    name: /p\n    value: a\n    labels: {aws-x: 1}\n", "invalid label"},
		{"bad role ARN", "roles:\n  - arn: arn:aws:iam::123:user/x\n", "invalid role ARN"},
		{"bad duration", "roles:\n  - arn: arn:aws:iam::123456789012:role/r\n    maxSessionDuration: forever\n", "forever"},
		{"association without namespace", "podIdentityAssociations:\n  - serviceAccount: a\n    roleArn: arn:aws:iam::123456789012:role/r\n", "namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fakeaws.LoadSeed(strings.NewReader(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
	if s, err := fakeaws.LoadSeed(strings.NewReader("")); err != nil || s == nil {
		t.Errorf("empty seed: %v", err)
	}
}

// demoServer is a test server seeded with testdata/demo-seed.yaml, the
// seed `make demo` uses.
func demoServer(t *testing.T) (*fakeaws.Server, *httptest.Server) {
	t.Helper()
	f, err := os.Open("testdata/demo-seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seed, err := fakeaws.LoadSeed(f)
	if err != nil {
		t.Fatal(err)
	}
	srv, ts := fakeaws.NewTestServer(t)
	if err := srv.ApplySeed(seed); err != nil {
		t.Fatal(err)
	}
	return srv, ts
}
