package socket_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coffer-csi/coffer/changefeed"
	"github.com/coffer-csi/coffer/internal/kube/kubetest"
	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/provider/changes"
	"github.com/coffer-csi/coffer/tests/fakeaws"
	"github.com/coffer-csi/coffer/wiring"
)

// Change events through the socket: the AWS fake's writes become events in
// its SQS queue, the real consumer (changefeed, as coffer-controller events
// runs it) turns them into the ledger's ConfigMap, and coffer's node side
// watches that ConfigMap and answers mounts by the ledger's rule. The
// consumer and the node share one clock, which the test moves ahead past
// the rule's bounds; SQS and the canary run on real time.

const (
	ledgerNamespace = "kube-system"
	ledgerName      = "coffer-changes"
	eventsQueue     = "coffer-events"
	// eventsSkew is --event-clock-skew here: the test's clocks are one.
	eventsSkew = 100 * time.Millisecond
)

var allEventSources = []string{fakeaws.SourceSSM, fakeaws.SourceSecretsManager, fakeaws.SourceIAM}

// eventsObjects are team A's: two secrets and a parameter.
var eventsObjects = map[string]string{"objects": "- {objectName: team-a/db, objectType: secretsmanager, objectAlias: db}\n" +
	"- {objectName: team-a/api, objectType: secretsmanager, objectAlias: api}\n" +
	"- {objectName: /team-a/host, objectType: ssmparameter, objectAlias: host}"}

// awsReads counts the secret and parameter reads the fake answered (not
// the consumer's canary writes, its queue calls, or STS).
func awsReads(f *fakeaws.Server) int {
	return f.CountCalls(func(c fakeaws.Call) bool {
		return (c.Service == fakeaws.ServiceSecretsManager || c.Service == fakeaws.ServiceSSM) && strings.HasPrefix(c.Operation, "Get") ||
			c.Operation == "BatchGetSecretValue"
	})
}

