package fakeaws_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

func TestAuthenticationFailures(t *testing.T) {
	e := newEnv(t)
	e.srv.PutSecretString(east, "s", "v")
	e.srv.PutParameter(east, "/p", "v", "String")
	withToken := fakeaws.AllowAll("ASIATEMP", "temp-secret")
	withToken.SessionToken = "session-token-1"
	e.srv.AddIdentity(withToken)
	expired := fakeaws.AllowAll("ASIAEXPIRED", "old-secret")
	expired.SessionToken = "old-token"
	expired.Expires = time.Now().Add(-time.Minute)
	e.srv.AddIdentity(expired)

	tests := []struct {
		name string
		c    creds
		code string
	}{
		{"valid long-term key", admin, ""},
		{"valid session credentials", creds{"ASIATEMP", "temp-secret", "session-token-1"}, ""},
		{"wrong secret key", creds{adminKey, "not-the-secret", ""}, "InvalidSignatureException"},
		{"unknown access key", creds{"AKIDUNKNOWN", "whatever", ""}, "UnrecognizedClientException"},
		{"missing session token", creds{"ASIATEMP", "temp-secret", ""}, "UnrecognizedClientException"},
		{"wrong session token", creds{"ASIATEMP", "temp-secret", "session-token-2"}, "UnrecognizedClientException"},
		{"token on a long-term key", creds{adminKey, adminPass, "unexpected"}, "UnrecognizedClientException"},
		{"expired credentials", creds{"ASIAEXPIRED", "old-secret", "old-token"}, "ExpiredTokenException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			_, err := e.sm(east, tc.c).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
			wantCode(t, err, tc.code)
			if tc.code != "" && httpStatus(err) != http.StatusBadRequest {
				t.Errorf("HTTP status = %d, want 400", httpStatus(err))
			}
			_, err = e.ssm(east, tc.c).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/p")})
			wantCode(t, err, tc.code)
		})
	}

	// Removing an identity revokes it at once.
	e.srv.RemoveIdentity("ASIATEMP")
	_, err := e.sm(east, creds{"ASIATEMP", "temp-secret", "session-token-1"}).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
	wantCode(t, err, "UnrecognizedClientException")
}

