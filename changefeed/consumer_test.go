package changefeed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/internal/kube/kubetest"
	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/provider/changes"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

const (
	adminKey, adminPass   = "AKIDADMIN", "admin-secret-key"
	senderKey, senderPass = "AKIDSENDER", "sender-secret-key"
	eventsQueue           = "coffer-events"
	spyQueue              = "spy"
	namespace             = "coffer"
	ledgerName            = "coffer-changes"
	canaryParameter       = "/coffer/canary"
	canarySecret          = "coffer/canary"
)

var allSources = []string{fakeaws.SourceSSM, fakeaws.SourceSecretsManager, fakeaws.SourceIAM}

// env is the AWS fake on a fake clock, with the events queue (and a spy
// queue that gets a copy of every event), the canary objects, and a fake
// clientset for the ledger's ConfigMap.
type env struct {
	t   *testing.T
	clk *clocktesting.FakeClock
	srv *fakeaws.Server
	ts  *httptest.Server
	cs  *fake.Clientset
}

func newEnv(t *testing.T, sources ...string) *env {
	t.Helper()
	if sources == nil {
		sources = allSources
	}
	clk := clocktesting.NewFakeClock(time.Now())
	srv, ts := fakeaws.NewTestServer(t, fakeaws.Options{Clock: clk})
	srv.AddIdentity(fakeaws.AllowAll(adminKey, adminPass))
	srv.AddIdentity(fakeaws.AllowAll(senderKey, senderPass))
	for _, q := range []fakeaws.Queue{{Name: eventsQueue, EventSources: sources}, {Name: spyQueue, EventSources: allSources}} {
		if err := srv.AddQueue(east, q); err != nil {
			t.Fatal(err)
		}
	}
	srv.PutSecretString(east, canarySecret, "canary")
	return &env{t: t, clk: clk, srv: srv, ts: ts, cs: fake.NewClientset()}
}

func (e *env) aws(key, pass string) aws.Config {
	return fakeaws.AWSConfig(e.ts.URL, east, key, pass, "")
}

func (e *env) queueURL() string { return e.srv.QueueURL(e.ts.URL, eventsQueue) }

// consumer is a running consumer and its metrics.
type consumer struct {
	reg  *prometheus.Registry
	stop func()
}

// consumer builds a consumer of the events queue with the defaults of
// coffer-controller events, on the fake clock, changed by mod.
func (e *env) consumer(mod ...func(*Config)) *Consumer {
	e.t.Helper()
	cfg := e.aws(adminKey, adminPass)
	c := Config{
		QueueURL: e.queueURL(), Covers: changes.Coverage{Account: fakeaws.DefaultAccountID, Region: east},
		Namespace: namespace, Name: ledgerName, CanaryParameter: canaryParameter, CanarySecret: canarySecret,
		CanaryInterval: 30 * time.Second, Retention: 30 * time.Minute, Clock: e.clk,
	}
	for _, m := range mod {
		m(&c)
	}
	co, err := New(c, Clients{
		Queue: sqs.NewFromConfig(cfg), Parameters: ssm.NewFromConfig(cfg), Secrets: secretsmanager.NewFromConfig(cfg),
		ConfigMaps: kubetest.Wrap(e.cs).ConfigMaps(namespace),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return co
}

// start runs a consumer (as consumer builds it) until the test ends.
func (e *env) start(mod ...func(*Config)) *consumer {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	co := e.consumer(append([]func(*Config){func(c *Config) { c.Metrics = metrics.NewEventsConsumer(reg, "test") }}, mod...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- co.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
	}
	e.t.Cleanup(stop)
	return &consumer{reg: reg, stop: stop}
}

// ledger returns the published ledger (nil: none yet).
func (e *env) ledger() *changes.Ledger {
	e.t.Helper()
	l, err := e.readLedger()
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *env) readLedger() (*changes.Ledger, error) {
	cm, err := e.cs.CoreV1().ConfigMaps(namespace).Get(context.Background(), ledgerName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l, err := changes.Decode([]byte(cm.Data[changes.LedgerKey]))
	if err != nil {
		return nil, fmt.Errorf("the published ledger does not decode: %w", err)
	}
	return l, nil
}

// eventually steps the fake clock a little at a time until cond holds:
// the consumer's publish pacing, long polls and canary rounds follow it.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting until %s", what)
		}
		e.clk.Step(100 * time.Millisecond)
		<-time.After(time.Millisecond)
	}
}

// settle waits until cond holds without moving the clock.
func (e *env) settle(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting until %s", what)
		}
		<-time.After(time.Millisecond)
	}
}

