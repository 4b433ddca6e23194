package fakeaws

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestVerifySignatureMatchesSDKSigner cross-checks the verifier against the
// SDK's own signer over requests shaped unlike the JSON APIs (paths needing
// escaping, query strings, repeated and space-padded headers), then checks
// that tampering with any signed part is detected.
func TestVerifySignatureMatchesSDKSigner(t *testing.T) {
	const secretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	now := time.Now().UTC()

	tests := []struct {
		name   string
		url    string
		body   string
		header http.Header
		tamper func(r *http.Request, body *[]byte)
		want   string // "" = valid
	}{
		{name: "json post", url: "http://fake.local:4566/", body: `{"SecretId":"a"}`, header: http.Header{"X-Amz-Target": {"secretsmanager.GetSecretValue"}}},
		{name: "escaped path and query", url: "http://fake.local/a%20b/c~d/%C3%A9?z=1&a=x%20y&a=b&empty=", body: ""},
		{name: "query keys sharing a prefix", url: "http://fake.local/?a-b=2&a=1&A=3&a.b=%2F", body: ""},
		{name: "padded and repeated headers", url: "http://fake.local/", body: "x", header: http.Header{"X-Custom": {"  a   b  ", "c"}}},
		{name: "content sha header", url: "http://fake.local/", body: "payload", header: http.Header{"X-Amz-Content-Sha256": {sha256Hex([]byte("payload"))}}},
		{name: "tampered body", url: "http://fake.local/", body: `{"a":1}`, tamper: func(_ *http.Request, b *[]byte) { *b = []byte(`{"a":2}`) }, want: "InvalidSignatureException"},
		{name: "tampered signed header", url: "http://fake.local/", body: "{}", header: http.Header{"X-Amz-Target": {"secretsmanager.GetSecretValue"}},
			tamper: func(r *http.Request, _ *[]byte) { r.Header.Set("X-Amz-Target", "secretsmanager.DeleteSecret") }, want: "InvalidSignatureException"},
		{name: "tampered query", url: "http://fake.local/?a=1", tamper: func(r *http.Request, _ *[]byte) { r.URL.RawQuery = "a=2" }, want: "InvalidSignatureException"},
		{name: "tampered host", url: "http://fake.local/", tamper: func(r *http.Request, _ *[]byte) { r.Host = "evil.local" }, want: "InvalidSignatureException"},
		{name: "content sha mismatch", url: "http://fake.local/", body: "payload", header: http.Header{"X-Amz-Content-Sha256": {sha256Hex([]byte("other"))}}, want: "InvalidSignatureException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, tc.url, bytes.NewReader([]byte(tc.body)))
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range tc.header {
				req.Header[k] = vs
			}
			sum := sha256.Sum256([]byte(tc.body))
			creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: secretKey}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "secretsmanager", "eu-central-1", now); err != nil {
				t.Fatal(err)
			}

			// Replay what a server sees: re-parse the wire form of the request.
			var wire bytes.Buffer
			if err := req.Write(&wire); err != nil {
				t.Fatal(err)
			}
			srvReq, err := http.ReadRequest(bufio.NewReader(&wire))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(srvReq.Body)
			if tc.tamper != nil {
				tc.tamper(srvReq, &body)
			}

			auth, aerr := parseAuthorization(srvReq.Header.Get("Authorization"))
			if aerr != nil {
				t.Fatal(aerr)
			}
			if auth.Region != "eu-central-1" || auth.Service != "secretsmanager" || auth.AccessKeyID != "AKID" {
				t.Errorf("parsed scope %+v", auth)
			}
			got := ""
			if e := verifySignature(srvReq, body, auth, secretKey, now); e != nil {
				got = e.Code
			}
			if got != tc.want {
				t.Errorf("verify = %q, want %q", got, tc.want)
			}
			if tc.want == "" {
				if e := verifySignature(srvReq, body, auth, "other-key", now); e == nil {
					t.Error("verified with the wrong secret key")
				}
			}
		})
	}
}

func TestVerifySignatureClockSkew(t *testing.T) {
	now := time.Now().UTC()
	for _, tc := range []struct {
		name    string
		signed  time.Time
		wantErr bool
	}{
		{"in window", now.Add(-14 * time.Minute), false},
		{"too old", now.Add(-16 * time.Minute), true},
		{"too far ahead", now.Add(16 * time.Minute), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "http://fake.local/", nil)
			if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "k"}, req, sha256Hex(nil), "ssm", "us-east-1", tc.signed); err != nil {
				t.Fatal(err)
			}
			auth, _ := parseAuthorization(req.Header.Get("Authorization"))
			e := verifySignature(req, nil, auth, "k", now)
			if (e != nil) != tc.wantErr {
				t.Errorf("err = %v, wantErr %v", e, tc.wantErr)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "arn:aws:secretsmanager:us-east-1:1:secret:a/b", true},
		{"arn:aws:secretsmanager:*:*:secret:app/*", "arn:aws:secretsmanager:us-east-1:123:secret:app/db-AbCdEf", true},
		{"arn:aws:secretsmanager:*:*:secret:app/*", "arn:aws:secretsmanager:us-east-1:123:secret:other/db-AbCdEf", false},
		{"arn:aws:secretsmanager:*:*:secret:app/*", "arn:aws:secretsmanager:us-east-1:123:secret:app", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*b*b*", "abxxbyy", true},
		{"*b*b*", "abxx", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"a*", "", false},
		{"**a**", "xxa", true},
	}
	for _, tc := range tests {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestIdentityAllows(t *testing.T) {
	id := Identity{
		Actions:    []string{"SecretsManager:Get*"},
		Resources:  []string{"arn:aws:secretsmanager:*:*:secret:app/*"},
		Statements: []Statement{{Actions: []string{"secretsmanager:BatchGetSecretValue"}, Resources: []string{"*"}}},
	}
	tests := []struct {
		action, resource string
		want             bool
	}{
		{"secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:1:secret:app/x", true},
		{"secretsmanager:getsecretvalue", "arn:aws:secretsmanager:us-east-1:1:secret:app/x", true},
		{"secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:1:secret:db/x", false},
		{"secretsmanager:DescribeSecret", "arn:aws:secretsmanager:us-east-1:1:secret:app/x", false},
		{"secretsmanager:BatchGetSecretValue", "*", true},
		{"secretsmanager:ListSecrets", "*", false},
	}
	for _, tc := range tests {
		if got := id.allows(tc.action, tc.resource); got != tc.want {
			t.Errorf("allows(%s, %s) = %v, want %v", tc.action, tc.resource, got, tc.want)
		}
	}
}
