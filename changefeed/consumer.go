package changefeed

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/provider/changes"
)

// Queue is the SQS operations the consumer calls.
type Queue interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// ParameterWriter writes the canary parameter.
type ParameterWriter interface {
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
}

// SecretWriter writes the canary secret's description.
type SecretWriter interface {
	UpdateSecret(ctx context.Context, in *secretsmanager.UpdateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretOutput, error)
}

// ConfigMaps is where the ledger is published (kube.ConfigMapInterface of
// the ledger's namespace).
type ConfigMaps interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.ConfigMap, error)
	Create(ctx context.Context, cm *corev1.ConfigMap, opts metav1.CreateOptions) (*corev1.ConfigMap, error)
	Update(ctx context.Context, cm *corev1.ConfigMap, opts metav1.UpdateOptions) (*corev1.ConfigMap, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// Clients are what the consumer talks to.
type Clients struct {
	Queue      Queue
	Parameters ParameterWriter
	Secrets    SecretWriter
	ConfigMaps ConfigMaps
}

// Config configures a Consumer.
type Config struct {
	// QueueURL is the queue the EventBridge rules target.
	QueueURL string
	// Covers is the queue's account and region (QueueURL.Coverage).
	Covers changes.Coverage
	// Namespace and Name are the ledger's ConfigMap.
	Namespace, Name string
	// CanaryParameter and CanarySecret are the canary objects, in the
	// queue's account and region; the consumer writes their descriptions.
	CanaryParameter, CanarySecret string
	// CanaryInterval is how often a canary round starts.
	CanaryInterval time.Duration
	// Retention is how long entries are kept after they were received
	// (at least the nodes' --event-max-age).
	Retention time.Duration
	// Clock (nil: the real clock).
	Clock   clock.WithTicker
	Logger  *slog.Logger
	Metrics *metrics.EventsConsumer
}

// Bounds and pacing of the consumer.
const (
	// waitTimeSeconds is SQS's longest long poll.
	waitTimeSeconds = 20
	// receiveBatch is the most messages SQS returns at once, and the most
	// entries of a DeleteMessageBatch.
	receiveBatch = 10
	// publishInterval is the least time between two writes of the
	// ConfigMap: every node receives each.
	publishInterval = time.Second
	// maxRounds bounds the canary rounds in flight: older ones are
	// forgotten (their announcements then prove nothing).
	maxRounds = 16
	// maxPending bounds the messages received and not yet deleted: the
	// consumer stops receiving while that many wait for a publish.
	maxPending = 1000
	// callTimeout bounds one AWS or Kubernetes call (a long poll: its
	// wait more).
	callTimeout = 15 * time.Second
	// maxBackoff bounds the wait after failed receives or publishes.
	maxBackoff = 30 * time.Second
	// canaryValue is the canary parameter's value: fixed, and no secret.
	canaryValue = "coffer canary: the change events' liveness check (not a secret)"
	// canaryPrefix starts the canary objects' descriptions; the nonce
	// follows.
	canaryPrefix = "coffer canary "
	// fieldManager names coffer's writes of the ConfigMap.
	fieldManager = "coffer-events"
)

// Consumer turns the queue's announcements into the published ledger.
// Run owns all of its state; it is not safe for concurrent use.
type Consumer struct {
	cfg     Config
	clients Clients
	clock   clock.WithTicker
	log     *slog.Logger
	canary  struct{ parameter, secret changes.Subject }

	book *changes.Book
	// cm is the ConfigMap as last read or written (nil: none).
	cm *corev1.ConfigMap
	// unpublished are the subjects added since the last publish, re-added
	// when another writer's ledger is found in their place.
	unpublished []changes.Subject
	// proof is the newest canary round proven (by this consumer, or in
	// the ledger it continued).
	proof changes.Proof
	// started is when Run started: the canary's age counts from it until
	// a round is proven.
	started     time.Time
	dirty       bool
	lastPublish time.Time
	// pending are the messages received and not yet deleted.
	pending []sqstypes.Message
	rounds  []*round
}

// round is a canary round in flight.
type round struct {
	nonce             string
	written           time.Time
	parameter, secret bool
}

// New checks cfg and returns a consumer.
func New(cfg Config, c Clients) (*Consumer, error) {
	var errs []error
	if c.Queue == nil || c.Parameters == nil || c.Secrets == nil || c.ConfigMaps == nil {
		errs = append(errs, errors.New("changefeed: every client is needed (a bug in the caller)"))
	}
	param := changes.Parameter(cfg.Covers.Account, cfg.Covers.Region, cfg.CanaryParameter)
	if len(param) != 1 {
		errs = append(errs, errors.New("the canary parameter is not a parameter name in the queue's account and region"))
	}
	secret := changes.Secrets(cfg.Covers.Account, cfg.Covers.Region, cfg.CanarySecret)
	if len(secret) != 1 || strings.HasPrefix(cfg.CanarySecret, "arn:") {
		errs = append(errs, errors.New("the canary secret is not a secret name (not an ARN) in the queue's account and region"))
	}
	if cfg.CanaryInterval <= 0 || cfg.Retention <= 0 {
		errs = append(errs, errors.New("the canary interval and the retention must be positive"))
	}
	if cfg.Namespace == "" || cfg.Name == "" {
		errs = append(errs, errors.New("the ledger's ConfigMap needs a namespace and a name"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	co := &Consumer{cfg: cfg, clients: c, clock: cfg.Clock, log: cfg.Logger.With("ledger", cfg.Namespace+"/"+cfg.Name)}
	co.canary.parameter, co.canary.secret = param[0], secret[0]
	return co, nil
}

// batch is one ReceiveMessage's messages and when they arrived.
type batch struct {
	msgs []sqstypes.Message
	at   time.Time
}

// Run loads the ledger, then receives, records, publishes and proves until
// ctx ends (nil) or the ledger cannot be loaded (an error naming the fix).
func (c *Consumer) Run(ctx context.Context) error {
	c.started = c.clock.Now()
	if err := c.checkQueue(ctx); err != nil {
		return err
	}
	if err := c.load(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	batches := make(chan batch)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.receive(ctx, batches)
	}()

	ticker := c.clock.NewTicker(c.cfg.CanaryInterval)
	defer ticker.Stop()
	c.dirty = true // the first publish records the coverage (and creates the ConfigMap)
	c.startRound(ctx)
	var timer clock.Timer
	var timerC <-chan time.Time
	failures := 0
	// retryAt is when a failed publish is tried again.
	var retryAt time.Time
	for {
		if c.dirty && timerC == nil {
			now := c.clock.Now()
			at := c.lastPublish.Add(publishInterval)
			if failures > 0 && retryAt.After(at) {
				at = retryAt
			}
			if !now.Before(at) {
				if err := c.publish(ctx); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					failures++
					retryAt = c.clock.Now().Add(backoff(failures))
					c.cfg.Metrics.PublishFailed()
					c.log.Error("publishing the change ledger failed; the messages it carries stay in the queue and the write is retried", "error", err, "retryIn", backoff(failures))
				} else {
					failures = 0
					c.deletePending(ctx)
				}
				continue
			}
			timer = c.clock.NewTimer(at.Sub(now))
			timerC = timer.C()
		}
		in := batches
		if len(c.pending) >= maxPending {
			in = nil // receive again once a publish lets these go
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case b := <-in:
			c.handle(b)
			if !c.dirty {
				c.deletePending(ctx)
			}
		case <-ticker.C():
			c.startRound(ctx)
		case <-timerC:
			timerC = nil // publish at the top of the loop
		}
	}
}

// backoff is the wait after n failures in a row: 1 s doubling to
// maxBackoff.
func backoff(n int) time.Duration {
	d := time.Second << min(n-1, 5)
	return min(d, maxBackoff)
}

// checkQueue reads the queue's ARN, which proves the queue is there and
// readable, and that it is in the account and region the ledger says it
// covers (with an endpoint override, the region is the client's).
func (c *Consumer) checkQueue(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	out, err := c.clients.Queue.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(c.cfg.QueueURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return fmt.Errorf("reading the events queue's attributes failed: check --queue-url, and that coffer-controller events' role may sqs:GetQueueAttributes on it: %w", err)
	}
	arn := out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[2] != "sqs" || parts[3] != c.cfg.Covers.Region || parts[4] != c.cfg.Covers.Account {
		return fmt.Errorf("the events queue is %s, not in account %s and region %s as its URL and the AWS region say: set AWS_REGION to the queue's region", arn, c.cfg.Covers.Account, c.cfg.Covers.Region)
	}
	return nil
}

// receive long-polls the queue, handing each non-empty batch to Run,
// until ctx ends.
func (c *Consumer) receive(ctx context.Context, out chan<- batch) {
	failures := 0
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, callTimeout+waitTimeSeconds*time.Second)
		res, err := c.clients.Queue.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(c.cfg.QueueURL),
			WaitTimeSeconds:             waitTimeSeconds,
			MaxNumberOfMessages:         receiveBatch,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameSenderId, sqstypes.MessageSystemAttributeNameSentTimestamp},
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			c.log.Error("receiving from the events queue failed; check the queue URL and that coffer-controller events' role may sqs:ReceiveMessage on it", "queue", c.cfg.QueueURL, "error", err, "retryIn", backoff(failures))
			select {
			case <-ctx.Done():
				return
			case <-c.clock.After(backoff(failures)):
			}
			continue
		}
		failures = 0
		if len(res.Messages) == 0 {
			continue
		}
		select {
		case out <- batch{msgs: res.Messages, at: c.clock.Now()}:
		case <-ctx.Done():
			return
		}
	}
}

