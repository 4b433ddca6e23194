// Package changefeed is coffer-controller events' consumer: it long-polls
// the SQS queue that EventBridge rules fill with AWS's change
// announcements, turns them into the change ledger (provider/changes'
// Book) and publishes it in a ConfigMap for the nodes, proving the
// pipeline live with a canary written into AWS and seen coming back.
//
// Nothing in a message is trusted: whoever may send to the queue can put
// any body there. A message can only name something as changed, which
// costs the nodes a read. It proves the pipeline live only with the
// nonce of a canary round in flight, which this process draws at random
// and writes nowhere but into the canary objects' descriptions: whoever
// may read those (ssm:DescribeParameters, secretsmanager:DescribeSecret)
// and send to the queue could forge a proof, so keep both to the
// EventBridge rules and coffer.
package changefeed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-csi/coffer/provider/changes"
)

// MaxBodyBytes bounds a message body before it is parsed: SQS's largest
// message is 256 KiB.
const MaxBodyBytes = 256 << 10

// maxResources bounds the resources of one Secrets Manager event that are
// read: AWS's name one secret at most, and a forged event listing
// thousands would cost a quadratic deduplication.
const maxResources = 16

// Event sources and detail types of the announcements the consumer reads.
const (
	sourceSSM            = "aws.ssm"
	sourceSecretsManager = "aws.secretsmanager"
	sourceIAM            = "aws.iam"

	detailParameterChange = "Parameter Store Change"
	detailCloudTrail      = "AWS API Call via CloudTrail"
)

// Service is the AWS service an announcement came from.
type Service string

// The services whose announcements reach the ledger.
const (
	ServiceSSM            Service = "ssm"
	ServiceSecretsManager Service = "secretsmanager"
	ServiceIAM            Service = "iam"
)

// ErrIgnored is wrapped by Parse's error for a well-formed event that
// announces no change coffer tracks (another source or detail type, a
// read-only call, a call naming no secret or role).
var ErrIgnored = errors.New("not a change coffer tracks")

// Event is what one announcement says, in the consumer's terms.
type Event struct {
	Service Service
	// Account and Region are the envelope's.
	Account, Region string
	// Operation is the Parameter Store change's operation or the
	// CloudTrail record's eventName.
	Operation string
	// Description is what the canary's nonce travels in: a Parameter
	// Store change's detail.description, an UpdateSecret's
	// requestParameters.description. Untrusted, like all of it.
	Description string
	// Time is when the event says it was made (zero when it says
	// nothing readable). Untrusted: for the lag metric only.
	Time time.Time
	// Subjects are every reading of what the event names.
	Subjects []changes.Subject
}

// text is a JSON string; any other JSON value reads as "" without an
// error, so that a field of an unexpected type names nothing rather
// than failing the whole event.
type text string

func (t *text) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*t = text(s)
	}
	return nil
}