func (e *env) entry(s changes.Subject) (changes.Entry, bool) {
	l := e.ledger()
	if l == nil {
		return changes.Entry{}, false
	}
	i := slices.IndexFunc(l.Entries, func(en changes.Entry) bool { return en.Subject == s })
	if i < 0 {
		return changes.Entry{}, false
	}
	return l.Entries[i], true
}

func (e *env) queued(name string) int { return len(e.srv.QueueBodies(east, name)) }

func param(name string) changes.Subject {
	return changes.Subject{Kind: changes.KindParameter, Account: fakeaws.DefaultAccountID, Region: east, Name: strings.TrimPrefix(name, "/")}
}

func proven(l *changes.Ledger) bool { return l != nil && !l.Proof.Written.IsZero() }

// TestChangesReachTheLedger: a write to a parameter, a secret or a role
// reaches the published ledger with a new sequence, the ledger covers the
// queue's account and region, the canary proves the pipeline with both
// announcements and is no entry, and the messages are deleted after the
// publish.
func TestChangesReachTheLedger(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	e.eventually("the canary round is proven", func() bool { return proven(e.ledger()) })
	l := e.ledger()
	if want := []changes.Coverage{{Account: fakeaws.DefaultAccountID, Region: east}}; !slices.Equal(l.Covers, want) {
		t.Errorf("covers %+v, want %+v", l.Covers, want)
	}
	for _, en := range l.Entries {
		if en.Name == strings.TrimPrefix(canaryParameter, "/") || en.Name == canarySecret {
			t.Errorf("the canary is an entry: %+v", en)
		}
	}

	e.srv.PutParameter(east, "/app/db", "v1", fakeaws.TypeString)
	e.eventually("the parameter's change is published", func() bool { _, ok := e.entry(param("/app/db")); return ok })
	first, _ := e.entry(param("/app/db"))

	arn, _ := e.srv.PutSecretString(east, "app/key", "s3cr3t")
	roleARN := "arn:aws:iam::" + fakeaws.DefaultAccountID + ":role/App-Reader"
	if err := e.srv.AddRole(fakeaws.Role{ARN: roleARN}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ChangeRole(roleARN, fakeaws.RoleChange{EventName: fakeaws.IAMAttachRolePolicy, PolicyARN: "arn:aws:iam::aws:policy/ReadOnlyAccess"}); err != nil {
		t.Fatal(err)
	}
	secret := changes.Secrets(fakeaws.DefaultAccountID, east, "app/key")[0]
	role := changes.Role(fakeaws.DefaultAccountID, roleARN)[0]
	e.eventually("the secret's and the role's changes are published", func() bool {
		_, s := e.entry(secret)
		_, r := e.entry(role)
		return s && r
	})
	if full := changes.Secrets(fakeaws.DefaultAccountID, east, arn); len(full) != 2 {
		t.Fatalf("readings of the secret's ARN: %+v", full)
	}
	s, _ := e.entry(secret)
	r, _ := e.entry(role)
	if s.Seq <= first.Seq || r.Seq <= first.Seq {
		t.Errorf("sequences: parameter %d, secret %d, role %d: later changes need larger ones", first.Seq, s.Seq, r.Seq)
	}

	e.srv.PutParameter(east, "/app/db", "v2", "")
	e.eventually("the parameter's second change is published", func() bool { en, _ := e.entry(param("/app/db")); return en.Seq > r.Seq && en.Seq > s.Seq })
	e.eventually("the queue is empty", func() bool { return e.queued(eventsQueue) == 0 })
	for _, body := range e.srv.QueueBodies(east, spyQueue) {
		if strings.Contains(body, "s3cr3t") {
			t.Fatal("the fake put a value into an event")
		}
	}
	if got := count(t, c, "coffer_events_consumer_messages_total", metrics.EventChange); got < 4 {
		t.Errorf("coffer_events_consumer_messages_total{change} = %v, want at least 4", got)
	}
}

func count(t *testing.T, c *consumer, name, result string) float64 {
	t.Helper()
	families, err := c.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// TestDuplicatesAndReordering: events delivered twice and out of order
// only add entries: every parameter written is in the ledger once, with
// sequences that grow.
func TestDuplicatesAndReordering(t *testing.T) {
	e := newEnv(t)
	if err := e.srv.SetDelivery(fakeaws.Delivery{Seed: 7, Duplicate: 0.5, ReorderWindow: 4, Jitter: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	e.start()
	const n = 12
	for i := range n {
		e.srv.PutParameter(east, fmt.Sprintf("/app/p%d", i), "v", fakeaws.TypeString)
	}
	e.eventually("every parameter is in the ledger", func() bool {
		for i := range n {
			if _, ok := e.entry(param(fmt.Sprintf("/app/p%d", i))); !ok {
				return false
			}
		}
		return e.queued(eventsQueue) == 0
	})
	l := e.ledger()
	seen := map[changes.Subject]bool{}
	var last uint64
	for _, en := range l.Entries {
		if seen[en.Subject] {
			t.Errorf("%+v is in the ledger twice", en.Subject)
		}
		seen[en.Subject] = true
		if en.Seq <= last {
			t.Errorf("sequence %d after %d", en.Seq, last)
		}
		last = en.Seq
	}
}

// send puts body into the events queue as another sender than
// EventBridge, as anyone allowed sqs:SendMessage can.
func (e *env) send(body string) {
	e.t.Helper()
	_, err := sqs.NewFromConfig(e.aws(senderKey, senderPass)).SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(e.queueURL()), MessageBody: aws.String(body)})
	if err != nil {
		e.t.Fatal(err)
	}
}

// canaryBodies returns the canary's announcements the spy queue got.
func (e *env) canaryBodies() []string {
	var out []string
	for _, b := range e.srv.QueueBodies(east, spyQueue) {
		if strings.Contains(b, canaryPrefix) {
			out = append(out, b)
		}
	}
	return out
}

// TestForgedCanaryProvesNothing: once the events stop arriving, copies
// of the canary's own announcements of a proven round, announcements with
// a guessed nonce, and any other body sent to the queue never move the
// proof; they are counted.
func TestForgedCanaryProvesNothing(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	c := e.start(func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	e.eventually("the first round is proven", func() bool { return proven(e.ledger()) })
	proof := e.ledger().Proof
	replayed := e.canaryBodies()
	if len(replayed) != 2 {
		t.Fatalf("%d canary announcements, want the parameter's and the secret's", len(replayed))
	}
	if err := e.srv.SetDelivery(fakeaws.Delivery{Loss: 1}); err != nil {
		t.Fatal(err)
	}
	guessed := make([]string, len(replayed))
	for i, b := range replayed {
		var ev map[string]any
		if err := json.Unmarshal([]byte(b), &ev); err != nil {
			t.Fatal(err)
		}
		guessed[i] = strings.ReplaceAll(b, ev["id"].(string), "00000000-0000-0000-0000-000000000000")
		start := strings.Index(guessed[i], canaryPrefix) + len(canaryPrefix)
		guessed[i] = guessed[i][:start] + "AAAAAAAAAAAAAAAAAAAAAAAAAA" + guessed[i][start+26:]
	}
	e.clk.Step(31 * time.Second) // a new round, whose announcements are lost
	const bodyCanary = "BODY-CANARY-5b1f"
	for _, b := range append(append(replayed, guessed...), "not an event "+bodyCanary, `{"source":"aws.ssm","detail":"`+bodyCanary+`"}`) {
		e.send(b)
	}
	e.eventually("the forged messages are handled and deleted", func() bool {
		return count(t, c, "coffer_events_consumer_messages_total", metrics.EventCanaryUnmatched) >= 4 && e.queued(eventsQueue) == 0
	})
	if got := e.ledger().Proof; !got.Written.Equal(proof.Written) {
		t.Errorf("the proof moved from %v to %v on forged messages", proof.Written, got.Written)
	}
	if got := count(t, c, "coffer_events_consumer_messages_total", metrics.EventInvalid); got != 1 {
		t.Errorf("invalid messages %v, want 1", got)
	}
	if got := count(t, c, "coffer_events_consumer_messages_total", metrics.EventIgnored); got != 1 {
		t.Errorf("ignored messages %v, want 1", got)
	}
	c.stop()
	if strings.Contains(logs.String(), bodyCanary) || strings.Contains(logs.String(), canaryPrefix) {
		t.Errorf("a message body reached the logs:\n%s", logs.String())
	}
}

// TestProofNeedsBothAnnouncements: a queue that receives the parameter's
// announcements and not the secret's never proves a round, and the
// canary's age grows from the consumer's start.
func TestProofNeedsBothAnnouncements(t *testing.T) {
	e := newEnv(t, fakeaws.SourceSSM, fakeaws.SourceIAM)
	c := e.start()
	e.eventually("three rounds' parameter announcements are handled", func() bool {
		return count(t, c, "coffer_events_consumer_messages_total", metrics.EventCanary) >= 3
	})
	if l := e.ledger(); proven(l) {
		t.Errorf("proven without the secret's announcement: %+v", l.Proof)
	}
	if age := count(t, c, "coffer_events_consumer_canary_age_seconds", ""); age < 60 {
		t.Errorf("coffer_events_consumer_canary_age_seconds = %v after three unproven rounds 30s apart, want at least 60 (since the start)", age)
	}
}

// TestPublishFailureKeepsMessages: while the ConfigMap cannot be written,
// the messages stay in the queue (they come again); once it can, the
// change is published and they are deleted.
func TestPublishFailureKeepsMessages(t *testing.T) {
	e := newEnv(t)
	var failing atomic.Bool
	e.cs.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, apierrors.NewServiceUnavailable("etcd is down")
		}
		return false, nil, nil
	})
	c := e.start()
	e.eventually("the first round is proven", func() bool { return proven(e.ledger()) && e.queued(eventsQueue) == 0 })
	failing.Store(true)
	e.srv.PutParameter(east, "/app/db", "v1", fakeaws.TypeString)
	e.eventually("two publishes failed", func() bool { return count(t, c, "coffer_events_consumer_publish_failures_total", "") >= 2 })
	if e.queued(eventsQueue) == 0 {
		t.Fatal("the message was deleted though its change was not published")
	}
	if _, ok := e.entry(param("/app/db")); ok {
		t.Fatal("published while failing")
	}
	failing.Store(false)
	e.eventually("the change is published and its message deleted", func() bool {
		_, ok := e.entry(param("/app/db"))
		return ok && e.queued(eventsQueue) == 0
	})
}