// startConsumer runs the change events' consumer against the fake's queue
// until stop (or the test's end).
func startConsumer(t *testing.T, h *harness, c *cluster, clk *aheadClock) (stop func()) {
	t.Helper()
	cfg := fakeaws.AWSConfig(h.url, primary, testKey, testPass, "")
	co, err := changefeed.New(changefeed.Config{
		QueueURL: h.fake.QueueURL(h.url, eventsQueue), Covers: changes.Coverage{Account: fakeaws.DefaultAccountID, Region: primary},
		Namespace: ledgerNamespace, Name: ledgerName, CanaryParameter: "/coffer/canary", CanarySecret: "coffer/canary",
		CanaryInterval: 100 * time.Millisecond, Retention: 30 * time.Minute, Clock: clk,
		Metrics: metrics.NewEventsConsumer(prometheus.NewRegistry(), "test"),
	}, changefeed.Clients{
		Queue: sqs.NewFromConfig(cfg), Parameters: ssm.NewFromConfig(cfg), Secrets: secretsmanager.NewFromConfig(cfg),
		ConfigMaps: kubetest.Wrap(c.kube).ConfigMaps(ledgerNamespace),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- co.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("the consumer: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

// publishedLedger is the ledger in the ConfigMap (nil: none yet).
func publishedLedger(t *testing.T, c *cluster) *changes.Ledger {
	t.Helper()
	cm, err := c.kube.CoreV1().ConfigMaps(ledgerNamespace).Get(context.Background(), ledgerName, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	l, err := changes.Decode([]byte(cm.Data[changes.LedgerKey]))
	if err != nil {
		t.Fatalf("the published ledger: %v", err)
	}
	return l
}

// waitFor polls cond on real time (SQS, the consumer and the watch run on
// it) for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nodeProvenAfter waits until the node holds a canary written after at
// (with the skew): the rule's condition on the pipeline.
func nodeProvenAfter(t *testing.T, h *harness, clk *aheadClock, at time.Time) {
	t.Helper()
	waitFor(t, "the node to hold a canary written after "+at.Format(time.RFC3339Nano), func() bool {
		age := sample(t, h.metrics, "coffer_events_canary_age_seconds", nil)
		written := clk.Now().Add(-time.Duration(age * float64(time.Second)))
		return age > 0 && written.After(at.Add(eventsSkew+10*time.Millisecond))
	})
}

// nodeHoldsEntry waits until the published ledger has an entry for s
// received after since, and the node holds that ledger or a later one.
func nodeHoldsEntry(t *testing.T, h *harness, c *cluster, clk *aheadClock, s changes.Subject, since time.Time) {
	t.Helper()
	var published time.Time
	waitFor(t, fmt.Sprintf("an entry for %s in the ledger", s.Name), func() bool {
		l := publishedLedger(t, c)
		if l == nil {
			return false
		}
		for _, e := range l.Entries {
			if e.Subject == s && !e.At.Before(since) {
				published = l.Published
				return true
			}
		}
		return false
	})
	waitFor(t, "the node to hold the ledger with the entry", func() bool {
		age := time.Duration(sample(t, h.metrics, "coffer_events_ledger_age_seconds", nil) * float64(time.Second))
		return !clk.Now().Add(-age).Before(published.Add(-time.Millisecond))
	})
}

func TestChangeEventsThroughTheSocket(t *testing.T) {
	clk := &aheadClock{}
	h, c := newWorkloadHarness(t, harnessOptions{config: func(cfg *wiring.Config) {
		cfg.Clock = clk
		cfg.ChangeEvents = &wiring.ChangeEvents{Namespace: ledgerNamespace, Name: ledgerName, MaxAge: 15 * time.Minute, ProofMaxAge: 2 * time.Minute, ClockSkew: eventsSkew}
	}})
	// The API server gives every object a UID, which the ledger's positions
	// name; client-go's fake keeps the one it is given: an empty ledger,
	// which the consumer continues.
	empty, err := (&changes.Ledger{Version: 1}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.kube.CoreV1().ConfigMaps(ledgerNamespace).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ledgerNamespace, Name: ledgerName, UID: "ledger-uid-1"},
		Data:       map[string]string{changes.LedgerKey: string(empty)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	seedTeams(h.fake)
	h.fake.PutSecretString(primary, "team-a/api", "api-1")
	for _, q := range []string{eventsQueue, "spy"} {
		if err := h.fake.AddQueue(primary, fakeaws.Queue{Name: q, EventSources: allEventSources}); err != nil {
			t.Fatal(err)
		}
	}
	h.fake.PutSecretString(primary, "coffer/canary", "not a secret")
	startConsumer(t, h, c, clk)
	waitFor(t, "the node to see a live pipeline", func() bool { return sample(t, h.metrics, "coffer_events_live", nil) == 1 })
	clk.advance(changes.Settle + time.Second) // the node has held the ledger longer than Settle

	mount := func(pod string) (map[string]string, int) {
		t.Helper()
		before := awsReads(h.fake)
		resp, err := h.mountAttrs(t, c.podAttrs("team-a", "app", pod, eventsObjects))
		if err != nil {
			t.Fatalf("%s: %v", pod, err)
		}
		fs, _ := files(resp)
		got := map[string]string{}
		for k, f := range fs {
			got[k] = string(f.Contents)
		}
		return got, awsReads(h.fake) - before
	}
	want := func(what string, got map[string]string, db, api, host string) {
		t.Helper()
		if got["db"] != db || got["api"] != api || got["host"] != host {
			t.Fatalf("%s: files %v, want db %q, api %q, host %q", what, got, db, api, host)
		}
	}

	got, reads := mount("a-1")
	want("first mount", got, "team-a-db-value", "api-1", "team-a-host-value")
	if reads == 0 {
		t.Fatal("the first mount read nothing from AWS")
	}
	read := clk.Now()
	nodeProvenAfter(t, h, clk, read)

	// Nothing changed: a remount and a new pod of the identity are answered
	// from the cache, minutes later, with no AWS read.
	clk.advance(3 * time.Minute / 2)
	nodeProvenAfter(t, h, clk, clk.Now().Add(-time.Second))
	for _, pod := range []string{"a-1", "a-2"} {
		got, reads := mount(pod)
		want(pod+" with nothing changed", got, "team-a-db-value", "api-1", "team-a-host-value")
		if reads != 0 {
			for _, v := range changes.Verdicts() {
				t.Logf("%s: %v", v, sample(t, h.metrics, "coffer_events_reads_total", map[string]string{"verdict": v.String()}))
			}
			t.Fatalf("%s with nothing changed: %d AWS reads, want 0", pod, reads)
		}
	}
	if n := sample(t, h.metrics, "coffer_events_reads_total", map[string]string{"verdict": "unchanged"}); n < 6 {
		t.Errorf("coffer_events_reads_total{verdict=unchanged} = %v, want at least 6", n)
	}

	// A change, announced: the next remount reads that object alone.
	changed := clk.Now()
	h.fake.PutSecretString(primary, "team-a/api", "api-2")
	nodeHoldsEntry(t, h, c, clk, changes.Secrets(fakeaws.DefaultAccountID, primary, "team-a/api")[0], changed)
	got, reads = mount("a-1")
	want("after the announced change", got, "team-a-db-value", "api-2", "team-a-host-value")
	if reads != 1 {
		t.Fatalf("after the announced change: %d AWS reads, want 1 (the changed secret)", reads)
	}

	// The pipeline breaks (every announcement lost) and someone who may
	// only send to the queue replays real canary announcements and forges
	// others: no proof comes of it, so once the newest real proof is older
	// than --event-proof-max-age the node reads AWS again, and a change
	// made meanwhile is served.
	if err := h.fake.SetDelivery(fakeaws.Delivery{Loss: 1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // canary rounds in flight end
	proof := publishedLedger(t, c).Proof
	h.fake.AddIdentity(fakeaws.Identity{AccessKeyID: "AKIDSENDER", SecretAccessKey: "sender", Actions: []string{"sqs:SendMessage"}, Resources: []string{"*"}})
	attacker := sqs.NewFromConfig(fakeaws.AWSConfig(h.url, primary, "AKIDSENDER", "sender", ""))
	queueURL := h.fake.QueueURL(h.url, eventsQueue)
	bodies := h.fake.QueueBodies(primary, "spy")
	var forged []string
	for _, b := range bodies {
		if strings.Contains(b, "coffer canary ") {
			forged = append(forged, b, strings.ReplaceAll(b, "coffer canary ", "coffer canary forged"))
		}
	}
	if len(forged) == 0 {
		t.Fatal("the spy queue holds no canary announcement to replay")
	}
	h.fake.PutSecretString(primary, "team-a/db", "db-2") // announced, and lost
	for range 5 {
		for _, b := range forged {
			if _, err := attacker.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(b)}); err != nil {
				t.Fatalf("the attacker's SendMessage: %v", err)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l := publishedLedger(t, c); !l.Proof.Written.Equal(proof.Written) {
		t.Fatalf("replayed and forged canary announcements moved the proof from %v to %v", proof.Written, l.Proof.Written)
	}
	got, _ = mount("a-1")
	want("a lost announcement within the proof's age (documented: served until the bound)", got, "team-a-db-value", "api-2", "team-a-host-value")
	clk.advance(2*time.Minute + eventsSkew)
	if live := sample(t, h.metrics, "coffer_events_live", nil); live != 0 {
		t.Fatalf("coffer_events_live = %v with the newest proof older than --event-proof-max-age", live)
	}
	got, reads = mount("a-1")
	want("the pipeline down", got, "db-2", "api-2", "team-a-host-value")
	if reads == 0 {
		t.Fatal("with the pipeline down, the remount read nothing")
	}
	fellBack := clk.Now()

	// The pipeline is back, but one announcement is lost: the value is
	// served until --event-max-age after its read, and read then.
	if err := h.fake.SetDelivery(fakeaws.Delivery{Loss: 1}); err != nil {
		t.Fatal(err)
	}
	h.fake.PutParameter(primary, "/team-a/host", "host-2", "String")
	if err := h.fake.SetDelivery(fakeaws.Delivery{}); err != nil {
		t.Fatal(err)
	}
	nodeProvenAfter(t, h, clk, fellBack)
	got, reads = mount("a-1")
	want("a lost announcement, the pipeline live", got, "db-2", "api-2", "team-a-host-value")
	if reads != 0 {
		t.Fatalf("a lost announcement, the pipeline live: %d reads, want 0", reads)
	}
	clk.advance(15 * time.Minute)
	nodeProvenAfter(t, h, clk, clk.Now().Add(-time.Second))
	got, _ = mount("a-1")
	want(fmt.Sprintf("--event-max-age after the read (%v)", 15*time.Minute), got, "db-2", "api-2", "host-2")
}