// envelope is EventBridge's event, as SQS delivers it from a rule's target.
type envelope struct {
	DetailType text            `json:"detail-type"`
	Source     text            `json:"source"`
	Account    text            `json:"account"`
	Region     text            `json:"region"`
	Time       text            `json:"time"`
	Resources  []text          `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// parameterDetail is a Parameter Store Change's detail.
type parameterDetail struct {
	Operation   text `json:"operation"`
	Name        text `json:"name"`
	Description text `json:"description"`
}

// cloudTrailDetail is the part of a CloudTrail record coffer reads.
type cloudTrailDetail struct {
	EventSource       text `json:"eventSource"`
	EventName         text `json:"eventName"`
	ReadOnly          bool `json:"readOnly"`
	RequestParameters struct {
		SecretID    text `json:"secretId"`
		Name        text `json:"name"`
		RoleName    text `json:"roleName"`
		Description text `json:"description"`
	} `json:"requestParameters"`
	ResponseElements struct {
		ARN  text `json:"arn"`
		Name text `json:"name"`
	} `json:"responseElements"`
}

// Parse reads one message body. Its errors never quote the body: they
// wrap ErrIgnored for events coffer does not track, and say what is wrong
// for anything else (too large, not an event, an accepted event naming
// nothing valid).
func Parse(body []byte) (Event, error) {
	if len(body) > MaxBodyBytes {
		return Event{}, fmt.Errorf("the message is %d bytes, over SQS's limit of %d", len(body), MaxBodyBytes)
	}
	var env envelope
	if err := strictObject(body, &env); err != nil {
		return Event{}, fmt.Errorf("the message is not an EventBridge event: %w", err)
	}
	ev := Event{Account: string(env.Account), Region: string(env.Region)}
	if t, err := time.Parse(time.RFC3339, string(env.Time)); err == nil {
		ev.Time = t
	}
	switch {
	case env.Source == sourceSSM && env.DetailType == detailParameterChange:
		return parameterEvent(ev, env)
	case env.DetailType != detailCloudTrail:
		return Event{}, fmt.Errorf("detail type: %w", ErrIgnored)
	case env.Source == sourceSecretsManager:
		return secretEvent(ev, env)
	case env.Source == sourceIAM:
		return roleEvent(ev, env)
	}
	return Event{}, fmt.Errorf("source: %w", ErrIgnored)
}

// strictObject decodes one JSON object and nothing after it.
func strictObject(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return errors.New("not a JSON object of the expected shape")
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

func parameterEvent(ev Event, env envelope) (Event, error) {
	var d parameterDetail
	if err := strictObject(env.Detail, &d); err != nil {
		return Event{}, fmt.Errorf("a Parameter Store change's detail: %w", err)
	}
	ev.Service, ev.Operation, ev.Description = ServiceSSM, string(d.Operation), string(d.Description)
	ev.Subjects = changes.Parameter(ev.Account, ev.Region, string(d.Name))
	if len(ev.Subjects) == 0 {
		return Event{}, errors.New("a Parameter Store change names no valid parameter (name, account and region)")
	}
	return ev, nil
}

func cloudTrail(env envelope, service string) (cloudTrailDetail, error) {
	var d cloudTrailDetail
	if err := strictObject(env.Detail, &d); err != nil {
		return d, fmt.Errorf("a CloudTrail record: %w", err)
	}
	if string(d.EventSource) != service+".amazonaws.com" {
		return d, fmt.Errorf("event source: %w", ErrIgnored)
	}
	if d.ReadOnly {
		return d, fmt.Errorf("a read-only call: %w", ErrIgnored)
	}
	return d, nil
}

func secretEvent(ev Event, env envelope) (Event, error) {
	d, err := cloudTrail(env, "secretsmanager")
	if err != nil {
		return Event{}, err
	}
	ev.Service, ev.Operation = ServiceSecretsManager, string(d.EventName)
	if d.EventName == "UpdateSecret" {
		ev.Description = string(d.RequestParameters.Description)
	}
	if len(env.Resources) > maxResources {
		return Event{}, fmt.Errorf("a Secrets Manager event lists %d resources, more than the %d coffer reads", len(env.Resources), maxResources)
	}
	ids := []text{d.RequestParameters.SecretID, d.RequestParameters.Name, d.ResponseElements.ARN, d.ResponseElements.Name}
	for _, id := range append(ids, env.Resources...) {
		if id != "" {
			ev.Subjects = appendNew(ev.Subjects, changes.Secrets(ev.Account, ev.Region, string(id))...)
		}
	}
	if len(ev.Subjects) == 0 {
		return Event{}, fmt.Errorf("a Secrets Manager call naming no valid secret: %w", ErrIgnored)
	}
	return ev, nil
}

func roleEvent(ev Event, env envelope) (Event, error) {
	d, err := cloudTrail(env, "iam")
	if err != nil {
		return Event{}, err
	}
	ev.Service, ev.Operation = ServiceIAM, string(d.EventName)
	if d.RequestParameters.RoleName != "" {
		ev.Subjects = changes.Role(ev.Account, string(d.RequestParameters.RoleName))
	}
	if len(ev.Subjects) == 0 {
		return Event{}, fmt.Errorf("an IAM call naming no valid role: %w", ErrIgnored)
	}
	return ev, nil
}

// appendNew appends the subjects not already in to.
func appendNew(to []changes.Subject, subjects ...changes.Subject) []changes.Subject {
	for _, s := range subjects {
		found := false
		for _, t := range to {
			if t == s {
				found = true
				break
			}
		}
		if !found {
			to = append(to, s)
		}
	}
	return to
}
