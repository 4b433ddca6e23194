package fakeaws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// canary is written as every value; no event or queue body may hold it.
const canary = "CANARY-d41d8cd98f00b204e980"

// received is an event as a consumer parses a message body.
type received struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

type ssmDetail struct {
	Operation, Name, Type, Description string
}

type trailDetail struct {
	EventVersion string `json:"eventVersion"`
	UserIdentity struct {
		Type, PrincipalID, ARN, AccountID string
	} `json:"userIdentity"`
	EventTime          string         `json:"eventTime"`
	EventSource        string         `json:"eventSource"`
	EventName          string         `json:"eventName"`
	AWSRegion          string         `json:"awsRegion"`
	RequestParameters  map[string]any `json:"requestParameters"`
	ResponseElements   map[string]any `json:"responseElements"`
	EventID            string         `json:"eventID"`
	EventType          string         `json:"eventType"`
	RecipientAccountID string         `json:"recipientAccountId"`
}

func parseEvent(t *testing.T, body string) received {
	t.Helper()
	var ev received
	dec := json.NewDecoder(strings.NewReader(body))
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("body is not an event: %v\n%s", err, body)
	}
	return ev
}

// TestEventsFromWrites: each write, through the SDK or the fake's Go API,
// puts its event into the queues of its region, in EventBridge's envelope
// with the detail AWS documents for it; no value is in any of them.
func TestEventsFromWrites(t *testing.T) {
	ctx := context.Background()
	secretID := "app/db"
	type want struct {
		region, source, detailType string
		ssm                        *ssmDetail
		eventName                  string
		request                    map[string]any // members that must be there, with these values
		identity                   string
	}
	adminARN := "arn:aws:iam::123456789012:user/" + adminKey
	control := "arn:aws:iam::123456789012:user/fakeaws-control"
	role := "arn:aws:iam::123456789012:role/app"
	tests := []struct {
		name  string
		setup func(e *sqsEnv)
		write func(t *testing.T, e *sqsEnv)
		want  want
	}{
		{"PutParameter creates", nil, func(t *testing.T, e *sqsEnv) {
			_, err := e.ssm(east, admin).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/token"), Value: aws.String(canary), Type: ssmtypes.ParameterTypeSecureString, Description: aws.String("the token")})
			noErr(t, err)
		}, want{region: east, source: "aws.ssm", detailType: "Parameter Store Change", ssm: &ssmDetail{"Create", "/app/token", "SecureString", "the token"}}},
		{"PutParameter updates", func(e *sqsEnv) { e.srv.PutParameter(east, "/app/token", "v1", fakeaws.TypeString) }, func(t *testing.T, e *sqsEnv) {
			_, err := e.ssm(east, admin).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/token"), Value: aws.String(canary), Overwrite: aws.Bool(true)})
			noErr(t, err)
		}, want{region: east, source: "aws.ssm", detailType: "Parameter Store Change", ssm: &ssmDetail{Operation: "Update", Name: "/app/token", Type: "String"}}},
		{"LabelParameterVersion", func(e *sqsEnv) { e.srv.PutParameter(west, "/app/token", canary, fakeaws.TypeStringList) }, func(t *testing.T, e *sqsEnv) {
			_, err := e.ssm(west, admin).LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: aws.String("/app/token"), Labels: []string{"stable"}})
			noErr(t, err)
		}, want{region: west, source: "aws.ssm", detailType: "Parameter Store Change", ssm: &ssmDetail{Operation: "LabelParameterVersion", Name: "/app/token", Type: "StringList"}}},
		{"DeleteParameter", func(e *sqsEnv) { e.srv.PutParameter(east, "/app/token", canary, "") }, func(t *testing.T, e *sqsEnv) {
			_, err := e.ssm(east, admin).DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/app/token")})
			noErr(t, err)
		}, want{region: east, source: "aws.ssm", detailType: "Parameter Store Change", ssm: &ssmDetail{Operation: "Delete", Name: "/app/token", Type: "String"}}},
		{"DeleteParameters", func(e *sqsEnv) { e.srv.PutParameter(east, "/app/token", canary, "") }, func(t *testing.T, e *sqsEnv) {
			out, err := e.ssm(east, admin).DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: []string{"/app/token", "/app/none"}})
			noErr(t, err)
			if !slices.Equal(out.DeletedParameters, []string{"/app/token"}) || !slices.Equal(out.InvalidParameters, []string{"/app/none"}) {
				t.Errorf("deleted %v, invalid %v", out.DeletedParameters, out.InvalidParameters)
			}
		}, want{region: east, source: "aws.ssm", detailType: "Parameter Store Change", ssm: &ssmDetail{Operation: "Delete", Name: "/app/token", Type: "String"}}},
		{"Go API PutParameter", nil, func(t *testing.T, e *sqsEnv) {
			e.srv.PutParameter(east, "/app/token", canary, fakeaws.TypeSecureString)
		}, want{region: east, source: "aws.ssm", detailType: "Parameter Store Change", ssm: &ssmDetail{Operation: "Create", Name: "/app/token", Type: "SecureString"}}},

		{"CreateSecret", nil, func(t *testing.T, e *sqsEnv) {
			_, err := e.sm(east, admin).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(secretID), SecretString: aws.String(canary)})
			noErr(t, err)
		}, want{region: east, source: "aws.secretsmanager", eventName: "CreateSecret", request: map[string]any{"name": secretID}, identity: adminARN}},
		{"PutSecretValue", func(e *sqsEnv) { e.srv.PutSecretString(east, secretID, "v1") }, func(t *testing.T, e *sqsEnv) {
			_, err := e.sm(east, admin).PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(secretID), SecretString: aws.String(canary)})
			noErr(t, err)
		}, want{region: east, source: "aws.secretsmanager", eventName: "PutSecretValue", request: map[string]any{"secretId": secretID}, identity: adminARN}},
		{"UpdateSecret", func(e *sqsEnv) { e.srv.PutSecretString(east, secretID, "v1") }, func(t *testing.T, e *sqsEnv) {
			_, err := e.sm(east, admin).UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String(secretID), SecretString: aws.String(canary), Description: aws.String("db")})
			noErr(t, err)
		}, want{region: east, source: "aws.secretsmanager", eventName: "UpdateSecret", request: map[string]any{"secretId": secretID, "description": "db"}, identity: adminARN}},
		{"UpdateSecretVersionStage", func(e *sqsEnv) {
			e.srv.PutSecretString(east, secretID, canary)
			e.srv.PutSecretString(east, secretID, canary+"2")
		}, func(t *testing.T, e *sqsEnv) {
			stages, _ := e.srv.SecretVersionStages(east, secretID)
			var cur, prev string
			for id, st := range stages {
				if slices.Contains(st, fakeaws.StageCurrent) {
					cur = id
				} else {
					prev = id
				}
			}
			_, err := e.sm(east, admin).UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretID), VersionStage: aws.String(fakeaws.StageCurrent), MoveToVersionId: aws.String(prev), RemoveFromVersionId: aws.String(cur)})
			noErr(t, err)
		}, want{region: east, source: "aws.secretsmanager", eventName: "UpdateSecretVersionStage", request: map[string]any{"secretId": secretID, "versionStage": "AWSCURRENT"}, identity: adminARN}},
		{"DeleteSecret", func(e *sqsEnv) { e.srv.PutSecretString(east, secretID, canary) }, func(t *testing.T, e *sqsEnv) {
			_, err := e.sm(east, admin).DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(secretID), RecoveryWindowInDays: aws.Int64(7)})
			noErr(t, err)
		}, want{region: east, source: "aws.secretsmanager", eventName: "DeleteSecret", request: map[string]any{"secretId": secretID, "recoveryWindowInDays": float64(7)}, identity: adminARN}},
		{"RestoreSecret", func(e *sqsEnv) {
			e.srv.PutSecretString(east, secretID, canary)
			_, err := e.sm(east, admin).DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(secretID)})
			if err != nil {
				panic(err)
			}
		}, func(t *testing.T, e *sqsEnv) {
			_, err := e.sm(east, admin).RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(secretID)})
			noErr(t, err)
		}, want{region: east, source: "aws.secretsmanager", eventName: "RestoreSecret", request: map[string]any{"secretId": secretID}, identity: adminARN}},
		{"PutResourcePolicy", func(e *sqsEnv) { e.srv.PutSecretString(east, secretID, canary) }, func(t *testing.T, e *sqsEnv) {
			_, err := e.sm(east, admin).PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String(secretID), ResourcePolicy: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
			noErr(t, err)
		}, want{region: east, source: "aws.secretsmanager", eventName: "PutResourcePolicy", request: map[string]any{"secretId": secretID}, identity: adminARN}},
		{"Go API PutSecretString", func(e *sqsEnv) { e.srv.PutSecretString(west, secretID, "v1") }, func(t *testing.T, e *sqsEnv) {
			e.srv.PutSecretString(west, secretID, canary)
		}, want{region: west, source: "aws.secretsmanager", eventName: "PutSecretValue", request: map[string]any{"secretId": secretID}, identity: control}},

		{"PutRolePolicy", nil, func(t *testing.T, e *sqsEnv) {
			noErr(t, e.srv.SetRolePermissions(role, []string{"ssm:GetParameters"}, []string{"*"}, nil))
		}, want{region: east, source: "aws.iam", eventName: "PutRolePolicy", request: map[string]any{"roleName": "app", "policyName": "fakeaws"}, identity: control}},
		{"AttachRolePolicy", nil, func(t *testing.T, e *sqsEnv) {
			noErr(t, e.srv.ChangeRole(role, fakeaws.RoleChange{EventName: fakeaws.IAMAttachRolePolicy, PolicyARN: "arn:aws:iam::aws:policy/SecretsManagerReadWrite", Actions: []string{"secretsmanager:*"}, Resources: []string{"*"}}))
		}, want{region: east, source: "aws.iam", eventName: "AttachRolePolicy", request: map[string]any{"roleName": "app", "policyArn": "arn:aws:iam::aws:policy/SecretsManagerReadWrite"}, identity: control}},
		{"DetachRolePolicy", nil, func(t *testing.T, e *sqsEnv) {
			noErr(t, e.srv.ChangeRole(role, fakeaws.RoleChange{EventName: fakeaws.IAMDetachRolePolicy, PolicyARN: "arn:aws:iam::aws:policy/SecretsManagerReadWrite"}))
		}, want{region: east, source: "aws.iam", eventName: "DetachRolePolicy", request: map[string]any{"roleName": "app"}, identity: control}},
		{"DeleteRolePolicy", nil, func(t *testing.T, e *sqsEnv) {
			noErr(t, e.srv.ChangeRole(role, fakeaws.RoleChange{EventName: fakeaws.IAMDeleteRolePolicy, PolicyName: "fakeaws"}))
		}, want{region: east, source: "aws.iam", eventName: "DeleteRolePolicy", request: map[string]any{"roleName": "app", "policyName": "fakeaws"}, identity: control}},
		{"UpdateAssumeRolePolicy", nil, func(t *testing.T, e *sqsEnv) {
			noErr(t, e.srv.ChangeRole(role, fakeaws.RoleChange{EventName: fakeaws.IAMUpdateAssumeRolePolicy, TrustedSubjects: []string{"system:serviceaccount:team-b:app"}}))
		}, want{region: east, source: "aws.iam", eventName: "UpdateAssumeRolePolicy", request: map[string]any{"roleName": "app"}, identity: control}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newSQSEnv(t)
			noErr(t, e.srv.AddRole(fakeaws.Role{ARN: role, TrustedSubjects: []string{"system:serviceaccount:team-a:app"}}))
			if tc.setup != nil {
				tc.setup(e)
			}
			before := len(e.srv.QueueBodies(tc.want.region, eventsQueue))
			tc.write(t, e)
			bodies := e.srv.QueueBodies(tc.want.region, eventsQueue)
			if len(bodies) != before+1 {
				t.Fatalf("%d new messages in %s, want 1", len(bodies)-before, tc.want.region)
			}
			for _, r := range []string{east, west} {
				for _, b := range e.srv.QueueBodies(r, eventsQueue) {
					if strings.Contains(b, canary) {
						t.Fatalf("a queue body holds the value: %s", b)
					}
				}
			}
			ev := parseEvent(t, bodies[len(bodies)-1])
			if ev.Version != "0" || ev.ID == "" || ev.Account != "123456789012" || ev.Region != tc.want.region || ev.Source != tc.want.source {
				t.Errorf("envelope: %+v", ev)
			}
			if _, err := time.Parse(time.RFC3339, ev.Time); err != nil {
				t.Errorf("time %q: %v", ev.Time, err)
			}
			if tc.want.ssm != nil {
				checkSSMDetail(t, ev, *tc.want.ssm)
				return
			}
			checkTrailDetail(t, ev, tc.want.source, tc.want.eventName, tc.want.identity, tc.want.request)
		})
	}
}

