package events_test

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// TestPatternsMatchTheFakesEvents: every change event the AWS fake sends
// for a write (through the SDK, as coffer's users write, and through its
// Go API, as the suites do) is matched by the rule for its service, and
// only by it; reads send none. The fake's events are what the consumer's
// tests feed it, so the rules and those tests agree on what arrives.
func TestPatternsMatchTheFakesEvents(t *testing.T) {
	patterns := loadPatterns(t)
	const (
		region = "us-east-1" // IAM's events arrive here, with the others
		queue  = "coffer-events"
		key    = "AKIDEVENTSTEST"
		secret = "events-test-secret-key"
	)
	srv, ts := fakeaws.NewTestServer(t)
	srv.AddIdentity(fakeaws.AllowAll(key, secret))
	if err := srv.AddQueue(region, fakeaws.Queue{Name: queue, EventSources: []string{fakeaws.SourceSSM, fakeaws.SourceSecretsManager, fakeaws.SourceIAM}}); err != nil {
		t.Fatal(err)
	}
	cfg := fakeaws.AWSConfig(ts.URL, region, key, secret, "")
	sm, ps := secretsmanager.NewFromConfig(cfg), ssm.NewFromConfig(cfg)
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// Secrets Manager through the SDK, then the fake's Go API.
	created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/db"), SecretString: aws.String("v1")})
	if err != nil {
		t.Fatal(err)
	}
	put, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: created.ARN, SecretString: aws.String("v2")})
	if err != nil {
		t.Fatal(err)
	}
	must(sm.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: created.ARN, Description: aws.String("nonce-1")}))
	must(sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: created.ARN, VersionStage: aws.String("AWSPENDING"), MoveToVersionId: put.VersionId}))
	must(sm.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: created.ARN, ResourcePolicy: aws.String(`{"Version":"2012-10-17","Statement":[]}`)}))
	must(sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: created.ARN, RecoveryWindowInDays: aws.Int64(7)}))
	must(sm.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: created.ARN}))
	must(sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: created.ARN}))
	must(sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: created.ARN}))
	srv.PutSecretString(region, "app/api", "k1")
	srv.PutSecretString(region, "app/api", "k2")

	// Parameter Store through the SDK, then the fake's Go API.
	must(ps.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/url"), Value: aws.String("a"), Type: ssmtypes.ParameterTypeString}))
	must(ps.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/url"), Value: aws.String("b"), Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true)}))
	must(ps.LabelParameterVersion(ctx, &ssm.LabelParameterVersionInput{Name: aws.String("/app/url"), ParameterVersion: aws.Int64(1), Labels: []string{"previous"}}))
	must(ps.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/url")}))
	must(ps.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("/app/url")}))
	srv.PutParameter(region, "/app/flag", "on", "String")

	// IAM: the fake has no IAM API; ChangeRole announces each call.
	role := "arn:aws:iam::" + srv.AccountID() + ":role/app"
	if err := srv.AddRole(fakeaws.Role{ARN: role, TrustedSubjects: []string{"system:serviceaccount:team:app"}}); err != nil {
		t.Fatal(err)
	}
	policy := "arn:aws:iam::aws:policy/SecretsManagerReadWrite"
	for _, c := range []fakeaws.RoleChange{
		{EventName: fakeaws.IAMPutRolePolicy, PolicyName: "read", Actions: []string{"secretsmanager:GetSecretValue"}, Resources: []string{"*"}},
		{EventName: fakeaws.IAMDeleteRolePolicy, PolicyName: "read"},
		{EventName: fakeaws.IAMAttachRolePolicy, PolicyARN: policy},
		{EventName: fakeaws.IAMDetachRolePolicy, PolicyARN: policy},
		{EventName: fakeaws.IAMUpdateAssumeRolePolicy, TrustedSubjects: []string{"system:serviceaccount:team:other"}},
	} {
		if err := srv.ChangeRole(role, c); err != nil {
			t.Fatal(err)
		}
	}

	ruleOf := map[string]string{
		fakeaws.SourceSSM:            parameterStore,
		fakeaws.SourceSecretsManager: secretsManager,
		fakeaws.SourceIAM:            iamRoles,
	}
	var seen []string
	for _, body := range srv.QueueBodies(region, queue) {
		var ev map[string]any
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			t.Fatalf("a message is not an event: %v", err)
		}
		source, _ := ev["source"].(string)
		name := source + " " + changeName(ev)
		seen = append(seen, name)
		if got, want := matching(patterns, ev), []string{ruleOf[source]}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: matched by %v, want %v", name, got, want)
		}
	}
	sort.Strings(seen)
	want := []string{
		"aws.iam AttachRolePolicy", "aws.iam DeleteRolePolicy", "aws.iam DetachRolePolicy",
		"aws.iam PutRolePolicy", "aws.iam UpdateAssumeRolePolicy",
		"aws.secretsmanager CreateSecret", "aws.secretsmanager CreateSecret",
		"aws.secretsmanager DeleteSecret", "aws.secretsmanager PutResourcePolicy",
		"aws.secretsmanager PutSecretValue", "aws.secretsmanager PutSecretValue",
		"aws.secretsmanager RestoreSecret", "aws.secretsmanager UpdateSecret",
		"aws.secretsmanager UpdateSecretVersionStage",
		"aws.ssm Create", "aws.ssm Create", "aws.ssm Delete", "aws.ssm LabelParameterVersion", "aws.ssm Update",
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("the queue holds\n%v\nwant one event per write, none per read:\n%v", seen, want)
	}
}
