package fakeaws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

const eventsQueue = "coffer-events"

// sqsEnv is a fake on a fake clock, with a queue that every event source's
// rule targets in each of east and west.
type sqsEnv struct {
	*env
	clk *clocktesting.FakeClock
}

func newSQSEnv(t *testing.T) *sqsEnv {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Now())
	srv, ts := fakeaws.NewTestServer(t, fakeaws.Options{Clock: clk})
	srv.AddIdentity(fakeaws.AllowAll(adminKey, adminPass))
	for _, r := range []string{east, west} {
		if err := srv.AddQueue(r, fakeaws.Queue{Name: eventsQueue, EventSources: []string{fakeaws.SourceSSM, fakeaws.SourceSecretsManager, fakeaws.SourceIAM}}); err != nil {
			t.Fatal(err)
		}
	}
	return &sqsEnv{env: &env{srv: srv, ts: ts}, clk: clk}
}

func (e *sqsEnv) sqs(region string, c creds) *sqs.Client {
	return sqs.NewFromConfig(fakeaws.AWSConfig(e.ts.URL, region, c.key, c.secret, c.token))
}

func (e *sqsEnv) queueURL() *string { return aws.String(e.srv.QueueURL(e.ts.URL, eventsQueue)) }

// receive calls ReceiveMessage on east's queue, asking for every attribute.
func (e *sqsEnv) receive(t *testing.T, in sqs.ReceiveMessageInput) []sqstypes.Message {
	t.Helper()
	in.QueueUrl = e.queueURL()
	in.MessageSystemAttributeNames = []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}
	out, err := e.sqs(east, admin).ReceiveMessage(context.Background(), &in)
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	return out.Messages
}

// drain receives every visible message (hiding each for 5 minutes).
func (e *sqsEnv) drain(t *testing.T) []sqstypes.Message {
	t.Helper()
	var all []sqstypes.Message
	for {
		got := e.receive(t, sqs.ReceiveMessageInput{MaxNumberOfMessages: 10, VisibilityTimeout: 300})
		if len(got) == 0 {
			return all
		}
		all = append(all, got...)
	}
}

// waitForPoll returns once a long poll waits on the fake clock.
func (e *sqsEnv) waitForPoll(t *testing.T, done <-chan struct{}) {
	t.Helper()
	for !e.clk.HasWaiters() {
		select {
		case <-done:
			t.Fatal("the long poll returned before it waited")
		case <-time.After(time.Millisecond):
		}
	}
}

type polled struct {
	msgs []sqstypes.Message
	err  error
}

// poll starts a long poll of east's queue.
func (e *sqsEnv) poll(wait int32) (<-chan polled, <-chan struct{}) {
	res, done := make(chan polled, 1), make(chan struct{})
	go func() {
		defer close(done)
		out, err := e.sqs(east, admin).ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: e.queueURL(), WaitTimeSeconds: wait, MaxNumberOfMessages: 10})
		if err != nil {
			res <- polled{err: err}
			return
		}
		res <- polled{msgs: out.Messages}
	}()
	return res, done
}

// TestLongPolling: a long poll answers as soon as a message arrives, without
// the clock moving, or as soon as a delayed one becomes visible; on an
// empty queue it waits WaitTimeSeconds and answers with no message; without
// WaitTimeSeconds it answers at once.
func TestLongPolling(t *testing.T) {
	e := newSQSEnv(t)
	start := e.clk.Now()

	if got := e.receive(t, sqs.ReceiveMessageInput{}); len(got) != 0 {
		t.Fatalf("short poll of an empty queue: %d messages", len(got))
	}

	res, done := e.poll(20)
	e.waitForPoll(t, done)
	e.srv.PutParameter(east, "/app/p", "v1", fakeaws.TypeString)
	r := <-res
	if r.err != nil || len(r.msgs) != 1 {
		t.Fatalf("long poll with an arrival: %d messages, %v", len(r.msgs), r.err)
	}
	if !e.clk.Now().Equal(start) {
		t.Error("the clock moved")
	}

	// A message delayed on its way wakes the poll when it becomes visible.
	noErr(t, e.srv.SetDelivery(fakeaws.Delivery{Delay: 3 * time.Second}))
	res, done = e.poll(20)
	e.waitForPoll(t, done)
	e.srv.PutParameter(east, "/app/p", "v2", "")
	e.clk.Step(3 * time.Second)
	if r := <-res; r.err != nil || len(r.msgs) != 1 {
		t.Fatalf("long poll with a delayed arrival: %d messages, %v", len(r.msgs), r.err)
	}
	noErr(t, e.srv.SetDelivery(fakeaws.Delivery{}))

	res, done = e.poll(5)
	e.waitForPoll(t, done)
	e.clk.Step(4 * time.Second)
	select {
	case r := <-res:
		t.Fatalf("the long poll answered before its wait: %+v", r)
	default:
	}
	e.clk.Step(time.Second)
	r = <-res
	if r.err != nil || len(r.msgs) != 0 {
		t.Fatalf("long poll of an empty queue: %d messages, %v", len(r.msgs), r.err)
	}
}

