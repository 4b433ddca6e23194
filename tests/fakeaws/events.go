package fakeaws

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"time"
)

// Change events, as EventBridge delivers them to an SQS target: the
// message body is the event, a JSON object with version, id, detail-type,
// source, account, time, region, resources and detail.
//
//   - Parameter Store sends "Parameter Store Change" (source aws.ssm) with
//     detail {operation: Create|Update|Delete|LabelParameterVersion, name,
//     type, description}.
//   - Secrets Manager's and IAM's API calls reach EventBridge through
//     CloudTrail as "AWS API Call via CloudTrail" (sources
//     aws.secretsmanager, aws.iam), whose detail is the CloudTrail record:
//     eventSource, eventName, requestParameters, responseElements,
//     userIdentity, eventTime, eventID and the rest. No value is ever in
//     one: CloudTrail records no SecretString or SecretBinary, and the
//     fake records no parameter value and no access key id either.
//
// IAM is global: its events are delivered in us-east-1, as AWS does.

// Event sources and detail types.
const (
	SourceSSM            = "aws.ssm"
	SourceSecretsManager = "aws.secretsmanager"
	SourceIAM            = "aws.iam"

	DetailTypeParameterStoreChange = "Parameter Store Change"
	DetailTypeAPICallViaCloudTrail = "AWS API Call via CloudTrail"

	// iamEventRegion is where IAM's CloudTrail events are delivered.
	iamEventRegion = "us-east-1"
	// cloudTrailEventVersion is the CloudTrail record format version.
	cloudTrailEventVersion = "1.09"
	// eventBridgeSenderID is the SenderId of messages EventBridge sent
	// (SQS sets it; a sender cannot choose it). AWS does not document
	// EventBridge's, so this one is the fake's own.
	eventBridgeSenderID = "AIDAFAKEAWSEVENTBRIDGE"
)

// eventSources are the sources a Queue may name.
var eventSources = []string{SourceSSM, SourceSecretsManager, SourceIAM}

// event is EventBridge's envelope.
type event struct {
	Version    string   `json:"version"`
	ID         string   `json:"id"`
	DetailType string   `json:"detail-type"`
	Source     string   `json:"source"`
	Account    string   `json:"account"`
	Time       string   `json:"time"`
	Region     string   `json:"region"`
	Resources  []string `json:"resources"`
	Detail     any      `json:"detail"`
}

