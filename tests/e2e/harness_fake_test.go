package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coffer-csi/coffer/tests/harness"
)

// awsEnv is the environment of processes that talk to the fake: nothing of
// the developer's own AWS configuration leaks in.
func (c *cluster) awsEnv() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + c.fakeURL,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + c.path("no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + c.path("no-aws-credentials"),
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=",
		"AWS_ROLE_ARN=", "AWS_WEB_IDENTITY_TOKEN_FILE=",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=",
	}
}

func (c *cluster) startFake(ctx context.Context, seed string) error {
	seedPath := c.path("fakeaws-seed.yaml")
	if err := os.WriteFile(seedPath, []byte(seed), 0o600); err != nil {
		return err
	}
	// STS trusts the cluster's issuer and verifies tokens against the keys
	// the apiserver publishes, as IAM's OIDC provider does.
	jwksURL, jwksCA := c.apiURL+"/openid/v1/jwks", c.path("pki", "apiserver.crt")
	if err := c.runFake(ctx, seedPath, jwksURL, jwksCA); err != nil {
		return err
	}
	// Fail early and clearly if STS cannot verify the cluster's tokens.
	return c.probeFederation(ctx)
}

func (c *cluster) runFake(ctx context.Context, seedPath, jwksURL, jwksCA string) error {
	urlFile, agentFile := c.path("fakeaws.url"), c.path("fakeaws-agent.url")
	_ = os.Remove(urlFile)
	_ = os.Remove(agentFile)
	args := []string{
		"--addr=127.0.0.1:0",
		"--seed=" + seedPath,
		"--ready-file=" + urlFile,
		"--issuer=" + c.apiURL,
		"--jwks-url=" + jwksURL,
		"--pod-identity-addr=127.0.0.1:0",
		"--pod-identity-ready-file=" + agentFile,
	}
	if jwksCA != "" {
		args = append(args, "--jwks-ca-file="+jwksCA)
	}
	if c.fake == nil {
		var err error
		if c.fake, err = c.spawn("fakeaws", c.bins.fakeaws, nil, args...); err != nil {
			return err
		}
	} else {
		c.fake.Args = args
		if err := c.fake.Start(); err != nil {
			return err
		}
	}
	return harness.WaitReady(ctx, c.fake, time.Minute, func(ctx context.Context) error {
		u, err := readURLFile(urlFile)
		if err != nil {
			return err
		}
		a, err := readURLFile(agentFile)
		if err != nil {
			return err
		}
		if err := harness.HTTPOK(ctx, http.DefaultClient, u+"/healthz", ""); err != nil {
			return err
		}
		c.fakeURL = u
		c.agentURL = strings.TrimSuffix(a, "/")
		if !strings.HasSuffix(c.agentURL, "/v1/credentials") {
			c.agentURL += "/v1/credentials"
		}
		return nil
	})
}

// probeFederation exchanges a real ServiceAccount token at the fake's STS.
func (c *cluster) probeFederation(ctx context.Context) error {
	tr, err := c.kube.CoreV1().ServiceAccounts(cofferNamespace).CreateToken(ctx, cofferSA, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audSTS}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	client := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(c.fakeURL), Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
	_, err = client.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(roleARN(probeRole)),
		RoleSessionName:  aws.String("e2e-probe"),
		WebIdentityToken: aws.String(tr.Status.Token),
	})
	if err != nil {
		return fmt.Errorf("STS AssumeRoleWithWebIdentity with a ServiceAccount token: %w", err)
	}
	return nil
}

func readURLFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	u := strings.TrimSpace(string(b))
	if u == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return u, nil
}