// handle records one batch's announcements and canary rounds. Its
// messages join pending: Run deletes them after the next publish, or at
// once when nothing waits to be published.
func (c *Consumer) handle(b batch) {
	for _, m := range b.msgs {
		c.pending = append(c.pending, m)
		result := c.record(m, b.at)
		c.cfg.Metrics.Message(result)
	}
}

// record handles one message and returns its result (metrics.Event*).
func (c *Consumer) record(m sqstypes.Message, at time.Time) string {
	id := aws.ToString(m.MessageId)
	ev, err := Parse([]byte(aws.ToString(m.Body)))
	switch {
	case errors.Is(err, ErrIgnored):
		c.log.Debug("message ignored", "messageId", id, "reason", err)
		return metrics.EventIgnored
	case err != nil:
		c.log.Warn("message skipped: it is not an announcement coffer reads; is something other than the EventBridge rules sending to the queue?", "messageId", id, "sender", m.Attributes[string(sqstypes.MessageSystemAttributeNameSenderId)], "reason", err)
		return metrics.EventInvalid
	}
	if !ev.Time.IsZero() {
		c.cfg.Metrics.EventLag(at.Sub(ev.Time))
	}
	var named bool
	var others []changes.Subject
	for _, s := range ev.Subjects {
		if s == c.canary.parameter || s == c.canary.secret {
			named = true
		} else {
			others = append(others, s)
		}
	}
	result := metrics.EventChange
	if named {
		if c.proveRound(ev, at) {
			// The consumer's own write: what else it names (the
			// suffixed reading of the canary secret's ARN) is the canary.
			return metrics.EventCanary
		}
		c.log.Info("a message names a canary object without the nonce of a round in flight (forged, replayed or late): it proves nothing", "messageId", id, "sender", m.Attributes[string(sqstypes.MessageSystemAttributeNameSenderId)])
		result = metrics.EventCanaryUnmatched
	}
	if len(others) > 0 {
		c.book.Add(others...)
		c.unpublished = append(c.unpublished, others...)
		c.dirty = true
		c.log.Debug("change recorded", "messageId", id, "service", string(ev.Service), "operation", ev.Operation, "subjects", len(others))
	}
	return result
}

