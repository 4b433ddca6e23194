package node

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// putSecret changes a secret in AWS (the fake) as the administrator, as a
// rotation does.
func putSecret(ctx context.Context, t *testing.T, name, value string) {
	t.Helper()
	client := secretsmanager.New(secretsmanager.Options{
		Region:       nodeRegion,
		BaseEndpoint: aws.String(env.fakeURL),
		Credentials:  credentials.NewStaticCredentialsProvider(adminKeyID, adminSecret, ""),
	})
	if _, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(value)}); err != nil {
		t.Fatalf("PutSecretValue %s: %v", name, err)
	}
}
