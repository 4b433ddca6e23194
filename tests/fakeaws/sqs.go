package fakeaws

import (
	"context"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SQS operations, in the AWS JSON 1.0 protocol the SDK speaks to SQS
// (X-Amz-Target "AmazonSQS.<Operation>"). SQS is "query compatible": an
// error names its JSON type and, in the X-Amzn-Query-Error header, the code
// of the older query protocol, which the SDK reports from ErrorCode().

const sqsActionPrefix = "sqs:"

// queueNameRE is SQS's queue name alphabet (".fifo" queues are not faked).
var queueNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// batchEntryIDRE is SQS's batch entry id alphabet.
var batchEntryIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func (s *Server) sqsDispatch(rc *reqCtx) (any, *apiError) {
	switch rc.call.Operation {
	case "GetQueueUrl":
		return s.sqsGetQueueURL(rc)
	case "ReceiveMessage":
		return s.sqsReceiveMessage(rc)
	case "DeleteMessage":
		return s.sqsDeleteMessage(rc)
	case "DeleteMessageBatch":
		return s.sqsDeleteMessageBatch(rc)
	case "SendMessage":
		return s.sqsSendMessage(rc)
	case "GetQueueAttributes":
		return s.sqsGetQueueAttributes(rc)
	}
	return nil, sqsErr(400, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", "Unsupported operation %s", rc.call.Operation)
}

// sqsErr is an SQS error: its JSON type and its query-protocol code.
func sqsErr(status int, code, queryCode, format string, args ...any) *apiError {
	e := newErr(status, code, format, args...)
	e.QueryCode = queryCode
	return e
}

func sqsInvalidParameter(format string, args ...any) *apiError {
	return sqsErr(400, "InvalidParameterValue", "InvalidParameterValue", format, args...)
}

var errQueueDoesNotExist = sqsErr(400, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")

// sqsQueue resolves a QueueUrl in the request's region and authorises
// action on the queue. Callers hold sqsMu.
func (s *Server) sqsQueue(rc *reqCtx, action, queueURL string) (*queue, *apiError) {
	if queueURL == "" {
		return nil, sqsErr(400, "MissingParameter", "MissingParameter", "The request must contain the parameter QueueUrl.")
	}
	u, err := url.Parse(queueURL)
	if err != nil {
		return nil, sqsErr(404, "InvalidAddress", "InvalidAddress", "The address %s is not valid for this endpoint.", queueURL)
	}
	account, name, ok := strings.Cut(strings.Trim(u.Path, "/"), "/")
	if !ok || account != s.account {
		return nil, errQueueDoesNotExist
	}
	rc.call.Resources = []string{name}
	if e := rc.authorize(sqsActionPrefix+action, s.queueARN(rc.call.Region, name)); e != nil {
		return nil, e
	}
	q := s.queues[rc.call.Region][name]
	if q == nil {
		return nil, errQueueDoesNotExist
	}
	return q, nil
}

// --- GetQueueUrl ------------------------------------------------------------

func (s *Server) sqsGetQueueURL(rc *reqCtx) (any, *apiError) {
	var in struct {
		QueueName              string
		QueueOwnerAWSAccountId string
	}
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.QueueName}
	if e := rc.authorize(sqsActionPrefix+"GetQueueUrl", s.queueARN(rc.call.Region, in.QueueName)); e != nil {
		return nil, e
	}
	s.sqsMu.Lock()
	defer s.sqsMu.Unlock()
	if (in.QueueOwnerAWSAccountId != "" && in.QueueOwnerAWSAccountId != s.account) || s.queues[rc.call.Region][in.QueueName] == nil {
		return nil, errQueueDoesNotExist
	}
	return struct {
		QueueUrl string `json:"QueueUrl"`
	}{s.QueueURL("http://"+rc.r.Host, in.QueueName)}, nil
}

// --- ReceiveMessage ---------------------------------------------------------

type sqsReceiveMessageInput struct {
	QueueUrl                    string
	MaxNumberOfMessages         *int
	WaitTimeSeconds             *int
	VisibilityTimeout           *int
	AttributeNames              []string
	MessageSystemAttributeNames []string
}

type sqsMessage struct {
	MessageId     string            `json:"MessageId"`
	ReceiptHandle string            `json:"ReceiptHandle"`
	MD5OfBody     string            `json:"MD5OfBody"`
	Body          string            `json:"Body"`
	Attributes    map[string]string `json:"Attributes,omitempty"`
}

// sqsReceive is a validated ReceiveMessage.
type sqsReceive struct {
	max        int
	wait       time.Duration
	visibility *time.Duration
	attrs      []string
}

func parseReceive(in sqsReceiveMessageInput) (sqsReceive, *apiError) {
	r := sqsReceive{max: 1}
	if in.MaxNumberOfMessages != nil {
		if n := *in.MaxNumberOfMessages; n < 1 || n > maxReceiveMessages {
			return r, sqsInvalidParameter("Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", n)
		}
		r.max = *in.MaxNumberOfMessages
	}
	if in.WaitTimeSeconds != nil {
		w := time.Duration(*in.WaitTimeSeconds) * time.Second
		if w < 0 || w > maxWaitTime {
			return r, sqsInvalidParameter("Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", *in.WaitTimeSeconds)
		}
		r.wait = w
	}
	if in.VisibilityTimeout != nil {
		v := time.Duration(*in.VisibilityTimeout) * time.Second
		if v < 0 || v > maxVisibilityTimeout {
			return r, sqsInvalidParameter("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= 43200, if provided.", *in.VisibilityTimeout)
		}
		r.visibility = &v
	}
	r.attrs = append(slices.Clone(in.AttributeNames), in.MessageSystemAttributeNames...)
	return r, nil
}

// sqsReceiveMessage answers as soon as a message is visible, or when
// WaitTimeSeconds (long polling) has passed on the server's clock, or
// when the client gives up.
func (s *Server) sqsReceiveMessage(rc *reqCtx) (any, *apiError) {
	var in sqsReceiveMessageInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	req, e := parseReceive(in)
	if e != nil {
		return nil, e
	}
	deadline := s.clock.Now().Add(req.wait)
	for {
		s.sqsMu.Lock()
		q, e := s.sqsQueue(rc, "ReceiveMessage", in.QueueUrl)
		if e != nil {
			s.sqsMu.Unlock()
			return nil, e
		}
		now := s.clock.Now()
		visibility := q.VisibilityTimeout
		if req.visibility != nil {
			visibility = *req.visibility
		}
		got := q.receive(req.max, visibility, now)
		if len(got) > 0 || !now.Before(deadline) {
			out := make([]sqsMessage, len(got))
			for i, m := range got {
				out[i] = sqsMessage{MessageId: m.id, ReceiptHandle: m.handle, MD5OfBody: m.md5, Body: m.body, Attributes: messageAttributes(m, req.attrs)}
			}
			s.sqsMu.Unlock()
			return struct {
				Messages []sqsMessage `json:"Messages,omitempty"`
			}{out}, nil
		}
		wake := deadline
		if next := q.nextVisible(now); !next.IsZero() && next.Before(wake) {
			wake = next
		}
		changed := q.changed
		s.sqsMu.Unlock()
		if !s.waitForQueue(rc.r.Context(), changed, wake.Sub(now)) {
			return struct{}{}, nil
		}
	}
}

// waitForQueue waits for d on the server's clock, or for the queue to
// change; it reports false when the client or the server gave up.
func (s *Server) waitForQueue(ctx context.Context, changed <-chan struct{}, d time.Duration) bool {
	timer := s.clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-changed:
	case <-timer.C():
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
	return true
}

// messageAttributes returns the system attributes asked for.
func messageAttributes(m *message, names []string) map[string]string {
	all := slices.Contains(names, "All")
	want := func(n string) bool { return all || slices.Contains(names, n) }
	out := map[string]string{}
	if want("ApproximateReceiveCount") {
		out["ApproximateReceiveCount"] = strconv.Itoa(m.receiveCount)
	}
	if want("SentTimestamp") {
		out["SentTimestamp"] = strconv.FormatInt(m.sent.UnixMilli(), 10)
	}
	if want("ApproximateFirstReceiveTimestamp") {
		out["ApproximateFirstReceiveTimestamp"] = strconv.FormatInt(m.firstReceive.UnixMilli(), 10)
	}
	if want("SenderId") {
		out["SenderId"] = m.senderID
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// --- DeleteMessage / DeleteMessageBatch -------------------------------------

func (s *Server) sqsDeleteMessage(rc *reqCtx) (any, *apiError) {
	var in struct{ QueueUrl, ReceiptHandle string }
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	s.sqsMu.Lock()
	defer s.sqsMu.Unlock()
	q, e := s.sqsQueue(rc, "DeleteMessage", in.QueueUrl)
	if e != nil {
		return nil, e
	}
	if e := q.delete(in.ReceiptHandle); e != nil {
		return nil, e
	}
	return struct{}{}, nil
}

type sqsBatchResultError struct {
	Id          string `json:"Id"`
	Code        string `json:"Code"`
	Message     string `json:"Message"`
	SenderFault bool   `json:"SenderFault"`
}

// checkBatchIDs applies SQS's rules on a batch's entry ids.
func checkBatchIDs(ids []string) *apiError {
	switch {
	case len(ids) == 0:
		return sqsErr(400, "EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one DeleteMessageBatchRequestEntry in the request.")
	case len(ids) > maxBatchEntries:
		return sqsErr(400, "TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "Maximum number of entries per request are 10. You have sent %d.", len(ids))
	}
	for i, id := range ids {
		if !batchEntryIDRE.MatchString(id) {
			return sqsErr(400, "InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")
		}
		if slices.Contains(ids[:i], id) {
			return sqsErr(400, "BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "Id %s repeated.", id)
		}
	}
	return nil
}

func (s *Server) sqsDeleteMessageBatch(rc *reqCtx) (any, *apiError) {
	var in struct {
		QueueUrl string
		Entries  []struct{ Id, ReceiptHandle string }
	}
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	ids := make([]string, len(in.Entries))
	for i, en := range in.Entries {
		ids[i] = en.Id
	}
	s.sqsMu.Lock()
	defer s.sqsMu.Unlock()
	q, e := s.sqsQueue(rc, "DeleteMessage", in.QueueUrl) // the batch needs sqs:DeleteMessage
	if e != nil {
		return nil, e
	}
	if e := checkBatchIDs(ids); e != nil {
		return nil, e
	}
	type ok struct {
		Id string `json:"Id"`
	}
	out := struct {
		Successful []ok                  `json:"Successful"`
		Failed     []sqsBatchResultError `json:"Failed"`
	}{Successful: []ok{}, Failed: []sqsBatchResultError{}}
	for _, en := range in.Entries {
		if e := q.delete(en.ReceiptHandle); e != nil {
			out.Failed = append(out.Failed, sqsBatchResultError{Id: en.Id, Code: e.QueryCode, Message: e.Message, SenderFault: true})
			continue
		}
		out.Successful = append(out.Successful, ok{en.Id})
	}
	return out, nil
}

// --- SendMessage ------------------------------------------------------------

// sqsSendMessage queues a message as its sender wrote it: whoever may send
// to the queue can put any body there, an event's shape included.
func (s *Server) sqsSendMessage(rc *reqCtx) (any, *apiError) {
	var in struct {
		QueueUrl     string
		MessageBody  *string
		DelaySeconds *int
	}
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	if in.MessageBody == nil || *in.MessageBody == "" {
		return nil, sqsErr(400, "MissingParameter", "MissingParameter", "The request must contain the parameter MessageBody.")
	}
	if len(*in.MessageBody) > maxMessageBytes {
		return nil, sqsInvalidParameter("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", maxMessageBytes)
	}
	var delay time.Duration
	if in.DelaySeconds != nil {
		delay = time.Duration(*in.DelaySeconds) * time.Second
		if delay < 0 || delay > maxDelay {
			return nil, sqsInvalidParameter("Value %d for parameter DelaySeconds is invalid. Reason: Must be >= 0 and <= 900, if provided.", *in.DelaySeconds)
		}
	}
	s.sqsMu.Lock()
	defer s.sqsMu.Unlock()
	q, e := s.sqsQueue(rc, "SendMessage", in.QueueUrl)
	if e != nil {
		return nil, e
	}
	now := s.clock.Now()
	m := &message{id: newUUID(), body: *in.MessageBody, md5: md5Hex(*in.MessageBody), senderID: rc.ident.ARN, sent: now, visibleAt: now.Add(delay)}
	q.add(m, len(q.msgs))
	return struct {
		MessageId        string `json:"MessageId"`
		MD5OfMessageBody string `json:"MD5OfMessageBody"`
	}{m.id, m.md5}, nil
}

// --- GetQueueAttributes -----------------------------------------------------

func (s *Server) sqsGetQueueAttributes(rc *reqCtx) (any, *apiError) {
	var in struct {
		QueueUrl       string
		AttributeNames []string
	}
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	s.sqsMu.Lock()
	defer s.sqsMu.Unlock()
	q, e := s.sqsQueue(rc, "GetQueueAttributes", in.QueueUrl)
	if e != nil {
		return nil, e
	}
	visible, inFlight, delayed := q.counts(s.clock.Now())
	all := map[string]string{
		"ApproximateNumberOfMessages":           strconv.Itoa(visible),
		"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(inFlight),
		"ApproximateNumberOfMessagesDelayed":    strconv.Itoa(delayed),
		"QueueArn":                              q.arn,
		"VisibilityTimeout":                     strconv.Itoa(int(q.VisibilityTimeout / time.Second)),
	}
	out := map[string]string{}
	for _, n := range in.AttributeNames {
		if n == "All" {
			out = all
			break
		}
		v, ok := all[n]
		if !ok {
			return nil, sqsErr(400, "InvalidAttributeName", "InvalidAttributeName", "Unknown Attribute %s.", n)
		}
		out[n] = v
	}
	return struct {
		Attributes map[string]string `json:"Attributes,omitempty"`
	}{out}, nil
}

// sqsThrottled is SQS's throttling answer (a code the SDK's retryer knows).
func sqsThrottled() *apiError {
	return sqsErr(403, "RequestThrottled", "RequestThrottled", "Rate exceeded")
}