// proveRound marks the canary announcement ev in its round, and proves
// the round once both announcements came back. It reports whether ev
// carried the nonce of a round in flight.
func (c *Consumer) proveRound(ev Event, at time.Time) bool {
	nonce, ok := strings.CutPrefix(ev.Description, canaryPrefix)
	if !ok || ev.Account != c.cfg.Covers.Account || ev.Region != c.cfg.Covers.Region {
		return false
	}
	for i, r := range c.rounds {
		if r.nonce != nonce {
			continue
		}
		switch {
		case ev.Service == ServiceSSM && contains(ev.Subjects, c.canary.parameter):
			r.parameter = true
		case ev.Service == ServiceSecretsManager && ev.Operation == "UpdateSecret" && contains(ev.Subjects, c.canary.secret):
			r.secret = true
		default:
			return false
		}
		if r.parameter && r.secret {
			c.book.Prove(r.written, at)
			if r.written.After(c.proof.Written) {
				c.proof = changes.Proof{Written: r.written, Seen: at}
			}
			c.dirty = true
			// This round and every older one are settled: an older round
			// proven later would prove less.
			c.rounds = c.rounds[i+1:]
			c.cfg.Metrics.CanaryAge(c.clock.Since(c.proof.Written))
			c.log.Debug("canary round proven", "written", r.written, "seen", at)
		}
		return true
	}
	return false
}

