// Package fakeaws is a wire-level fake of AWS Secrets Manager and SSM
// Parameter Store for tests, benchmarks and demos.
//
// The unmodified aws-sdk-go-v2 clients talk to it through an endpoint
// override (BaseEndpoint or AWS_ENDPOINT_URL). It speaks the AWS JSON 1.1
// protocol, verifies SigV4 signatures against registered identities,
// enforces a small IAM-like permission model, partitions data by the region
// in each request's credential scope, and can inject latency, throttling,
// server errors, hangs, connection resets and regional outages. Every call is
// recorded (without values) for assertions.
//
// In-process use:
//
//	srv, ts := fakeaws.NewTestServer(t)
//	srv.AddIdentity(fakeaws.AllowAll("AKIDTEST", "secret"))
//	srv.PutSecretString("us-east-1", "prod/db", `{"password":"x"}`)
//	cfg := fakeaws.AWSConfig(ts.URL, "us-east-1", "AKIDTEST", "secret", "")
//	client := secretsmanager.NewFromConfig(cfg)
//
// The standalone server in cmd/fakeaws serves the same handler, seeded from
// a YAML file (see Seed).
package fakeaws