// ssmChangeDetail is a Parameter Store Change's detail.
type ssmChangeDetail struct {
	Operation   string `json:"operation"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
}

// cloudTrailDetail is a CloudTrail record.
type cloudTrailDetail struct {
	EventVersion       string             `json:"eventVersion"`
	UserIdentity       cloudTrailIdentity `json:"userIdentity"`
	EventTime          string             `json:"eventTime"`
	EventSource        string             `json:"eventSource"`
	EventName          string             `json:"eventName"`
	AWSRegion          string             `json:"awsRegion"`
	SourceIPAddress    string             `json:"sourceIPAddress"`
	UserAgent          string             `json:"userAgent"`
	RequestParameters  map[string]any     `json:"requestParameters"`
	ResponseElements   map[string]any     `json:"responseElements"`
	RequestID          string             `json:"requestID"`
	EventID            string             `json:"eventID"`
	ReadOnly           bool               `json:"readOnly"`
	EventType          string             `json:"eventType"`
	ManagementEvent    bool               `json:"managementEvent"`
	RecipientAccountID string             `json:"recipientAccountId"`
	EventCategory      string             `json:"eventCategory"`
}

// cloudTrailIdentity is the caller, without its access key id.
type cloudTrailIdentity struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
	ARN         string `json:"arn"`
	AccountID   string `json:"accountId"`
}

// eventTime is EventBridge's and CloudTrail's time format.
func eventTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// ssmEvent is a Parameter Store Change.
func (s *Server) ssmEvent(region, operation, name, typ, description string) event {
	return event{
		Version: "0", ID: newUUID(), DetailType: DetailTypeParameterStoreChange, Source: SourceSSM,
		Account: s.account, Time: eventTime(s.now()), Region: region,
		Resources: []string{s.paramARN(region, name)},
		Detail:    ssmChangeDetail{Operation: operation, Name: name, Type: typ, Description: description},
	}
}

// caller is who made a change, as CloudTrail records it.
type caller struct {
	identity  cloudTrailIdentity
	sourceIP  string
	userAgent string
}

// callerOf is the caller of a wire request.
func (s *Server) callerOf(rc *reqCtx) caller {
	ip, _, err := net.SplitHostPort(rc.r.RemoteAddr)
	if err != nil {
		ip = rc.r.RemoteAddr
	}
	return caller{identity: s.cloudTrailIdentity(rc.ident), sourceIP: ip, userAgent: rc.r.UserAgent()}
}

// controlCaller is who changes AWS through the fake's Go API (PutSecretString,
// PutParameter, SetRolePermissions, ...): an IAM user of the account.
func (s *Server) controlCaller() caller {
	arn := "arn:aws:iam::" + s.account + ":user/fakeaws-control"
	return caller{
		identity:  cloudTrailIdentity{Type: "IAMUser", PrincipalID: principalID("AIDA", arn), ARN: arn, AccountID: s.account},
		sourceIP:  "fakeaws",
		userAgent: "fakeaws",
	}
}

func (s *Server) cloudTrailIdentity(id *Identity) cloudTrailIdentity {
	if roleARN, ok := s.callerRole(id); ok {
		session := id.ARN[strings.LastIndexByte(id.ARN, '/')+1:]
		return cloudTrailIdentity{Type: "AssumedRole", PrincipalID: roleUniqueID(roleARN) + ":" + session, ARN: id.ARN, AccountID: s.callerAccount(id)}
	}
	return cloudTrailIdentity{Type: "IAMUser", PrincipalID: principalID("AIDA", id.ARN), ARN: id.ARN, AccountID: s.callerAccount(id)}
}

// principalID is a stable unique id for a principal ARN.
func principalID(prefix, arn string) string {
	sum := sha256.Sum256([]byte(arn))
	return prefix + base32.StdEncoding.EncodeToString(sum[:])[:17]
}

// cloudTrailEvent is an "AWS API Call via CloudTrail" event. Request
// parameters and response elements are the caller's; neither may hold a
// value.
func (s *Server) cloudTrailEvent(region, source, eventName string, who caller, req, resp map[string]any) event {
	now := eventTime(s.now())
	service := strings.TrimPrefix(source, "aws.")
	return event{
		Version: "0", ID: newUUID(), DetailType: DetailTypeAPICallViaCloudTrail, Source: source,
		Account: s.account, Time: now, Region: region, Resources: []string{},
		Detail: cloudTrailDetail{
			EventVersion:       cloudTrailEventVersion,
			UserIdentity:       who.identity,
			EventTime:          now,
			EventSource:        service + ".amazonaws.com",
			EventName:          eventName,
			AWSRegion:          region,
			SourceIPAddress:    who.sourceIP,
			UserAgent:          who.userAgent,
			RequestParameters:  req,
			ResponseElements:   resp,
			RequestID:          newUUID(),
			EventID:            newUUID(),
			EventType:          "AwsApiCall",
			ManagementEvent:    true,
			RecipientAccountID: s.account,
			EventCategory:      "Management",
		},
	}
}

// smEvent is a Secrets Manager call's CloudTrail event.
func (s *Server) smEvent(region, eventName string, who caller, secretARN string, req map[string]any) event {
	return s.cloudTrailEvent(region, SourceSecretsManager, eventName, who, req, map[string]any{"arn": secretARN})
}

// emit records an event of a wire request, published once it succeeded.
func (rc *reqCtx) emit(ev event) { rc.events = append(rc.events, ev) }

// Delivery shapes how events reach their queues, as EventBridge and SQS
// may: late, lost, twice, out of order. The same Seed gives the same
// choices for the same sequence of events, so a test (and CI) sees the
// same answer every run.
type Delivery struct {
	Seed uint64
	// Delay hides each event's message for Delay plus up to Jitter
	// (uniformly drawn) on the server's clock.
	Delay, Jitter time.Duration
	// Loss is the probability that an event never reaches a queue.
	Loss float64
	// Duplicate is the probability that EventBridge delivers an event
	// twice: two messages, one body (the same event id).
	Duplicate float64
	// ReorderWindow lets a message overtake up to that many messages
	// queued before it and not yet received (uniformly drawn).
	ReorderWindow int
}

// deliveryState is the delivery faults and their random source. Guarded
// by Server.sqsMu.
type deliveryState struct {
	cfg Delivery
	rng *rand.Rand
}

func (d *deliveryState) reset(cfg Delivery) {
	d.cfg = cfg
	d.rng = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
}

// SetDelivery sets the delivery faults of events from now on, starting the
// random sequence afresh from d.Seed. The zero Delivery delivers every
// event at once, once, in order.
func (s *Server) SetDelivery(d Delivery) error {
	if err := d.validate(); err != nil {
		return err
	}
	s.sqsMu.Lock()
	defer s.sqsMu.Unlock()
	s.delivery.reset(d)
	return nil
}

func (d Delivery) validate() error {
	switch {
	case d.Delay < 0 || d.Jitter < 0:
		return errors.New("fakeaws: delivery delay and jitter must not be negative")
	case d.Loss < 0 || d.Loss > 1 || d.Duplicate < 0 || d.Duplicate > 1:
		return errors.New("fakeaws: delivery loss and duplicate are probabilities, between 0 and 1")
	case d.ReorderWindow < 0:
		return errors.New("fakeaws: delivery reorder window must not be negative")
	}
	return nil
}

// publish sends events to every queue of their region whose rule matches
// their source, in the order of the queues' names (so draws are
// deterministic).
func (s *Server) publish(evs ...event) {
	if len(evs) == 0 {
		return
	}
	s.sqsMu.Lock()
	defer s.sqsMu.Unlock()
	now := s.clock.Now()
	for _, ev := range evs {
		body, err := json.Marshal(ev)
		if err != nil {
			panic("fakeaws: an event does not marshal: " + err.Error()) // plain data: a bug in the fake
		}
		names := make([]string, 0, len(s.queues[ev.Region]))
		for name, q := range s.queues[ev.Region] {
			if slices.Contains(q.EventSources, ev.Source) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			s.deliver(s.queues[ev.Region][name], string(body), now)
		}
	}
}

// deliver puts one event's message(s) into a queue, with the delivery
// faults. Callers hold sqsMu.
func (s *Server) deliver(q *queue, body string, now time.Time) {
	d := &s.delivery
	lost, twice := d.rng.Float64() < d.cfg.Loss, d.rng.Float64() < d.cfg.Duplicate
	if lost {
		return
	}
	copies := 1
	if twice {
		copies = 2
	}
	for range copies {
		delay := d.cfg.Delay
		if d.cfg.Jitter > 0 {
			delay += time.Duration(d.rng.Int64N(int64(d.cfg.Jitter)))
		}
		pos := len(q.msgs)
		if d.cfg.ReorderWindow > 0 {
			for n := d.rng.IntN(d.cfg.ReorderWindow + 1); n > 0 && pos > 0 && q.msgs[pos-1].receiveCount == 0; n-- {
				pos--
			}
		}
		q.add(&message{id: newUUID(), body: body, md5: md5Hex(body), senderID: eventBridgeSenderID, sent: now, visibleAt: now.Add(delay)}, pos)
	}
}