func contains(subjects []changes.Subject, s changes.Subject) bool {
	for _, t := range subjects {
		if t == s {
			return true
		}
	}
	return false
}

// startRound writes the canary: a fresh nonce into the description of the
// canary parameter and secret. The round is proven when both announcements
// come back with it.
func (c *Consumer) startRound(ctx context.Context) {
	since := c.proof.Written
	if since.IsZero() {
		since = c.started
	}
	c.cfg.Metrics.CanaryAge(c.clock.Since(since))
	r := &round{nonce: rand.Text(), written: c.clock.Now()}
	desc := canaryPrefix + r.nonce
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := c.clients.Parameters.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(c.cfg.CanaryParameter), Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true),
		Value: aws.String(canaryValue), Description: aws.String(desc),
	}); err != nil {
		c.log.Error("writing the canary parameter failed; coffer-controller events' role needs ssm:PutParameter on it", "parameter", c.cfg.CanaryParameter, "error", err)
		return
	}
	if _, err := c.clients.Secrets.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{
		SecretId: aws.String(c.cfg.CanarySecret), Description: aws.String(desc),
	}); err != nil {
		c.log.Error("writing the canary secret's description failed; create the secret, and give coffer-controller events' role secretsmanager:UpdateSecret on it", "secret", c.cfg.CanarySecret, "error", err)
		return
	}
	c.rounds = append(c.rounds, r)
	if len(c.rounds) > maxRounds {
		c.rounds = c.rounds[len(c.rounds)-maxRounds:]
	}
}

// deletePending deletes the messages received so far, ten at a time. A
// message not deleted comes again after its visibility timeout: an extra
// read on the nodes, never a missed change.
func (c *Consumer) deletePending(ctx context.Context) {
	for len(c.pending) > 0 {
		n := min(len(c.pending), receiveBatch)
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, n)
		for i, m := range c.pending[:n] {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		c.pending = c.pending[n:]
		dctx, cancel := context.WithTimeout(ctx, callTimeout)
		out, err := c.clients.Queue.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(c.cfg.QueueURL), Entries: entries})
		cancel()
		switch {
		case err != nil:
			c.log.Warn("deleting received messages failed; they come again after their visibility timeout (coffer-controller events' role needs sqs:DeleteMessage on the queue)", "messages", n, "error", err)
		case len(out.Failed) > 0:
			c.log.Warn("some received messages were not deleted; they come again after their visibility timeout", "messages", len(out.Failed), "code", aws.ToString(out.Failed[0].Code))
		}
	}
	c.pending = nil
}