// TestVisibilityTimeout: a received message is hidden for its visibility
// timeout, then delivered again with ApproximateReceiveCount 2 and a new
// receipt handle; the old handle no longer deletes it, the new one does.
func TestVisibilityTimeout(t *testing.T) {
	e := newSQSEnv(t)
	ctx := context.Background()
	e.srv.PutParameter(east, "/app/p", "v1", fakeaws.TypeString)

	first := e.receive(t, sqs.ReceiveMessageInput{VisibilityTimeout: 30})
	if len(first) != 1 || first[0].Attributes["ApproximateReceiveCount"] != "1" {
		t.Fatalf("first receive: %+v", first)
	}
	if got := e.receive(t, sqs.ReceiveMessageInput{}); len(got) != 0 {
		t.Fatal("an in-flight message was delivered again")
	}
	e.clk.Step(29 * time.Second)
	if got := e.receive(t, sqs.ReceiveMessageInput{}); len(got) != 0 {
		t.Fatal("delivered again before its visibility timeout")
	}
	e.clk.Step(time.Second)
	second := e.receive(t, sqs.ReceiveMessageInput{VisibilityTimeout: 30})
	if len(second) != 1 || aws.ToString(second[0].MessageId) != aws.ToString(first[0].MessageId) {
		t.Fatalf("redelivery: %+v", second)
	}
	if got := second[0].Attributes["ApproximateReceiveCount"]; got != "2" {
		t.Errorf("ApproximateReceiveCount = %s, want 2", got)
	}
	if aws.ToString(second[0].ReceiptHandle) == aws.ToString(first[0].ReceiptHandle) {
		t.Error("the redelivery kept the receipt handle")
	}

	c := e.sqs(east, admin)
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: e.queueURL(), ReceiptHandle: first[0].ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage with a stale handle: %v (SQS accepts it)", err)
	}
	if n := len(e.srv.QueueBodies(east, eventsQueue)); n != 1 {
		t.Fatalf("a stale receipt handle deleted the message (%d left)", n)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: e.queueURL(), ReceiptHandle: second[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.srv.QueueBodies(east, eventsQueue)); n != 0 {
		t.Fatalf("%d messages left after DeleteMessage", n)
	}
}