func TestUnsignedAndUnknownRequests(t *testing.T) {
	e := newEnv(t)
	post := func(target, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", target)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType") + " " + string(b)
	}
	for _, tc := range []struct {
		name, target, auth, want string
	}{
		{"no Authorization", "secretsmanager.GetSecretValue", "", "MissingAuthenticationTokenException"},
		{"malformed Authorization", "AmazonSSM.GetParameter", "AWS4-HMAC-SHA256 Credential=x", "IncompleteSignatureException"},
		{"unknown target", "Bogus.Op", "", "UnknownOperationException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(tc.target, tc.auth)
			if status != http.StatusBadRequest || !strings.Contains(body, tc.want) || !strings.Contains(body, `"__type":"`+tc.want) {
				t.Errorf("got %d %s, want 400 %s", status, body, tc.want)
			}
		})
	}
	// The SDK with valid credentials but an operation the fake lacks.
	_, err := e.sm(east, admin).GetRandomPassword(context.Background(), &secretsmanager.GetRandomPasswordInput{})
	wantCode(t, err, "UnknownOperationException")
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	e.srv.PutSecretString(east, "app/db", "ok")
	e.srv.PutSecretString(east, "other/db", "no")
	e.srv.PutParameter(east, "/app/a", "a", "String")
	e.srv.PutParameter(east, "/app/b", "b", "String")
	e.srv.PutParameter(east, "/other/c", "c", "String")
	const principal = "arn:aws:sts::123456789012:assumed-role/app/session-1"
	e.srv.AddIdentity(fakeaws.Identity{
		AccessKeyID: "AKIDAPP", SecretAccessKey: "app-secret", ARN: principal,
		Actions: []string{"secretsmanager:GetSecretValue", "ssm:GetParameter*"},
		Resources: []string{
			"arn:aws:secretsmanager:*:*:secret:app/*",
			"arn:aws:ssm:*:*:parameter/app/*",
			"arn:aws:ssm:*:*:parameter/app", // the path resource of GetParametersByPath
		},
	})
	app := creds{"AKIDAPP", "app-secret", ""}
	smc, ssmc := e.sm(east, app), e.ssm(east, app)
	ctx := context.Background()

	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"allowed secret", func() error {
			_, err := smc.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")})
			return err
		}, ""},
		{"denied secret", func() error {
			_, err := smc.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("other/db")})
			return err
		}, "AccessDeniedException"},
		// Denial does not depend on existence, so it cannot be used to probe.
		{"denied missing secret", func() error {
			_, err := smc.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("other/none")})
			return err
		}, "AccessDeniedException"},
		{"allowed missing secret", func() error {
			_, err := smc.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/none")})
			return err
		}, "ResourceNotFoundException"},
		{"action not granted", func() error {
			_, err := smc.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app/db")})
			return err
		}, "AccessDeniedException"},
		{"allowed parameters", func() error {
			_, err := ssmc.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/a", "/app/b", "/app/missing"}})
			return err
		}, ""},
		{"one denied parameter fails the call", func() error {
			_, err := ssmc.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/a", "/other/c"}})
			return err
		}, "AccessDeniedException"},
		{"allowed path", func() error {
			_, err := ssmc.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/app")})
			return err
		}, ""},
		{"denied path", func() error {
			_, err := ssmc.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/other")})
			return err
		}, "AccessDeniedException"},
		{"denied write", func() error {
			_, err := ssmc.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/a"), Value: aws.String("x"), Overwrite: aws.Bool(true)})
			return err
		}, "AccessDeniedException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			wantCode(t, err, tc.code)
			if tc.code == "AccessDeniedException" {
				if status := httpStatus(err); status != http.StatusBadRequest {
					t.Errorf("status = %d, want 400", status)
				}
				if !strings.HasPrefix(errMessage(err), "User: "+principal+" is not authorized to perform: ") {
					t.Errorf("message = %q", errMessage(err))
				}
			}
		})
	}

	_, err := smc.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("other/db")})
	want := "User: " + principal + " is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:other/db-"
	if msg := errMessage(err); !strings.HasPrefix(msg, want) || !strings.HasSuffix(msg, " because no identity-based policy allows the secretsmanager:GetSecretValue action") {
		t.Errorf("message = %q", msg)
	}
	_, err = ssmc.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/a", "/other/c"}})
	if msg := errMessage(err); !strings.Contains(msg, "ssm:GetParameters on resource: arn:aws:ssm:us-east-1:123456789012:parameter/other/c ") {
		t.Errorf("message = %q", msg)
	}
}

func TestRegionPartitioning(t *testing.T) {
	e := newEnv(t)
	e.srv.PutSecretString(east, "only-east", "e")
	e.srv.PutSecretString(west, "both", "w")
	e.srv.PutSecretString(east, "both", "e")
	e.srv.PutParameter(east, "/only-east", "e", "String")
	ctx := context.Background()

	_, err := e.sm(west, admin).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("only-east")})
	wantCode(t, err, "ResourceNotFoundException")
	for region, want := range map[string]string{east: "e", west: "w"} {
		out, err := e.sm(region, admin).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("both")})
		if err != nil || aws.ToString(out.SecretString) != want {
			t.Errorf("%s: got %v %v, want %q", region, out, err, want)
		}
		if !strings.Contains(aws.ToString(out.ARN), ":"+region+":") {
			t.Errorf("%s: ARN %q has wrong region", region, aws.ToString(out.ARN))
		}
	}
	_, err = e.ssm(west, admin).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/only-east")})
	wantCode(t, err, "ParameterNotFound")
	// A secret ARN from another region does not resolve either.
	arn, _ := e.srv.PutSecretString(east, "arn-test", "x")
	_, err = e.sm(west, admin).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	wantCode(t, err, "ResourceNotFoundException")
}
