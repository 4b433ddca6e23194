package fakeaws_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

func TestGetSecretValue(t *testing.T) {
	e := newEnv(t)
	arn, v1 := e.srv.PutSecretString(east, "app/db", "one")
	_, v2 := e.srv.PutSecretString(east, "app/db", "two")
	_, binV := e.srv.PutSecretBinary(east, "app/cert", []byte{0, 1, 2, 0xff})
	partial := arn[:len(arn)-7]
	client := e.sm(east, admin)

	tests := []struct {
		name      string
		in        secretsmanager.GetSecretValueInput
		wantStr   string
		wantBin   []byte
		wantVer   string
		wantCode  string
		wantMsg   string
		wantStage []string
	}{
		{name: "by name defaults to AWSCURRENT", in: secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")}, wantStr: "two", wantVer: v2, wantStage: []string{"AWSCURRENT"}},
		{name: "by full ARN", in: secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)}, wantStr: "two", wantVer: v2},
		{name: "by partial ARN", in: secretsmanager.GetSecretValueInput{SecretId: aws.String(partial)}, wantStr: "two", wantVer: v2},
		{name: "by stage AWSPREVIOUS", in: secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSPREVIOUS")}, wantStr: "one", wantVer: v1, wantStage: []string{"AWSPREVIOUS"}},
		{name: "by version id", in: secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionId: aws.String(v1)}, wantStr: "one", wantVer: v1},
		{name: "version id and matching stage", in: secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionId: aws.String(v2), VersionStage: aws.String("AWSCURRENT")}, wantStr: "two", wantVer: v2},
		{name: "binary", in: secretsmanager.GetSecretValueInput{SecretId: aws.String("app/cert")}, wantBin: []byte{0, 1, 2, 0xff}, wantVer: binV},
		{name: "unknown secret", in: secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")}, wantCode: "ResourceNotFoundException", wantMsg: "Secrets Manager can't find the specified secret."},
		{name: "unknown ARN", in: secretsmanager.GetSecretValueInput{SecretId: aws.String(arn + "x")}, wantCode: "ResourceNotFoundException"},
		{name: "unknown version", in: secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionId: aws.String("v-nope")}, wantCode: "ResourceNotFoundException", wantMsg: "Secrets Manager can't find the specified secret value for VersionId: v-nope"},
		{name: "unknown stage", in: secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionStage: aws.String("AWSPENDING")}, wantCode: "ResourceNotFoundException", wantMsg: "Secrets Manager can't find the specified secret value for staging label: AWSPENDING"},
		{name: "version id with other stage", in: secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db"), VersionId: aws.String(v1), VersionStage: aws.String("AWSCURRENT")}, wantCode: "ResourceNotFoundException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := client.GetSecretValue(context.Background(), &tc.in)
			if tc.wantCode != "" {
				wantCode(t, err, tc.wantCode)
				if tc.wantMsg != "" && errMessage(err) != tc.wantMsg {
					t.Errorf("message = %q, want %q", errMessage(err), tc.wantMsg)
				}
				// Modeled errors must deserialize into their typed form.
				var rnf *types.ResourceNotFoundException
				if tc.wantCode == "ResourceNotFoundException" && !errors.As(err, &rnf) {
					t.Errorf("error %T is not *types.ResourceNotFoundException", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantBin != nil {
				if !bytes.Equal(out.SecretBinary, tc.wantBin) || out.SecretString != nil {
					t.Errorf("binary = %v / string %v, want %v", out.SecretBinary, out.SecretString, tc.wantBin)
				}
			} else if aws.ToString(out.SecretString) != tc.wantStr || out.SecretBinary != nil {
				t.Errorf("SecretString = %q, want %q", aws.ToString(out.SecretString), tc.wantStr)
			}
			if aws.ToString(out.VersionId) != tc.wantVer {
				t.Errorf("VersionId = %q, want %q", aws.ToString(out.VersionId), tc.wantVer)
			}
			if tc.wantStage != nil && !slices.Equal(out.VersionStages, tc.wantStage) {
				t.Errorf("VersionStages = %v, want %v", out.VersionStages, tc.wantStage)
			}
			if !strings.HasPrefix(aws.ToString(out.ARN), "arn:aws:secretsmanager:us-east-1:123456789012:secret:") {
				t.Errorf("ARN = %q", aws.ToString(out.ARN))
			}
			if out.CreatedDate == nil || out.CreatedDate.IsZero() {
				t.Error("CreatedDate missing")
			}
		})
	}
}