// TestDeleteMessageBatch deletes what it names and reports each entry.
func TestDeleteMessageBatch(t *testing.T) {
	e := newSQSEnv(t)
	ctx := context.Background()
	for i := range 3 {
		e.srv.PutParameter(east, fmt.Sprintf("/app/p%d", i), "v", fakeaws.TypeString)
	}
	msgs := e.receive(t, sqs.ReceiveMessageInput{MaxNumberOfMessages: 10})
	if len(msgs) != 3 {
		t.Fatalf("received %d messages, want 3", len(msgs))
	}
	out, err := e.sqs(east, admin).DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{
		QueueUrl: e.queueURL(),
		Entries: []sqstypes.DeleteMessageBatchRequestEntry{
			{Id: aws.String("a"), ReceiptHandle: msgs[0].ReceiptHandle},
			{Id: aws.String("b"), ReceiptHandle: msgs[1].ReceiptHandle},
			{Id: aws.String("forged"), ReceiptHandle: aws.String("not-a-handle")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 2 || len(out.Failed) != 1 {
		t.Fatalf("successful %d, failed %d; want 2, 1", len(out.Successful), len(out.Failed))
	}
	if f := out.Failed[0]; aws.ToString(f.Id) != "forged" || aws.ToString(f.Code) != "ReceiptHandleIsInvalid" || !f.SenderFault {
		t.Errorf("failed entry: %+v", f)
	}
	if n := len(e.srv.QueueBodies(east, eventsQueue)); n != 1 {
		t.Errorf("%d messages left, want 1", n)
	}
}

// TestSQSErrors: SQS's errors, as the SDK reports them.
func TestSQSErrors(t *testing.T) {
	e := newSQSEnv(t)
	ctx := context.Background()
	c := e.sqs(east, admin)
	entries := func(n int, id func(int) string) []sqstypes.DeleteMessageBatchRequestEntry {
		out := make([]sqstypes.DeleteMessageBatchRequestEntry, n)
		for i := range out {
			out[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(id(i)), ReceiptHandle: aws.String("x")}
		}
		return out
	}
	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"too many batch entries", func() error {
			_, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: e.queueURL(), Entries: entries(11, strconv.Itoa)})
			return err
		}, "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"},
		{"empty batch", func() error {
			_, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: e.queueURL(), Entries: []sqstypes.DeleteMessageBatchRequestEntry{}})
			return err
		}, "AWS.SimpleQueueService.EmptyBatchRequest"},
		{"repeated batch ids", func() error {
			_, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: e.queueURL(), Entries: entries(2, func(int) string { return "same" })})
			return err
		}, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"},
		{"invalid batch id", func() error {
			_, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: e.queueURL(), Entries: entries(1, func(int) string { return "no spaces" })})
			return err
		}, "AWS.SimpleQueueService.InvalidBatchEntryId"},
		{"malformed receipt handle", func() error {
			_, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: e.queueURL(), ReceiptHandle: aws.String("forged")})
			return err
		}, "ReceiptHandleIsInvalid"},
		{"too many messages asked for", func() error {
			_, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: e.queueURL(), MaxNumberOfMessages: 11})
			return err
		}, "InvalidParameterValue"},
		{"wait over 20 s", func() error {
			_, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: e.queueURL(), WaitTimeSeconds: 21})
			return err
		}, "InvalidParameterValue"},
		{"no such queue", func() error {
			_, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.srv.QueueURL(e.ts.URL, "nope"))})
			return err
		}, "AWS.SimpleQueueService.NonExistentQueue"},
		{"no such queue by name", func() error {
			_, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("nope")})
			return err
		}, "AWS.SimpleQueueService.NonExistentQueue"},
		{"no permission", func() error {
			e.srv.AddIdentity(fakeaws.Identity{AccessKeyID: "AKIDNONE", SecretAccessKey: "none-secret"})
			_, err := e.sqs(east, creds{"AKIDNONE", "none-secret", ""}).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: e.queueURL()})
			return err
		}, "AccessDenied"},
		{"unknown queue attribute", func() error {
			_, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: e.queueURL(), AttributeNames: []sqstypes.QueueAttributeName{"Nope"}})
			return err
		}, "InvalidAttributeName"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code) })
	}
}

// TestQueueURLAndAttributes: GetQueueUrl names the queue at the endpoint
// the client used, and GetQueueAttributes counts visible, in-flight and
// delayed messages.
func TestQueueURLAndAttributes(t *testing.T) {
	e := newSQSEnv(t)
	ctx := context.Background()
	c := e.sqs(east, admin)
	u, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(eventsQueue)})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(u.QueueUrl); got != aws.ToString(e.queueURL()) {
		t.Errorf("QueueUrl = %s, want %s", got, aws.ToString(e.queueURL()))
	}
	for i := range 3 {
		e.srv.PutParameter(east, fmt.Sprintf("/app/p%d", i), "v", fakeaws.TypeString)
	}
	e.receive(t, sqs.ReceiveMessageInput{})
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: u.QueueUrl, MessageBody: aws.String("later"), DelaySeconds: 60}); err != nil {
		t.Fatal(err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: u.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ApproximateNumberOfMessages":           "2",
		"ApproximateNumberOfMessagesNotVisible": "1",
		"ApproximateNumberOfMessagesDelayed":    "1",
		"QueueArn":                              "arn:aws:sqs:us-east-1:123456789012:" + eventsQueue,
	}
	for k, v := range want {
		if attrs.Attributes[k] != v {
			t.Errorf("%s = %q, want %q", k, attrs.Attributes[k], v)
		}
	}
}