func checkSSMDetail(t *testing.T, ev received, want ssmDetail) {
	t.Helper()
	if ev.DetailType != "Parameter Store Change" {
		t.Errorf("detail-type = %q", ev.DetailType)
	}
	var got map[string]string
	if err := json.Unmarshal(ev.Detail, &got); err != nil {
		t.Fatal(err)
	}
	wantMap := map[string]string{"operation": want.Operation, "name": want.Name, "type": want.Type}
	if want.Description != "" {
		wantMap["description"] = want.Description
	}
	if fmt.Sprint(got) != fmt.Sprint(wantMap) {
		t.Errorf("detail = %v, want %v", got, wantMap)
	}
	if wantARN := "arn:aws:ssm:" + ev.Region + ":123456789012:parameter" + want.Name; !slices.Equal(ev.Resources, []string{wantARN}) {
		t.Errorf("resources = %v, want [%s]", ev.Resources, wantARN)
	}
}

func checkTrailDetail(t *testing.T, ev received, source, eventName, identity string, request map[string]any) {
	t.Helper()
	if ev.DetailType != "AWS API Call via CloudTrail" {
		t.Errorf("detail-type = %q", ev.DetailType)
	}
	var d trailDetail
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		t.Fatal(err)
	}
	wantSource := strings.TrimPrefix(source, "aws.") + ".amazonaws.com"
	if d.EventSource != wantSource || d.EventName != eventName || d.AWSRegion != ev.Region || d.EventType != "AwsApiCall" ||
		d.EventID == "" || d.RecipientAccountID != "123456789012" || d.EventVersion == "" || d.EventTime != ev.Time {
		t.Errorf("detail: %+v", d)
	}
	if d.UserIdentity.ARN != identity || d.UserIdentity.AccountID != "123456789012" || d.UserIdentity.PrincipalID == "" {
		t.Errorf("userIdentity = %+v, want %s", d.UserIdentity, identity)
	}
	for k, v := range request {
		if fmt.Sprint(d.RequestParameters[k]) != fmt.Sprint(v) {
			t.Errorf("requestParameters[%s] = %v, want %v (all: %v)", k, d.RequestParameters[k], v, d.RequestParameters)
		}
	}
	for k := range d.RequestParameters {
		if strings.Contains(strings.ToLower(k), "secretstring") || strings.Contains(strings.ToLower(k), "secretbinary") {
			t.Errorf("requestParameters has %s: CloudTrail records no value", k)
		}
	}
	if source == "aws.secretsmanager" {
		if arn, _ := d.ResponseElements["arn"].(string); !strings.HasPrefix(arn, "arn:aws:secretsmanager:"+ev.Region+":123456789012:secret:app/db-") {
			t.Errorf("responseElements.arn = %q", arn)
		}
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// faultRun makes 40 parameter writes under delivery faults and returns
// what a consumer receives once every delay has passed, as
// "name#occurrence" in delivery order.
func faultRun(t *testing.T, d fakeaws.Delivery) []string {
	t.Helper()
	e := newSQSEnv(t)
	noErr(t, e.srv.SetDelivery(d))
	for i := range 40 {
		e.srv.PutParameter(east, fmt.Sprintf("/app/p%02d", i), "v", fakeaws.TypeString)
	}
	if d.Delay > 0 {
		if got := e.receive(t, sqs.ReceiveMessageInput{MaxNumberOfMessages: 10}); len(got) != 0 {
			t.Fatalf("%d messages visible before the delay", len(got))
		}
	}
	e.clk.Step(d.Delay + d.Jitter)
	var out []string
	seen := map[string]int{}
	for _, m := range e.drain(t) {
		var det ssmDetail
		ev := parseEvent(t, aws.ToString(m.Body))
		noErr(t, json.Unmarshal(ev.Detail, &det))
		seen[det.Name]++
		out = append(out, fmt.Sprintf("%s#%d", det.Name, seen[det.Name]))
	}
	return out
}

// TestDeliveryFaults: under a seed, loss, duplication, reordering and delay
// give the same sequence every run, and each shows in it.
func TestDeliveryFaults(t *testing.T) {
	d := fakeaws.Delivery{Seed: 42, Delay: 2 * time.Second, Jitter: time.Second, Loss: 0.2, Duplicate: 0.2, ReorderWindow: 3}
	first, second := faultRun(t, d), faultRun(t, d)
	if !slices.Equal(first, second) {
		t.Fatalf("the same seed gave two sequences:\n%v\n%v", first, second)
	}
	var lost, dup, reordered int
	names := map[string]bool{}
	prev := ""
	for _, s := range first {
		name, n, _ := strings.Cut(s, "#")
		names[name] = true
		if n == "2" {
			dup++
		}
		if n == "1" && name < prev {
			reordered++
		}
		if n == "1" {
			prev = max(prev, name)
		}
	}
	lost = 40 - len(names)
	if lost == 0 || dup == 0 || reordered == 0 {
		t.Errorf("seed 42: %d lost, %d duplicated, %d reordered; want some of each\n%v", lost, dup, reordered, first)
	}
	if other := faultRun(t, fakeaws.Delivery{Seed: 43, Loss: 0.2, Duplicate: 0.2, ReorderWindow: 3}); slices.Equal(first, other) {
		t.Error("another seed gave the same sequence")
	}
	clean := faultRun(t, fakeaws.Delivery{})
	if len(clean) != 40 || !slices.IsSorted(clean) {
		t.Errorf("without faults: %d messages, in order %v", len(clean), slices.IsSorted(clean))
	}
}

// TestChangeRoleApplies: ChangeRole changes what the role's live sessions
// may do (a policy change) and who may assume it (a trust change), besides
// announcing it.
func TestChangeRoleApplies(t *testing.T) {
	e := newSQSEnv(t)
	ctx := context.Background()
	const role = "arn:aws:iam::123456789012:role/app"
	noErr(t, e.srv.AddRole(fakeaws.Role{ARN: role, TrustedRoles: []string{"arn:aws:iam::123456789012:user/" + adminKey}, Actions: []string{"ssm:GetParameters"}, Resources: []string{"*"}}))
	e.srv.PutParameter(east, "/p", "v", "")
	out, err := sts.NewFromConfig(fakeaws.AWSConfig(e.ts.URL, east, adminKey, adminPass, "")).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("session")})
	noErr(t, err)
	session := creds{aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken)}
	noErr(t, getParam(ctx, e.ssm(east, session)))

	noErr(t, e.srv.ChangeRole(role, fakeaws.RoleChange{EventName: fakeaws.IAMDeleteRolePolicy, PolicyName: "fakeaws"}))
	wantCode(t, getParam(ctx, e.ssm(east, session)), "AccessDeniedException")

	noErr(t, e.srv.ChangeRole(role, fakeaws.RoleChange{EventName: fakeaws.IAMUpdateAssumeRolePolicy, TrustedSubjects: []string{"system:serviceaccount:b:app"}}))
	if err := e.srv.ChangeRole(role, fakeaws.RoleChange{EventName: "CreateRole"}); err == nil {
		t.Error("ChangeRole took an IAM call it does not know")
	}
	if err := e.srv.ChangeRole("arn:aws:iam::123456789012:role/none", fakeaws.RoleChange{EventName: fakeaws.IAMPutRolePolicy}); err == nil {
		t.Error("ChangeRole changed a role that does not exist")
	}
	if n := len(e.srv.QueueBodies(east, eventsQueue)); n != 3 {
		t.Errorf("%d messages, want 3 (the parameter and two role changes)", n)
	}
}
