// Package fakeaws is a wire-level fake of AWS Secrets Manager and SSM
// Parameter Store, with the STS and EKS Pod Identity pieces that hand out
// role credentials to Kubernetes workloads, for tests, benchmarks and demos.
//
// The unmodified aws-sdk-go-v2 clients talk to it through an endpoint
// override (BaseEndpoint or AWS_ENDPOINT_URL). It speaks the AWS JSON 1.1
// protocol (and STS's query protocol), verifies SigV4 signatures against
// registered identities, enforces a small IAM-like permission model,
// partitions data by the region in each request's credential scope, and can
// inject latency, throttling, server errors, hangs, connection resets and
// regional outages. Every call is recorded (without values or tokens) for
// assertions.
//
// In-process use:
//
//	srv, ts := fakeaws.NewTestServer(t)
//	srv.AddIdentity(fakeaws.AllowAll("AKIDTEST", "secret"))
//	srv.PutSecretString("us-east-1", "prod/db", `{"password":"x"}`)
//	cfg := fakeaws.AWSConfig(ts.URL, "us-east-1", "AKIDTEST", "secret", "")
//	client := secretsmanager.NewFromConfig(cfg)
//
// Workload identity: register roles (AddRole) and the keys of a token
// issuer (SetJWKS or SetJWKSURL, e.g. a kube-apiserver's /openid/v1/jwks).
// STS AssumeRoleWithWebIdentity (IRSA), AssumeRole (chaining) and the Pod
// Identity agent (PodIdentityAgent, with AddPodIdentityAssociation) then
// verify ServiceAccount tokens as AWS does and mint temporary credentials
// that Secrets Manager and SSM accept with the role's permissions only.
// Issuer mints such tokens in tests:
//
//	iss, _ := fakeaws.NewIssuer("https://oidc.example")
//	_ = srv.SetJWKS(iss.JWKS())
//	_ = srv.AddRole(fakeaws.Role{
//		ARN:             "arn:aws:iam::123456789012:role/app",
//		TrustedSubjects: []string{"system:serviceaccount:team-a:app"},
//		Actions:         []string{"secretsmanager:GetSecretValue"},
//		Resources:       []string{"arn:aws:secretsmanager:*:*:secret:app/*"},
//	})
//	token := iss.Token("system:serviceaccount:team-a:app", []string{"sts.amazonaws.com"}, time.Hour)
//
// The standalone server in cmd/fakeaws serves the same handler, seeded from
// a YAML file (see Seed).
package fakeaws
