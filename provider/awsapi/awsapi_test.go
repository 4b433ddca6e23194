package awsapi

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

func TestClientCache(t *testing.T) {
	ctx := context.Background()
	c := NewClientCache(aws.Config{Region: "us-east-1"}, 2)
	credsA1 := credentials.NewStaticCredentialsProvider("AKIDA1", "s", "")
	credsA2 := credentials.NewStaticCredentialsProvider("AKIDA2", "s", "")
	credsB := credentials.NewStaticCredentialsProvider("AKIDB", "s", "")

	a := c.For(ctx, "identity-a", credsA1)
	if c.For(ctx, "identity-a", credsA1) != a {
		t.Error("the same identity and credentials got new clients")
	}
	if c.For(ctx, "identity-b", credsB) == a {
		t.Error("another identity got identity A's clients")
	}
	if c.For(ctx, "identity-a", credsA2) == a {
		t.Error("refreshed credentials reused clients signing with the old ones")
	}
	for i := range 5 {
		c.For(ctx, fmt.Sprintf("other-%d", i), credsB)
	}
	if n := c.entries.Len(); n > 2 {
		t.Errorf("cache holds %d identities, bound is 2", n)
	}
	first, second := c.For(ctx, "", credsA1), c.For(ctx, "", credsA1)
	if first == second {
		t.Error("clients without an identity key were shared")
	}
}
