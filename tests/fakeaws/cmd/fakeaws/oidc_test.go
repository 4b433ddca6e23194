package main

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

const (
	demoRole = "arn:aws:iam::123456789012:role/demo-app"
	demoSub  = "system:serviceaccount:demo:app"
)

// start runs the command until the test ends and returns the contents of
// the given ready files once they appear.
func start(t *testing.T, args []string, readyFiles ...string) []string {
	t.Helper()
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if logs := stderr.String(); strings.Contains(logs, "eyJ") {
			t.Errorf("a token leaked into the logs:\n%s", logs)
		}
	})
	urls := make([]string, len(readyFiles))
	deadline := time.Now().Add(10 * time.Second)
	for i, f := range readyFiles {
		for urls[i] == "" {
			if b, err := os.ReadFile(f); err == nil {
				urls[i] = strings.TrimSpace(string(b))
				continue
			}
			select {
			case err := <-done:
				done <- err // for the cleanup
				t.Fatalf("run exited early: %v\n%s", err, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never appeared; stderr:\n%s", f, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return urls
}

func anonSTS(url string) *sts.Client {
	cfg := fakeaws.AWSConfig(url, "us-east-1", "", "", "")
	cfg.Credentials = aws.AnonymousCredentials{}
	return sts.NewFromConfig(cfg)
}

func TestRunWithJWKSFileAndPodIdentityAgent(t *testing.T) {
	dir := t.TempDir()
	iss := fakeaws.NewTestIssuer(t, "https://issuer.example")
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, iss.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	ready, agentReady := filepath.Join(dir, "url"), filepath.Join(dir, "agent-url")
	urls := start(t, []string{"--seed", "../../testdata/demo-seed.yaml", "--ready-file", ready,
		"--jwks-file", jwksFile, "--issuer", iss.URL(),
		"--pod-identity-addr", "127.0.0.1:0", "--pod-identity-ready-file", agentReady}, ready, agentReady)
	url, agentURL := urls[0], urls[1]
	if !strings.HasPrefix(agentURL, "http://127.0.0.1:") || !strings.HasSuffix(agentURL, "/v1/credentials") || strings.HasPrefix(agentURL, url) {
		t.Errorf("agent URL %q (API %q)", agentURL, url)
	}
	ctx := context.Background()

	out, err := anonSTS(url).AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(demoRole), RoleSessionName: aws.String("cmd"),
		WebIdentityToken: aws.String(iss.Token(demoSub, []string{"sts.amazonaws.com"}, time.Hour)),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := out.Credentials
	sm := secretsmanager.NewFromConfig(fakeaws.AWSConfig(url, "us-east-1", aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)))
	if _, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db")}); err != nil {
		t.Errorf("IRSA credentials: %v", err)
	}

	wrongIssuer := fakeaws.NewTestIssuer(t, "https://other.example")
	_, err = anonSTS(url).AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(demoRole), RoleSessionName: aws.String("cmd"),
		WebIdentityToken: aws.String(wrongIssuer.Token(demoSub, []string{"sts.amazonaws.com"}, time.Hour)),
	})
	if err == nil {
		t.Error("a token from another issuer was accepted")
	}

	p := endpointcreds.New(agentURL, func(o *endpointcreds.Options) {
		o.AuthorizationToken = iss.Token(demoSub, []string{"pods.eks.amazonaws.com"}, time.Hour)
	})
	if creds, err := p.Retrieve(ctx); err != nil || creds.AccountID != "123456789012" {
		t.Errorf("agent: %+v, %v", creds, err)
	}
}

func TestRunWithJWKSURL(t *testing.T) {
	dir := t.TempDir()
	iss := fakeaws.NewTestIssuer(t, "https://kubernetes.default.svc")
	tokenFile := filepath.Join(dir, "token")
	var fetches atomic.Int32
	var wantToken atomic.Value
	wantToken.Store("token-1")
	apiserver := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+wantToken.Load().(string) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write(iss.JWKS())
	}))
	defer apiserver.Close()
	caFile := filepath.Join(dir, "ca.crt")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: apiserver.Certificate().Raw})
	for name, content := range map[string][]byte{caFile: caPEM, tokenFile: []byte("token-1\n")} {
		if err := os.WriteFile(name, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ready := filepath.Join(dir, "url")
	url := start(t, []string{"--seed", "../../testdata/demo-seed.yaml", "--ready-file", ready,
		"--jwks-url", apiserver.URL + "/openid/v1/jwks", "--jwks-bearer-token-file", tokenFile, "--jwks-ca-file", caFile}, ready)[0]

	federate := func(iss *fakeaws.Issuer) error {
		_, err := anonSTS(url).AssumeRoleWithWebIdentity(context.Background(), &sts.AssumeRoleWithWebIdentityInput{
			RoleArn: aws.String(demoRole), RoleSessionName: aws.String("cmd"),
			WebIdentityToken: aws.String(iss.Token(demoSub, []string{"sts.amazonaws.com"}, time.Hour)),
		})
		return err
	}
	if err := federate(iss); err != nil {
		t.Fatal(err)
	}
	// The kubelet rotated the projected token: the next fetch (forced by an
	// unknown kid) must use the new one.
	wantToken.Store("token-2")
	if err := os.WriteFile(tokenFile, []byte("token-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := federate(fakeaws.NewTestIssuer(t, "https://kubernetes.default.svc")); err == nil || !strings.Contains(err.Error(), "InvalidIdentityToken") {
		t.Errorf("unknown key: %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestRunRejectsBadOIDCFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--jwks-ca-file", "ca.crt"},
		{"--jwks-url", "https://x", "--jwks-insecure", "--jwks-ca-file", "ca.crt"},
		{"--jwks-url", "https://x", "--jwks-bearer-token-file", "/does/not/exist"},
		{"--jwks-file", "/does/not/exist"},
		{"--pod-identity-ready-file", "/tmp/x"},
	} {
		var out syncBuffer
		if err := run(context.Background(), args, &out, &out); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
