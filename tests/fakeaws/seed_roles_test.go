package fakeaws_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

func TestSeedRolesAndAssociations(t *testing.T) {
	srv, ts := demoServer(t)
	iss := fakeaws.NewTestIssuer(t, issuerURL)
	if err := srv.SetJWKS(iss.JWKS()); err != nil {
		t.Fatal(err)
	}
	e := &agentEnv{fedEnv: &fedEnv{env: &env{srv: srv, ts: ts}, iss: iss}}
	e.v4 = serveHandler(t, srv, srv.PodIdentityAgent())
	ctx := context.Background()
	const demoRole = "arn:aws:iam::123456789012:role/demo-app"
	const demoSub = "system:serviceaccount:demo:app"

	// maxSessionDuration: 12h from the seed admits a 12-hour session.
	out, err := e.anonSTS(east).AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(demoRole), RoleSessionName: aws.String("demo"), DurationSeconds: aws.Int32(43200),
		WebIdentityToken: aws.String(iss.Token(demoSub, []string{stsAud}, time.Hour)),
	})
	if err != nil {
		t.Fatal(err)
	}
	irsa := creds{aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken)}
	if _, err := getSecretAs(ctx, e.env, irsa, "prod/db"); err != nil {
		t.Errorf("IRSA session: %v", err)
	}

	got, err := e.fetch(ctx, e.v4, iss.Token(demoSub, []string{podAud}, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := getSecretAs(ctx, e.env, creds{got.AccessKeyID, got.SecretAccessKey, got.SessionToken}, "prod/api-key"); err != nil {
		t.Errorf("Pod Identity session: %v", err)
	}
}