// load reads the ledger's ConfigMap and continues its ledger. A ledger
// that cannot be decoded is deleted and created anew (a new object: the
// nodes then treat it as a new ledger).
func (c *Consumer) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cms := c.clients.ConfigMaps
	cm, err := cms.Get(ctx, c.cfg.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		c.cm = nil
		c.book = changes.NewBook(nil, []changes.Coverage{c.cfg.Covers}, c.cfg.Retention, c.clock)
		c.log.Info("no change ledger yet: starting one")
		return nil
	case err != nil:
		return fmt.Errorf("reading the change ledger's ConfigMap %s/%s (coffer-controller events needs get on it): %w", c.cfg.Namespace, c.cfg.Name, err)
	}
	data, ok := cm.Data[changes.LedgerKey]
	if !ok {
		c.cm = cm
		c.book = changes.NewBook(nil, []changes.Coverage{c.cfg.Covers}, c.cfg.Retention, c.clock)
		c.log.Info("the ConfigMap holds no change ledger yet: starting one")
		return nil
	}
	prev, derr := changes.Decode([]byte(data))
	if derr == nil {
		c.cm = cm
		c.book = changes.NewBook(prev, []changes.Coverage{c.cfg.Covers}, c.cfg.Retention, c.clock)
		if prev.Proof.Written.After(c.proof.Written) {
			c.proof = prev.Proof
		}
		c.log.Info("continuing the change ledger", "seq", prev.Seq, "entries", len(prev.Entries))
		return nil
	}
	c.log.Warn("the change ledger cannot be read: replacing its ConfigMap with a new ledger (the nodes then read AWS for what they cached)", "reason", derr)
	uid := cm.UID
	err = cms.Delete(ctx, c.cfg.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the unreadable change ledger's ConfigMap %s/%s (coffer-controller events needs delete on it, or delete it yourself): %w", c.cfg.Namespace, c.cfg.Name, err)
	}
	c.cm = nil
	c.book = changes.NewBook(nil, []changes.Coverage{c.cfg.Covers}, c.cfg.Retention, c.clock)
	return nil
}

// publish writes the ledger into its ConfigMap, with the resourceVersion
// last seen. When another writer got there first it continues from their
// ledger, re-adding what this one has not yet published, and writes once
// more.
func (c *Consumer) publish(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := c.write(ctx)
		if err == nil {
			c.unpublished, c.dirty = nil, false
			c.lastPublish = c.clock.Now()
			c.cfg.Metrics.LedgerEntries(c.book.Len())
			return nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) || attempt > 0 {
			return err
		}
		c.log.Info("the change ledger was written by another consumer: continuing from theirs")
		if err := c.load(ctx); err != nil {
			return err
		}
		c.book.Add(c.unpublished...)
		if !c.proof.Written.IsZero() {
			c.book.Prove(c.proof.Written, c.proof.Seen)
		}
	}
}

// write creates or updates the ConfigMap with the ledger now.
func (c *Consumer) write(ctx context.Context) error {
	l := c.book.Ledger()
	data, err := l.Encode()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cms := c.clients.ConfigMaps
	if c.cm != nil {
		cm := c.cm.DeepCopy()
		cm.Data = maps.Clone(cm.Data)
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[changes.LedgerKey] = string(data)
		out, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: fieldManager})
		if err == nil {
			c.cm = out
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("updating the change ledger's ConfigMap %s/%s (coffer-controller events needs update on it): %w", c.cfg.Namespace, c.cfg.Name, err)
		}
		c.log.Warn("the change ledger's ConfigMap was deleted: creating it anew")
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: c.cfg.Name, Namespace: c.cfg.Namespace, Labels: map[string]string{"app.kubernetes.io/name": "coffer", "app.kubernetes.io/component": "events"}},
		Data:       map[string]string{changes.LedgerKey: string(data)},
	}
	out, err := cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("creating the change ledger's ConfigMap %s/%s (coffer-controller events needs create on configmaps in its namespace): %w", c.cfg.Namespace, c.cfg.Name, err)
	}
	c.cm = out
	return nil
}