func TestSecretARNFormat(t *testing.T) {
	e := newEnv(t)
	arn, _ := e.srv.PutSecretString(west, "team/x", "v")
	prefix := "arn:aws:secretsmanager:us-west-2:123456789012:secret:team/x-"
	suffix := strings.TrimPrefix(arn, prefix)
	if !strings.HasPrefix(arn, prefix) || len(suffix) != 6 {
		t.Fatalf("ARN %q does not look like %s<6 chars>", arn, prefix)
	}
}

func TestCreateAndPutSecretValueMoveStages(t *testing.T) {
	e := newEnv(t)
	client := e.sm(east, admin)
	ctx := context.Background()

	created, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String("svc/token"),
		SecretString: aws.String("v1"),
		Tags:         []types.Tag{{Key: aws.String("team"), Value: aws.String("core")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v1 := aws.ToString(created.VersionId)

	// The SDK fills ClientRequestToken in, and it becomes the version id.
	put, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("svc/token"), SecretString: aws.String("v2")})
	if err != nil {
		t.Fatal(err)
	}
	v2 := aws.ToString(put.VersionId)
	if !slices.Equal(put.VersionStages, []string{"AWSCURRENT"}) {
		t.Errorf("PutSecretValue stages = %v", put.VersionStages)
	}

	put3, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(aws.ToString(created.ARN)),
		SecretBinary:       []byte("v3"),
		ClientRequestToken: aws.String("explicit-version-3-0000000000000000"),
	})
	if err != nil {
		t.Fatal(err)
	}
	v3 := aws.ToString(put3.VersionId)
	if v3 != "explicit-version-3-0000000000000000" {
		t.Errorf("VersionId = %q, want the ClientRequestToken", v3)
	}

	// A pending version does not disturb AWSCURRENT.
	put4, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String("svc/token"), SecretString: aws.String("v4"), VersionStages: []string{"AWSPENDING"},
	})
	if err != nil {
		t.Fatal(err)
	}
	v4 := aws.ToString(put4.VersionId)

	desc, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("svc/token")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{v2: {"AWSPREVIOUS"}, v3: {"AWSCURRENT"}, v4: {"AWSPENDING"}}
	if fmt.Sprint(desc.VersionIdsToStages) != fmt.Sprint(want) {
		t.Errorf("VersionIdsToStages = %v, want %v (v1 %s deprecated)", desc.VersionIdsToStages, want, v1)
	}
	if len(desc.Tags) != 1 || aws.ToString(desc.Tags[0].Key) != "team" {
		t.Errorf("Tags = %+v", desc.Tags)
	}

	// Deprecated versions are listed only on request.
	for _, tc := range []struct {
		deprecated bool
		want       int
	}{{false, 3}, {true, 4}} {
		lv, err := client.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("svc/token"), IncludeDeprecated: aws.Bool(tc.deprecated)})
		if err != nil {
			t.Fatal(err)
		}
		if len(lv.Versions) != tc.want {
			t.Errorf("IncludeDeprecated=%v: %d versions, want %d", tc.deprecated, len(lv.Versions), tc.want)
		}
	}

	// Idempotent retry with the same token and value succeeds; different
	// content under an existing version id does not.
	if _, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("svc/token"), SecretBinary: []byte("v3"), ClientRequestToken: aws.String(v3)}); err != nil {
		t.Errorf("idempotent retry: %v", err)
	}
	_, err = client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("svc/token"), SecretString: aws.String("other"), ClientRequestToken: aws.String(v3)})
	wantCode(t, err, "ResourceExistsException")

	stages, _ := e.srv.SecretVersionStages(east, "svc/token")
	if !slices.Equal(stages[v3], []string{"AWSCURRENT"}) {
		t.Errorf("after failed put, stages = %v", stages)
	}
}

