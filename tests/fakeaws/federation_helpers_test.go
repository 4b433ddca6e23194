package fakeaws_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

const (
	issuerURL = "https://oidc.eks.us-east-1.amazonaws.com/id/FAKE"
	account   = fakeaws.DefaultAccountID
	roleA     = "arn:aws:iam::" + account + ":role/team-a"
	roleB     = "arn:aws:iam::" + account + ":role/team-b"
	subA      = "system:serviceaccount:team-a:app"
	subB      = "system:serviceaccount:team-b:app"
	stsAud    = "sts.amazonaws.com"
	podAud    = "pods.eks.amazonaws.com"
)

// fedEnv is a fake with an OIDC issuer and two isolated team roles, each
// allowed to read only its own secret.
type fedEnv struct {
	*env
	iss *fakeaws.Issuer
}

func newFedEnv(t *testing.T, opts ...fakeaws.Options) *fedEnv {
	t.Helper()
	srv, ts := fakeaws.NewTestServer(t, opts...)
	srv.AddIdentity(fakeaws.AllowAll(adminKey, adminPass))
	e := &fedEnv{env: &env{srv: srv, ts: ts}, iss: fakeaws.NewTestIssuer(t, issuerURL)}
	if err := srv.SetJWKS(e.iss.JWKS()); err != nil {
		t.Fatal(err)
	}
	srv.SetIssuer(issuerURL)
	for _, r := range []struct{ arn, sub, secret string }{{roleA, subA, "team-a/db"}, {roleB, subB, "team-b/db"}} {
		mustAddRole(t, srv, fakeaws.Role{
			ARN:             r.arn,
			TrustedSubjects: []string{r.sub},
			Actions:         []string{"secretsmanager:GetSecretValue"},
			Resources:       []string{"arn:aws:secretsmanager:*:*:secret:" + r.secret + "-*"},
		})
		srv.PutSecretString(east, r.secret, "value of "+r.secret)
	}
	return e
}

func mustAddRole(t *testing.T, srv *fakeaws.Server, r fakeaws.Role) {
	t.Helper()
	if err := srv.AddRole(r); err != nil {
		t.Fatal(err)
	}
}

// anonSTS is an STS client as stscreds uses it for web identity: no
// credentials (AssumeRoleWithWebIdentity is unsigned anyway).
func (e *env) anonSTS(region string) *sts.Client {
	cfg := fakeaws.AWSConfig(e.ts.URL, region, "", "", "")
	cfg.Credentials = aws.AnonymousCredentials{}
	return sts.NewFromConfig(cfg)
}

func (e *env) sts(region string, c creds) *sts.Client {
	return sts.NewFromConfig(fakeaws.AWSConfig(e.ts.URL, region, c.key, c.secret, c.token))
}

// tokenString adapts a token to stscreds.IdentityTokenRetriever.
type tokenString string

func (s tokenString) GetIdentityToken() ([]byte, error) { return []byte(s), nil }

// federate exchanges a token for role credentials the way an IRSA pod does.
func (e *env) federate(ctx context.Context, role, token string) (creds, error) {
	p := stscreds.NewWebIdentityRoleProvider(e.anonSTS(east), role, tokenString(token), func(o *stscreds.WebIdentityRoleOptions) {
		o.RoleSessionName = "coffer-test"
	})
	c, err := p.Retrieve(ctx)
	return creds{c.AccessKeyID, c.SecretAccessKey, c.SessionToken}, err
}

func (e *fedEnv) mustFederate(t *testing.T, role, sub string) creds {
	t.Helper()
	c, err := e.federate(context.Background(), role, e.iss.Token(sub, []string{stsAud}, time.Hour))
	if err != nil {
		t.Fatalf("federate %s as %s: %v", role, sub, err)
	}
	return c
}

func getSecretAs(ctx context.Context, e *env, c creds, name string) (string, error) {
	out, err := e.sm(east, c).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.SecretString), nil
}

// errorAs reports whether err wraps a T, e.g. *types.ExpiredTokenException.
func errorAs[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}
