package fakeaws

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Queue is an SQS standard queue. A queue with EventSources is the target
// of an EventBridge rule: every change event of those sources in the
// queue's region (IAM's arrive in us-east-1, as AWS delivers them) is sent
// to it, subject to the server's Delivery faults.
type Queue struct {
	Name string
	// EventSources are the event sources the queue's rule matches:
	// SourceSSM, SourceSecretsManager, SourceIAM. None: a plain queue,
	// which only SendMessage fills.
	EventSources []string
	// VisibilityTimeout is how long a received message stays hidden
	// before it is delivered again; defaults to 30 s, as in SQS.
	VisibilityTimeout time.Duration
}

const (
	defaultVisibilityTimeout = 30 * time.Second
	maxVisibilityTimeout     = 12 * time.Hour
	maxWaitTime              = 20 * time.Second
	maxDelay                 = 15 * time.Minute
	maxReceiveMessages       = 10
	maxBatchEntries          = 10
	// maxMessageBytes is SQS's message size limit (256 KiB).
	maxMessageBytes = 256 << 10
)

// queue is a Queue's state. Guarded by Server.sqsMu.
type queue struct {
	Queue
	arn  string
	msgs []*message // delivery order; delayed and in-flight messages stay in place
	// changed is closed (and replaced) whenever a message is added, so that
	// long polls waiting on it wake up.
	changed chan struct{}
	// handles counts receipt handles issued, so each is unique.
	handles int
}

type message struct {
	id           string
	body         string
	md5          string
	senderID     string
	sent         time.Time
	visibleAt    time.Time // delay or visibility timeout
	receiveCount int
	firstReceive time.Time
	handle       string // the latest receipt handle; older ones no longer delete
}

func newQueue(q Queue, arn string) *queue {
	if q.VisibilityTimeout <= 0 {
		q.VisibilityTimeout = defaultVisibilityTimeout
	}
	q.EventSources = slices.Clone(q.EventSources)
	return &queue{Queue: q, arn: arn, changed: make(chan struct{})}
}

// add queues a message at position pos (len(msgs) for the end), visible
// from visibleAt, and wakes long polls.
func (q *queue) add(m *message, pos int) {
	pos = min(max(pos, 0), len(q.msgs))
	q.msgs = slices.Insert(q.msgs, pos, m)
	close(q.changed)
	q.changed = make(chan struct{})
}

// receive takes up to n visible messages, hides them for visibility and
// gives each a new receipt handle.
func (q *queue) receive(n int, visibility time.Duration, now time.Time) []*message {
	var out []*message
	for _, m := range q.msgs {
		if len(out) == n {
			break
		}
		if m.visibleAt.After(now) {
			continue
		}
		m.receiveCount++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
		m.visibleAt = now.Add(visibility)
		q.handles++
		m.handle = receiptHandle(q.Name, m.id, q.handles)
		out = append(out, m)
	}
	return out
}

// nextVisible is the earliest time a hidden message becomes visible (zero
// if none is hidden).
func (q *queue) nextVisible(now time.Time) time.Time {
	var next time.Time
	for _, m := range q.msgs {
		if m.visibleAt.After(now) && (next.IsZero() || m.visibleAt.Before(next)) {
			next = m.visibleAt
		}
	}
	return next
}

// delete removes the message a receipt handle names. A well-formed handle
// of a message already deleted, or one superseded by a later receive,
// deletes nothing and is not an error, as in SQS.
func (q *queue) delete(handle string) *apiError {
	name, id, ok := parseReceiptHandle(handle)
	if !ok || name != q.Name {
		return sqsErr(404, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", "The input receipt handle \"%s\" is not a valid receipt handle.", handle)
	}
	q.msgs = slices.DeleteFunc(q.msgs, func(m *message) bool { return m.id == id && m.handle == handle })
	return nil
}

func (q *queue) counts(now time.Time) (visible, inFlight, delayed int) {
	for _, m := range q.msgs {
		switch {
		case !m.visibleAt.After(now):
			visible++
		case m.receiveCount > 0:
			inFlight++
		default:
			delayed++
		}
	}
	return visible, inFlight, delayed
}

// Receipt handles are opaque to clients; ours carry the queue, the message
// and a counter, so a malformed one is told from a stale one.
func receiptHandle(queueName, messageID string, n int) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "fakeaws-rh\x00%s\x00%s\x00%d", queueName, messageID, n))
}

func parseReceiptHandle(h string) (queueName, messageID string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return "", "", false
	}
	f := strings.Split(string(b), "\x00")
	if len(f) != 4 || f[0] != "fakeaws-rh" {
		return "", "", false
	}
	return f[1], f[2], true
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (q Queue) validate() error {
	if !queueNameRE.MatchString(q.Name) {
		return fmt.Errorf("fakeaws: invalid queue name %q", q.Name)
	}
	for _, src := range q.EventSources {
		if !slices.Contains(eventSources, src) {
			return fmt.Errorf("fakeaws: queue %s: unknown event source %q (want one of %v)", q.Name, src, eventSources)
		}
	}
	if q.VisibilityTimeout < 0 || q.VisibilityTimeout > maxVisibilityTimeout {
		return fmt.Errorf("fakeaws: queue %s: visibility timeout must be between 0 and %v", q.Name, maxVisibilityTimeout)
	}
	return nil
}

// AddQueue creates a queue in region (or replaces one of the same name,
// dropping its messages).
func (s *Server) AddQueue(region string, q Queue) error {
	if err := q.validate(); err != nil {
		return err
	}
	s.sqsMu.Lock()
	defer s.sqsMu.Unlock()
	if s.queues[region] == nil {
		s.queues[region] = map[string]*queue{}
	}
	s.queues[region][q.Name] = newQueue(q, s.queueARN(region, q.Name))
	return nil
}

// QueueURL is the URL of a queue at a fake's endpoint (the base URL
// clients are pointed at), as GetQueueUrl returns it. The region of a
// request is its signature's, as for every API of the fake.
func (s *Server) QueueURL(endpoint, name string) string {
	return strings.TrimSuffix(endpoint, "/") + "/" + s.account + "/" + name
}

func (s *Server) queueARN(region, name string) string {
	return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", region, s.account, name)
}

// QueueBodies returns the body of every message in a queue, visible or
// not, in delivery order, for assertions (a canary scan, say).
func (s *Server) QueueBodies(region, name string) []string {
	s.sqsMu.Lock()
	defer s.sqsMu.Unlock()
	q := s.queues[region][name]
	if q == nil {
		return nil
	}
	out := make([]string, len(q.msgs))
	for i, m := range q.msgs {
		out[i] = m.body
	}
	return out
}
