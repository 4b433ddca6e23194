package controller

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coffer-csi/coffer/cli"
	"github.com/coffer-csi/coffer/provider/changes"
)

// TestConsumerNeedsTheQueuesRegion: a queue URL on another endpoint than
// SQS's own says no region; without AWS_REGION the consumer refuses to
// guess, naming the fix.
func TestConsumerNeedsTheQueuesRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	const url = "http://127.0.0.1:4566/123456789012/q"
	q, err := changes.ParseQueueURL(url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Consumer(context.Background(), cli.ConsumerConfig{QueueURL: url, Queue: q, Namespace: "coffer", Ledger: "coffer-changes",
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "the queue's region is unknown: its URL is not SQS's own endpoint, so set AWS_REGION") {
		t.Fatalf("got %v", err)
	}
}
