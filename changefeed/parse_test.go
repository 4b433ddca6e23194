package changefeed

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/provider/changes"
)

const (
	acct = "123456789012"
	east = "us-east-1"
)

func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func secret(region, name string) changes.Subject {
	return changes.Subject{Kind: changes.KindSecret, Account: acct, Region: region, Name: name}
}

// TestParseEvents: the shapes AWS sends (testdata/events, from AWS's
// documented examples) become the subjects they name, every reading of an
// ARN included; what coffer does not track is ignored.
func TestParseEvents(t *testing.T) {
	for _, tc := range []struct {
		file     string
		ignored  bool
		service  Service
		op, desc string
		want     []changes.Subject
	}{
		{file: "ssm-update.json", service: ServiceSSM, op: "Update", desc: "Sample Parameter",
			want: []changes.Subject{{Kind: changes.KindParameter, Account: acct, Region: east, Name: "app/db/url"}}},
		{file: "sm-putsecretvalue.json", service: ServiceSecretsManager, op: "PutSecretValue",
			want: []changes.Subject{secret(east, "prod/db"), secret(east, "prod/db-AbCdEf")}},
		{file: "sm-createsecret.json", service: ServiceSecretsManager, op: "CreateSecret",
			want: []changes.Subject{secret("eu-west-1", "team/api-key"), secret("eu-west-1", "team/api-key-XyZ123")}},
		{file: "iam-attachrolepolicy.json", service: ServiceIAM, op: "AttachRolePolicy",
			want: []changes.Subject{{Kind: changes.KindRole, Account: acct, Name: "app-reader"}}},
		{file: "sm-getsecretvalue-readonly.json", ignored: true},
		{file: "ec2-other.json", ignored: true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			ev, err := Parse(readEvent(t, tc.file))
			if tc.ignored {
				if !errors.Is(err, ErrIgnored) {
					t.Fatalf("Parse = %+v, %v; want ErrIgnored", ev, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Service != tc.service || ev.Operation != tc.op || ev.Account != acct || ev.Time.IsZero() {
				t.Errorf("Parse = %+v", ev)
			}
			if ev.Description != tc.desc {
				t.Errorf("description %q, want %q", ev.Description, tc.desc)
			}
			if !sameSubjects(ev.Subjects, tc.want) {
				t.Errorf("subjects %+v, want %+v", ev.Subjects, tc.want)
			}
		})
	}
}

func sameSubjects(a, b []changes.Subject) bool {
	if len(a) != len(b) {
		return false
	}
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// TestParseHostile: bodies that are not events, too large, of the wrong
// types or naming nothing valid are refused (or ignored) without the
// body in the error.
func TestParseHostile(t *testing.T) {
	const canary = "CANARY-7f3e9d"
	sm := func(detail string) string {
		return `{"detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","account":"` + acct + `","region":"us-east-1","time":"x","detail":` + detail + `}`
	}
	many := strings.Repeat(`"arn:aws:secretsmanager:us-east-1:`+acct+`:secret:`+canary+`",`, maxResources+1)
	for _, tc := range []struct {
		name, body string
		ignored    bool
	}{
		{name: "empty", body: ""},
		{name: "not JSON", body: canary},
		{name: "an array", body: `["` + canary + `"]`},
		{name: "trailing data", body: `{"source":"aws.ssm"} "` + canary + `"`},
		{name: "over the size limit", body: `{"source":"` + strings.Repeat(canary, MaxBodyBytes/len(canary)+1) + `"}`},
		{name: "parameter change naming nothing", body: `{"detail-type":"Parameter Store Change","source":"aws.ssm","account":"` + acct + `","region":"us-east-1","detail":{"name":""}}`},
		{name: "parameter change of a bad account", body: `{"detail-type":"Parameter Store Change","source":"aws.ssm","account":"` + canary + `","region":"us-east-1","detail":{"name":"p"}}`},
		{name: "parameter change, detail not an object", body: `{"detail-type":"Parameter Store Change","source":"aws.ssm","account":"` + acct + `","region":"us-east-1","detail":"` + canary + `"}`},
		{name: "readOnly of another type", body: sm(`{"eventSource":"secretsmanager.amazonaws.com","readOnly":"` + canary + `","requestParameters":{"secretId":"a"}}`)},
		{name: "too many resources", body: `{"detail-type":"AWS API Call via CloudTrail","source":"aws.secretsmanager","account":"` + acct + `","region":"us-east-1","resources":[` + many + `"x"],"detail":{"eventSource":"secretsmanager.amazonaws.com","requestParameters":{"secretId":"a"}}}`},
		{name: "secretId of another type", body: sm(`{"eventSource":"secretsmanager.amazonaws.com","requestParameters":{"secretId":{"` + canary + `":1}}}`), ignored: true},
		{name: "another event source", body: sm(`{"eventSource":"kms.amazonaws.com","requestParameters":{"secretId":"` + canary + `"}}`), ignored: true},
		{name: "an ARN of another service", body: sm(`{"eventSource":"secretsmanager.amazonaws.com","requestParameters":{"secretId":"arn:aws:ssm:us-east-1:` + acct + `:parameter/` + canary + `"}}`), ignored: true},
		{name: "IAM call naming no role", body: `{"detail-type":"AWS API Call via CloudTrail","source":"aws.iam","account":"` + acct + `","region":"us-east-1","detail":{"eventSource":"iam.amazonaws.com","eventName":"CreateUser","requestParameters":{"userName":"` + canary + `"}}}`, ignored: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := Parse([]byte(tc.body))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", ev)
			}
			if errors.Is(err, ErrIgnored) != tc.ignored {
				t.Errorf("ignored = %v, want %v: %v", errors.Is(err, ErrIgnored), tc.ignored, err)
			}
			if strings.Contains(err.Error(), canary[:10]) {
				t.Errorf("the error quotes the body: %v", err)
			}
		})
	}
}

// TestParseTime: the event's own time is read when it is RFC 3339, and
// left zero otherwise.
func TestParseTime(t *testing.T) {
	ev, err := Parse(readEvent(t, "ssm-update.json"))
	if err != nil || !ev.Time.Equal(time.Date(2026, 5, 22, 16, 43, 48, 0, time.UTC)) {
		t.Errorf("time %v, %v", ev.Time, err)
	}
	ev, err = Parse([]byte(`{"detail-type":"Parameter Store Change","source":"aws.ssm","account":"` + acct + `","region":"us-east-1","time":"yesterday","detail":{"name":"p"}}`))
	if err != nil || !ev.Time.IsZero() {
		t.Errorf("unreadable time: %v, %v", ev.Time, err)
	}
}

// FuzzParse: any body is parsed or refused without panicking, within its
// size limit, and every subject it accepts is valid (the Book keeps it).
func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "events"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		f.Add(readEvent(f, e.Name()))
	}
	f.Add([]byte(`{"detail-type":"Parameter Store Change","source":"aws.ssm","account":"123456789012","region":"us-east-1","detail":{"name":"arn:aws:ssm:eu-west-1:123456789012:parameter/a"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Parse(body)
		if err != nil {
			if len(ev.Subjects) != 0 {
				t.Fatal("an error with subjects")
			}
			return
		}
		if len(ev.Subjects) == 0 {
			t.Fatal("an accepted event names nothing")
		}
		b := changes.NewBook(nil, nil, time.Hour, nil)
		if n := b.Add(ev.Subjects...); n != len(ev.Subjects) {
			t.Fatalf("%d of %d subjects are not valid: %+v", len(ev.Subjects)-n, len(ev.Subjects), ev.Subjects)
		}
	})
}