// TestSecondConsumerContinues: a consumer started after another (a new
// leader) continues its ledger: entries kept, sequences larger.
func TestSecondConsumerContinues(t *testing.T) {
	e := newEnv(t)
	first := e.start()
	e.srv.PutParameter(east, "/app/a", "v1", fakeaws.TypeString)
	e.eventually("the first consumer publishes", func() bool { _, ok := e.entry(param("/app/a")); return ok && e.queued(eventsQueue) == 0 })
	first.stop()
	a, _ := e.entry(param("/app/a"))
	before := e.ledger().Seq

	e.start()
	e.srv.PutParameter(east, "/app/b", "v1", fakeaws.TypeString)
	e.eventually("the second consumer publishes", func() bool { _, ok := e.entry(param("/app/b")); return ok })
	b, _ := e.entry(param("/app/b"))
	if b.Seq <= before {
		t.Errorf("the second consumer's sequence %d does not continue the first's %d", b.Seq, before)
	}
	if got, ok := e.entry(param("/app/a")); !ok || got.Seq != a.Seq {
		t.Errorf("the first consumer's entry is gone or changed: %+v, %v", got, ok)
	}
}

// TestConflictContinuesFromTheirs: when another writer published in
// between (the Update conflicts), the consumer continues from what is
// there and re-adds what it had not yet published.
func TestConflictContinuesFromTheirs(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.eventually("the ledger is published", func() bool { return proven(e.ledger()) && e.queued(eventsQueue) == 0 })
	theirs := e.ledger()
	theirs.Seq += 100
	theirs.Entries = append(theirs.Entries, changes.Entry{Seq: theirs.Seq, Subject: param("/theirs"), At: e.clk.Now()})
	data, err := theirs.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var conflicted atomic.Bool
	e.cs.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicted.CompareAndSwap(false, true) {
			// Another consumer's write lands just before this one.
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ledgerName, Namespace: namespace}, Data: map[string]string{changes.LedgerKey: string(data)}}
			if err := e.cs.Tracker().Update(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, cm, namespace); err != nil {
				t.Error(err)
			}
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, ledgerName, errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	e.srv.PutParameter(east, "/app/mine", "v1", fakeaws.TypeString)
	e.eventually("mine is published after theirs", func() bool { _, ok := e.entry(param("/app/mine")); return ok })
	mine, _ := e.entry(param("/app/mine"))
	if _, ok := e.entry(param("/theirs")); !ok || mine.Seq <= theirs.Seq {
		t.Errorf("theirs kept: %v; mine %d after theirs %d", ok, mine.Seq, theirs.Seq)
	}
}