func TestCreateSecretErrors(t *testing.T) {
	e := newEnv(t)
	e.srv.PutSecretString(east, "exists", "x")
	client := e.sm(east, admin)
	tests := []struct {
		name string
		in   secretsmanager.CreateSecretInput
		code string
	}{
		{"duplicate name", secretsmanager.CreateSecretInput{Name: aws.String("exists"), SecretString: aws.String("y")}, "ResourceExistsException"},
		{"both values", secretsmanager.CreateSecretInput{Name: aws.String("both"), SecretString: aws.String("y"), SecretBinary: []byte("y")}, "InvalidParameterException"},
		{"bad name", secretsmanager.CreateSecretInput{Name: aws.String("has space"), SecretString: aws.String("y")}, "ValidationException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.CreateSecret(context.Background(), &tc.in)
			wantCode(t, err, tc.code)
		})
	}

	// A secret created without a value exists but has no AWSCURRENT.
	if _, err := client.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String("empty")}); err != nil {
		t.Fatal(err)
	}
	_, err := client.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("empty")})
	wantCode(t, err, "ResourceNotFoundException")
	if !strings.Contains(errMessage(err), "staging label: AWSCURRENT") {
		t.Errorf("message = %q", errMessage(err))
	}
}

func TestUpdateSecretVersionStage(t *testing.T) {
	e := newEnv(t)
	_, v1 := e.srv.PutSecretString(east, "s", "1")
	_, v2 := e.srv.PutSecretString(east, "s", "2")
	_, v3 := e.srv.PutSecretString(east, "s", "3")
	client := e.sm(east, admin)
	ctx := context.Background()
	update := func(stage, to, from string) error {
		in := &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("s"), VersionStage: aws.String(stage)}
		if to != "" {
			in.MoveToVersionId = aws.String(to)
		}
		if from != "" {
			in.RemoveFromVersionId = aws.String(from)
		}
		_, err := client.UpdateSecretVersionStage(ctx, in)
		return err
	}

	// A custom label can be attached, then must be explicitly removed from
	// its current version to move.
	if err := update("blue", v1, ""); err != nil {
		t.Fatal(err)
	}
	wantCode(t, update("blue", v2, ""), "InvalidParameterException")
	if err := update("blue", v2, v1); err != nil {
		t.Fatal(err)
	}
	// Rolling AWSCURRENT back makes the old current AWSPREVIOUS.
	if err := update("AWSCURRENT", v1, v3); err != nil {
		t.Fatal(err)
	}
	wantCode(t, update("AWSCURRENT", "", v1), "InvalidParameterException")
	wantCode(t, update("x", "no-such-version", ""), "ResourceNotFoundException")
	if err := update("blue", "", v2); err != nil {
		t.Fatal(err)
	}

	stages, _ := e.srv.SecretVersionStages(east, "s")
	want := map[string][]string{v1: {"AWSCURRENT"}, v3: {"AWSPREVIOUS"}}
	if fmt.Sprint(stages) != fmt.Sprint(want) {
		t.Errorf("stages = %v, want %v", stages, want)
	}
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
	if err != nil || aws.ToString(out.SecretString) != "1" {
		t.Errorf("current = %v, %v; want 1", aws.ToString(out.SecretString), err)
	}
	// The Go seeding API has the same semantics.
	if err := e.srv.SetSecretStage(east, "s", v2, "AWSCURRENT"); err != nil {
		t.Fatal(err)
	}
	stages, _ = e.srv.SecretVersionStages(east, "s")
	if !slices.Equal(stages[v1], []string{"AWSPREVIOUS"}) || !slices.Equal(stages[v2], []string{"AWSCURRENT"}) {
		t.Errorf("after SetSecretStage: %v", stages)
	}
}