// TestForgedMessages: whoever may send to the queue can put a body shaped
// exactly like an event there, and a consumer receives it like any other.
// Only SQS's SenderId, which the sender cannot choose, differs; nothing in
// the body does. The forger cannot change AWS itself.
func TestForgedMessages(t *testing.T) {
	e := newSQSEnv(t)
	ctx := context.Background()
	forger := creds{"AKIDFORGER", "forger-secret", ""}
	e.srv.AddIdentity(fakeaws.Identity{
		AccessKeyID: forger.key, SecretAccessKey: forger.secret,
		ARN:       "arn:aws:iam::123456789012:user/forger",
		Actions:   []string{"sqs:SendMessage"},
		Resources: []string{"arn:aws:sqs:*:*:" + eventsQueue},
	})

	e.srv.PutParameter(east, "/app/p", "v1", fakeaws.TypeString)
	real := e.drain(t)
	if len(real) != 1 {
		t.Fatalf("%d events, want 1", len(real))
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(aws.ToString(real[0].Body)), &ev); err != nil {
		t.Fatal(err)
	}
	ev["id"] = "11111111-2222-4333-8444-555555555555"
	forged, _ := json.Marshal(ev)

	if _, err := e.sqs(east, forger).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: e.queueURL(), MessageBody: aws.String(string(forged))}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	_, err := e.ssm(east, forger).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/p"), Value: aws.String("v2"), Overwrite: aws.Bool(true)})
	wantCode(t, err, "AccessDeniedException")

	got := e.drain(t)
	if len(got) != 1 || aws.ToString(got[0].Body) != string(forged) {
		t.Fatalf("received %+v, want the forged event", got)
	}
	if real[0].Attributes["SenderId"] == got[0].Attributes["SenderId"] {
		t.Errorf("a forged message has EventBridge's SenderId %s", got[0].Attributes["SenderId"])
	}
	if got := got[0].Attributes["SenderId"]; got != "arn:aws:iam::123456789012:user/forger" {
		t.Errorf("SenderId = %q, want the forger", got)
	}
}

// TestSQSQuota: SQS takes the fake's quotas like every API (AWS publishes
// none that a consumer meets: ReceiveMessage is effectively unlimited, so
// PublishedQuotas has none), and throttles with SQS's code, which the SDK
// retries.
func TestSQSQuota(t *testing.T) {
	e := newSQSEnv(t)
	for _, q := range fakeaws.PublishedQuotas(false, 1) {
		if q.Service == fakeaws.ServiceSQS {
			t.Errorf("a published quota for SQS: %+v", q)
		}
	}
	e.srv.SetQuotas(fakeaws.Quota{Service: fakeaws.ServiceSQS, Operations: []string{"ReceiveMessage"}, Rate: 0.001, Burst: 1})
	c := e.sqs(east, admin)
	in := &sqs.ReceiveMessageInput{QueueUrl: e.queueURL()}
	if _, err := c.ReceiveMessage(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	_, err := c.ReceiveMessage(context.Background(), in)
	wantCode(t, err, "RequestThrottled")
	if !isThrottle(err) {
		t.Error("the SDK does not see SQS's throttling as throttling")
	}
}

// TestSeedQueues: a seed declares queues and the delivery faults, after
// its data, so seeding sends no event.
func TestSeedQueues(t *testing.T) {
	seed, err := fakeaws.LoadSeed(strings.NewReader(`
parameters:
  - region: us-east-1
    name: /app/p
    value: v
queues:
  - region: us-east-1
    name: events
    eventSources: [aws.ssm]
    visibilityTimeout: 10s
eventDelivery:
  seed: 7
  delay: 2s
`))
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	srv := fakeaws.New(fakeaws.Options{Clock: clk})
	if err := srv.ApplySeed(seed); err != nil {
		t.Fatal(err)
	}
	if got := srv.QueueBodies(east, "events"); len(got) != 0 {
		t.Fatalf("seeding sent %d events", len(got))
	}
	srv.PutParameter(east, "/app/p", "v2", "")
	if got := srv.QueueBodies(east, "events"); len(got) != 1 {
		t.Fatalf("%d events after a write, want 1", len(got))
	}

	for name, y := range map[string]string{
		"unknown source": "queues: [{region: us-east-1, name: q, eventSources: [aws.s3]}]",
		"no region":      "queues: [{name: q}]",
		"bad name":       "queues: [{region: us-east-1, name: 'a b'}]",
		"loss over 1":    "eventDelivery: {loss: 2}",
	} {
		if _, err := fakeaws.LoadSeed(strings.NewReader(y)); err == nil {
			t.Errorf("%s: the seed loaded", name)
		}
	}
}
