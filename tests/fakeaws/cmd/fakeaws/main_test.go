package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// syncBuffer lets the test read logs while the server writes them.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer runs the server with a seed file until the test ends, and
// returns its URL once it is ready.
func startServer(t *testing.T, ctx context.Context, seed string, stdout, stderr *syncBuffer) (string, <-chan error) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "url")
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--seed", seed, "--ready-file", ready}, stdout, stderr)
	}()
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for url == "" {
		if b, err := os.ReadFile(ready); err == nil {
			url = strings.TrimSpace(string(b))
		} else if time.Now().After(deadline) {
			t.Fatalf("ready file never appeared; stderr:\n%s", stderr.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return url, done
}

func TestRunServesSeedAndShutsDown(t *testing.T) {
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, done := startServer(t, ctx, "../../testdata/demo-seed.yaml", &stdout, &stderr)
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.TrimSpace(stdout.String()) != url {
		t.Errorf("ready file %q, stdout %q", url, stdout.String())
	}

	client := secretsmanager.NewFromConfig(fakeaws.AWSConfig(url, "us-east-1", "AKIDDEMO", "demo-secret-key", ""))
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/db")})
	if err != nil || !strings.Contains(aws.ToString(out.SecretString), "s3cr3t-demo") {
		t.Fatalf("GetSecretValue = %v, %v", out, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancellation")
	}

	logs := stderr.String()
	if !strings.Contains(logs, "operation=GetSecretValue") || !strings.Contains(logs, "outcome=ok") {
		t.Errorf("call not logged:\n%s", logs)
	}
	if strings.Contains(logs, "s3cr3t-demo") {
		t.Errorf("a secret value leaked into the logs:\n%s", logs)
	}
}

func TestRunRejectsBadSeed(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(bad, []byte("secrets:\n  - name: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	if err := run(context.Background(), []string{"--seed", bad}, &out, &out); err == nil {
		t.Error("run accepted an invalid seed")
	}
}

// TestRunServesEvents: a seed's queue receives the change events of writes,
// which a consumer reads through the SDK; no value is in them.
func TestRunServesEvents(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(seed, []byte(`
identities:
  - accessKeyId: AKIDDEMO
    secretAccessKey: demo-secret-key
    actions: ["*"]
    resources: ["*"]
queues:
  - region: us-east-1
    name: events
    eventSources: [aws.ssm, aws.secretsmanager, aws.iam]
eventDelivery:
  seed: 1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, _ := startServer(t, ctx, seed, &stdout, &stderr)
	cfg := fakeaws.AWSConfig(url, "us-east-1", "AKIDDEMO", "demo-secret-key", "")

	const value = "CANARY-standalone-value"
	if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/demo/p"), Value: aws.String(value), Type: "SecureString"}); err != nil {
		t.Fatal(err)
	}
	q := sqs.NewFromConfig(cfg)
	u, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("events")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: u.QueueUrl, WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("ReceiveMessage: %v, %v", out, err)
	}
	body := aws.ToString(out.Messages[0].Body)
	if !strings.Contains(body, `"detail-type":"Parameter Store Change"`) || strings.Contains(body, value) {
		t.Errorf("event body: %s", body)
	}
	if strings.Contains(stderr.String(), value) {
		t.Error("the value is in the server's logs")
	}
}