func TestDeleteSecret(t *testing.T) {
	e := newEnv(t)
	e.srv.PutSecretString(east, "soft", "x")
	e.srv.PutSecretString(east, "hard", "x")
	client := e.sm(east, admin)
	ctx := context.Background()

	del, err := client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("soft"), RecoveryWindowInDays: aws.Int64(7)})
	if err != nil || del.DeletionDate == nil {
		t.Fatalf("soft delete: %v %+v", err, del)
	}
	_, err = client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("soft")})
	wantCode(t, err, "InvalidRequestException")
	desc, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("soft")})
	if err != nil || desc.DeletedDate == nil {
		t.Errorf("describe deleted secret: %v, DeletedDate=%v", err, desc)
	}

	if _, err := client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("hard"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	_, err = client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("hard")})
	wantCode(t, err, "ResourceNotFoundException")

	_, err = client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("soft"), ForceDeleteWithoutRecovery: aws.Bool(true), RecoveryWindowInDays: aws.Int64(7)})
	wantCode(t, err, "InvalidParameterException")

	if !e.srv.DeleteSecret(east, "soft") || e.srv.DeleteSecret(east, "soft") {
		t.Error("DeleteSecret should report existence")
	}
}

// A deletion with a recovery window: reads fail with AWS's own error (also
// per secret in a batch) until RestoreSecret, or until the window ends.
func TestDeleteSecretRecoveryWindow(t *testing.T) {
	e := newEnv(t)
	e.srv.PutSecretString(east, "app/db", "v1")
	e.srv.PutSecretString(east, "app/other", "o")
	client := e.sm(east, admin)
	ctx := context.Background()
	const markedCode, markedMsg = "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion."
	read := func(id string) error {
		_, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		return err
	}

	for _, days := range []int64{6, 31} {
		_, err := client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("app/db"), RecoveryWindowInDays: aws.Int64(days)})
		wantCode(t, err, "InvalidParameterException")
	}
	before := time.Now()
	del, err := client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("app/db")})
	if err != nil {
		t.Fatal(err)
	}
	if d := del.DeletionDate.Sub(before); d < 30*24*time.Hour-time.Minute || d > 30*24*time.Hour+time.Minute {
		t.Errorf("default recovery window: DeletionDate %v after the call, want 30 days", d)
	}
	err = read("app/db")
	wantCode(t, err, markedCode)
	if errMessage(err) != markedMsg {
		t.Errorf("message %q", errMessage(err))
	}
	batch, err := client.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"app/db", "app/other"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.SecretValues) != 1 || aws.ToString(batch.SecretValues[0].Name) != "app/other" ||
		len(batch.Errors) != 1 || aws.ToString(batch.Errors[0].SecretId) != "app/db" ||
		aws.ToString(batch.Errors[0].ErrorCode) != markedCode || aws.ToString(batch.Errors[0].Message) != markedMsg {
		t.Errorf("batch: values %d, errors %+v", len(batch.SecretValues), batch.Errors)
	}
	_, err = client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/db"), SecretString: aws.String("x")})
	wantCode(t, err, "InvalidRequestException")

	// Restored: the same secret, value and version.
	if _, err := client.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("app/db")}); err != nil {
		t.Fatal(err)
	}
	if out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/db")}); err != nil || aws.ToString(out.SecretString) != "v1" {
		t.Fatalf("after RestoreSecret: %v", err)
	}
	desc, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("app/db")})
	if err != nil || desc.DeletedDate != nil {
		t.Errorf("restored secret: %v, DeletedDate %v", err, desc.DeletedDate)
	}

	// The end of the window deletes it for good; the name is free again.
	if _, err := client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("app/db"), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}
	if !e.srv.EndRecoveryWindow(east, "app/db") || e.srv.EndRecoveryWindow(east, "app/other") {
		t.Fatal("EndRecoveryWindow reports only secrets scheduled for deletion")
	}
	wantCode(t, read("app/db"), "ResourceNotFoundException")
	_, err = client.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("app/db")})
	wantCode(t, err, "ResourceNotFoundException")
	if _, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/db"), SecretString: aws.String("new")}); err != nil {
		t.Errorf("CreateSecret after the window: %v", err)
	}
}