// TestUnreadableLedgerIsReplaced: a ConfigMap whose ledger does not
// decode is deleted and created anew with a new ledger.
func TestUnreadableLedgerIsReplaced(t *testing.T) {
	e := newEnv(t)
	_, err := e.cs.CoreV1().ConfigMaps(namespace).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: ledgerName, Namespace: namespace},
		Data:       map[string]string{changes.LedgerKey: `{"version":99}`},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.start()
	e.settle("a new ledger is published", func() bool { l, err := e.readLedger(); return err == nil && l != nil })
	deleted := slices.ContainsFunc(e.cs.Actions(), func(a k8stesting.Action) bool {
		return a.GetVerb() == "delete" && a.GetResource().Resource == "configmaps"
	})
	if !deleted {
		t.Error("the unreadable ConfigMap was not deleted")
	}
	if l := e.ledger(); l.Version != 1 || l.Seq != 0 {
		t.Errorf("new ledger: %+v", l)
	}
}

// TestForgedFloodStaysBounded: a flood of distinct forged subjects keeps
// the ledger within changes' bounds, the floor raised past what was
// dropped.
func TestForgedFloodStaysBounded(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.eventually("the ledger is published", func() bool { return e.ledger() != nil })
	const messages = 150
	for i := range messages {
		resources := make([]string, maxResources)
		for j := range resources {
			resources[j] = fmt.Sprintf(`"arn:aws:secretsmanager:us-east-1:%s:secret:flood/%04d-%02d-%s"`, fakeaws.DefaultAccountID, i, j, strings.Repeat("x", 100))
		}
		e.send(fmt.Sprintf(`{"detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","account":"%s","region":"us-east-1","resources":[%s],"detail":{"eventSource":"secretsmanager.amazonaws.com","eventName":"PutSecretValue","requestParameters":{"secretId":"flood/%04d"}}}`,
			fakeaws.DefaultAccountID, strings.Join(resources, ","), i))
	}
	e.eventually("the flood is handled", func() bool { return e.queued(eventsQueue) == 0 })
	e.eventually("the last of it is published", func() bool {
		_, ok := e.entry(changes.Secrets(fakeaws.DefaultAccountID, east, fmt.Sprintf("flood/%04d", messages-1))[0])
		return ok
	})
	l := e.ledger()
	data, _ := l.Encode()
	if len(l.Entries) > changes.MaxEntries || len(data) > changes.MaxLedgerBytes {
		t.Errorf("ledger of %d entries, %d bytes: over changes' bounds", len(l.Entries), len(data))
	}
	if l.Floor == 0 || l.Floor >= l.Entries[0].Seq {
		t.Errorf("floor %d with the oldest entry at %d: dropped entries need the floor past them", l.Floor, l.Entries[0].Seq)
	}
}

