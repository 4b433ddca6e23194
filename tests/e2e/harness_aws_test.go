package e2e

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// The tests change AWS data through the fake's AWS APIs, with the unmodified
// SDK and an administrator's keys from the seed, as an operator would.
const (
	adminKeyID  = "AKIAE2EADMIN00000000"
	adminSecret = "e2e-admin-secret-access-key"
)

func adminConfig(region string) aws.Config {
	return aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(env.fakeURL),
		Credentials:  credentials.NewStaticCredentialsProvider(adminKeyID, adminSecret, ""),
	}
}

func putSecretString(ctx context.Context, t *testing.T, region, name, value string) string {
	t.Helper()
	out, err := secretsmanager.NewFromConfig(adminConfig(region)).PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(name), SecretString: aws.String(value),
	})
	if err != nil {
		t.Fatalf("PutSecretValue %s: %v", name, err)
	}
	return aws.ToString(out.VersionId)
}

func deleteSecret(ctx context.Context, t *testing.T, region, name string) {
	t.Helper()
	if _, err := secretsmanager.NewFromConfig(adminConfig(region)).DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true),
	}); err != nil {
		t.Fatalf("DeleteSecret %s: %v", name, err)
	}
}

func putParameter(ctx context.Context, t *testing.T, region, name, value string, typ ssmtypes.ParameterType) int64 {
	t.Helper()
	out, err := ssm.NewFromConfig(adminConfig(region)).PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: typ, Overwrite: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("PutParameter %s: %v", name, err)
	}
	return out.Version
}

func createSecret(ctx context.Context, t *testing.T, region, name, value string) {
	t.Helper()
	if _, err := secretsmanager.NewFromConfig(adminConfig(region)).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String(value),
	}); err != nil {
		t.Fatalf("CreateSecret %s: %v", name, err)
	}
}

func deleteParameter(ctx context.Context, t *testing.T, region, name string) {
	t.Helper()
	if _, err := ssm.NewFromConfig(adminConfig(region)).DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(name)}); err != nil {
		t.Fatalf("DeleteParameter %s: %v", name, err)
	}
}