func TestBatchGetSecretValueByID(t *testing.T) {
	e := newEnv(t)
	e.srv.PutSecretString(east, "app/a", "A")
	e.srv.PutSecretString(east, "app/b", "B")
	e.srv.PutSecretString(east, "other/c", "C")
	limited := creds{"AKIDLIMITED", "limited-secret", ""}
	e.srv.AddIdentity(fakeaws.Identity{
		AccessKeyID: limited.key, SecretAccessKey: limited.secret,
		ARN: "arn:aws:sts::123456789012:assumed-role/app/s1",
		// BatchGetSecretValue has no resource-level permissions, so it needs
		// its own grant on "*".
		Actions:    []string{"secretsmanager:GetSecretValue"},
		Resources:  []string{"arn:aws:secretsmanager:*:*:secret:app/*"},
		Statements: []fakeaws.Statement{{Actions: []string{"secretsmanager:BatchGetSecretValue"}, Resources: []string{"*"}}},
	})
	ctx := context.Background()

	out, err := e.sm(east, limited).BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{
		SecretIdList: []string{"app/a", "app/missing", "other/c", "app/b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range out.SecretValues {
		got = append(got, aws.ToString(v.Name)+"="+aws.ToString(v.SecretString))
	}
	if !slices.Equal(got, []string{"app/a=A", "app/b=B"}) {
		t.Errorf("SecretValues = %v", got)
	}
	errs := map[string]string{}
	for _, er := range out.Errors {
		errs[aws.ToString(er.SecretId)] = aws.ToString(er.ErrorCode)
		if aws.ToString(er.Message) == "" {
			t.Errorf("error for %s has no message", aws.ToString(er.SecretId))
		}
	}
	want := map[string]string{"app/missing": "ResourceNotFoundException", "other/c": "AccessDeniedException"}
	if fmt.Sprint(errs) != fmt.Sprint(want) {
		t.Errorf("Errors = %v, want %v", errs, want)
	}

	// Without the batch permission the whole call is denied.
	e.srv.AddIdentity(fakeaws.Identity{AccessKeyID: "AKIDNOBATCH", SecretAccessKey: "x", Actions: []string{"secretsmanager:GetSecretValue"}, Resources: []string{"*"}})
	_, err = e.sm(east, creds{"AKIDNOBATCH", "x", ""}).BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"app/a"}})
	wantCode(t, err, "AccessDeniedException")
	if !strings.Contains(errMessage(err), "is not authorized to perform: secretsmanager:BatchGetSecretValue because") {
		t.Errorf("message = %q", errMessage(err))
	}

	ids := make([]string, 21)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%d", i)
	}
	tests := []struct {
		name string
		in   secretsmanager.BatchGetSecretValueInput
		code string
	}{
		{"more than 20 ids", secretsmanager.BatchGetSecretValueInput{SecretIdList: ids}, "ValidationException"},
		{"neither ids nor filters", secretsmanager.BatchGetSecretValueInput{}, "InvalidParameterException"},
		{"ids and filters", secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"a"}, Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"a"}}}}, "InvalidParameterException"},
		{"MaxResults with ids", secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"a"}, MaxResults: aws.Int32(2)}, "InvalidParameterException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.sm(east, admin).BatchGetSecretValue(ctx, &tc.in)
			wantCode(t, err, tc.code)
		})
	}
}