// TestRoundsBounded: at most maxRounds canary rounds wait for their
// announcements; the announcements of a round forgotten prove nothing,
// those of a round kept do once both came back.
func TestRoundsBounded(t *testing.T) {
	e := newEnv(t)
	co := e.consumer()
	co.book = changes.NewBook(nil, nil, time.Hour, e.clk)
	var nonces []string
	for range maxRounds + 4 {
		co.startRound(context.Background())
		nonces = append(nonces, co.rounds[len(co.rounds)-1].nonce)
		e.clk.Step(time.Second)
	}
	if len(co.rounds) != maxRounds {
		t.Fatalf("%d rounds in flight, want %d", len(co.rounds), maxRounds)
	}
	announce := func(nonce string) (bool, bool) {
		p := co.proveRound(Event{Service: ServiceSSM, Account: fakeaws.DefaultAccountID, Region: east, Description: canaryPrefix + nonce, Subjects: []changes.Subject{co.canary.parameter}}, e.clk.Now())
		s := co.proveRound(Event{Service: ServiceSecretsManager, Operation: "UpdateSecret", Account: fakeaws.DefaultAccountID, Region: east, Description: canaryPrefix + nonce, Subjects: []changes.Subject{co.canary.secret}}, e.clk.Now())
		return p, s
	}
	if p, s := announce(nonces[0]); p || s {
		t.Errorf("a forgotten round's announcements matched: %v, %v", p, s)
	}
	if !co.proof.Written.IsZero() {
		t.Fatal("a forgotten round proved the pipeline")
	}
	kept := nonces[len(nonces)-3]
	if p, s := announce(kept); !p || !s {
		t.Errorf("a kept round's announcements did not match: %v, %v", p, s)
	}
	if co.proof.Written.IsZero() || len(co.rounds) != 2 {
		t.Errorf("proof %+v with %d rounds left; want it proven, and only the two newer rounds left", co.proof, len(co.rounds))
	}
}

// TestQueueChecked: Run refuses, naming the fix, a queue it cannot read
// and one in another region than the ledger would say it covers.
func TestQueueChecked(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, url, region, want string
	}{
		{"missing queue", e.srv.QueueURL(e.ts.URL, "nope"), east, "check --queue-url, and that coffer-controller events' role may sqs:GetQueueAttributes"},
		{"another region", e.queueURL(), "us-west-2", "not in account " + fakeaws.DefaultAccountID + " and region us-west-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co := e.consumer(func(c *Config) { c.QueueURL, c.Covers.Region = tc.url, tc.region })
			if err := co.Run(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v, want an error with %q", err, tc.want)
			}
			if l, _ := e.readLedger(); l != nil {
				t.Error("a ledger was published")
			}
		})
	}
}