func TestBatchGetSecretValueFiltersPaginate(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		e.srv.PutSecretString(east, fmt.Sprintf("prod/s%d", i), fmt.Sprint(i))
	}
	e.srv.PutSecretString(east, "dev/x", "dev")
	if err := e.srv.TagSecret(east, "dev/x", map[string]string{"team": "payments"}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.TagSecret(east, "prod/s3", map[string]string{"team": "payments"}); err != nil {
		t.Fatal(err)
	}
	client := e.sm(east, admin)
	ctx := context.Background()

	tests := []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"name prefix", []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"prod/"}}}, []string{"prod/s0", "prod/s1", "prod/s2", "prod/s3", "prod/s4", "prod/s5", "prod/s6"}},
		{"tag-key", []types.Filter{{Key: types.FilterNameStringTypeTagKey, Values: []string{"team"}}}, []string{"dev/x", "prod/s3"}},
		{"tag-value and name ANDed", []types.Filter{{Key: types.FilterNameStringTypeTagValue, Values: []string{"pay"}}, {Key: types.FilterNameStringTypeName, Values: []string{"prod"}}}, []string{"prod/s3"}},
		{"all", []types.Filter{{Key: types.FilterNameStringTypeAll, Values: []string{"payments"}}}, []string{"dev/x", "prod/s3"}},
		{"negated name", []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"!prod"}}}, []string{"dev/x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			pages := 0
			p := secretsmanager.NewBatchGetSecretValuePaginator(client, &secretsmanager.BatchGetSecretValueInput{Filters: tc.filters, MaxResults: aws.Int32(3)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if len(page.SecretValues) > 3 {
					t.Errorf("page of %d > MaxResults", len(page.SecretValues))
				}
				for _, v := range page.SecretValues {
					got = append(got, aws.ToString(v.Name))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if wantPages := (len(tc.want) + 2) / 3; pages != wantPages {
				t.Errorf("%d pages, want %d", pages, wantPages)
			}
		})
	}

	// Filters list secrets, which needs secretsmanager:ListSecrets.
	e.srv.AddIdentity(fakeaws.Identity{AccessKeyID: "AKIDNOLIST", SecretAccessKey: "x",
		Actions: []string{"secretsmanager:BatchGetSecretValue", "secretsmanager:GetSecretValue"}, Resources: []string{"*"}})
	_, err := e.sm(east, creds{"AKIDNOLIST", "x", ""}).BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{
		Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"prod/"}}},
	})
	wantCode(t, err, "AccessDeniedException")

	_, err = client.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{
		Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"prod/"}}}, MaxResults: aws.Int32(21),
	})
	wantCode(t, err, "ValidationException")
	_, err = client.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{
		Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"prod/"}}}, NextToken: aws.String("garbage"),
	})
	wantCode(t, err, "InvalidNextTokenException")
}

func TestListSecretsAndVersionPagination(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.srv.PutSecretString(east, "multi", fmt.Sprint(i))
	}
	e.srv.PutSecretString(east, "single", "x")
	client := e.sm(east, admin)
	ctx := context.Background()

	var versions []string
	p := secretsmanager.NewListSecretVersionIdsPaginator(client, &secretsmanager.ListSecretVersionIdsInput{
		SecretId: aws.String("multi"), IncludeDeprecated: aws.Bool(true), MaxResults: aws.Int32(2),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			versions = append(versions, aws.ToString(v.VersionId))
		}
	}
	if len(versions) != 5 {
		t.Errorf("paged %d versions, want 5", len(versions))
	}

	list, err := client.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.SecretList) != 2 || len(list.SecretList[0].SecretVersionsToStages) != 2 {
		t.Errorf("ListSecrets = %+v", list.SecretList)
	}
}
