package secretsync

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coffer-csi/coffer/internal/yamlcheck"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/spc"
)

// The status annotation keeps whole problems, as many as fit, and says how
// many more there are; the Event (Result.Message) keeps them all.
func TestStatusKeepsWholeProblems(t *testing.T) {
	cfg := testConfig(t)
	var objErrs fetch.Errors
	var problemsList []yamlcheck.Problem
	for i := range 40 {
		o := cfg.Objects[i%len(cfg.Objects)]
		objErrs = append(objErrs, &fetch.ObjectError{Object: o, Entry: -1, Kind: fetch.KindAccessDenied, Operation: "secretsmanager:GetSecretValue",
			Detail: fmt.Sprintf("access denied to secret number %d", i), Hint: "grant the pod's IAM role secretsmanager:GetSecretValue on this resource"})
		problemsList = append(problemsList, yamlcheck.Problem{Where: fmt.Sprintf("syncSecrets[%d]", i), Field: "serviceAccountName", Message: "must name the ServiceAccount to read AWS as"})
	}
	tests := map[string]struct {
		result Result
		whole  []string // every listed problem, as the full message has it
	}{
		"fetch failures": {result: failedWith("s", ReasonFetchFailed, `Secret "s" not synced, left as it is`, objErrs)},
		"declaration problems": {result: failedWith("", ReasonInvalidDeclaration, "syncSecrets not synced",
			&spc.ValidationError{Source: "syncSecrets of SecretProviderClass app", Problems: problemsList})},
	}
	item := regexp.MustCompile(`\((\d+)\) [^;]*`)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			full := tc.result.Message
			if !strings.Contains(full, "(40) ") {
				t.Fatalf("the Event does not list every problem: %s", full)
			}
			got := secretStatus(tc.result, "reader", SecretStatus{}, time.Now()).Message
			if len(got) > maxStatusMessage || !utf8.ValidString(got) {
				t.Fatalf("status message of %d bytes", len(got))
			}
			listed := item.FindAllString(got, -1)
			if len(listed) < 2 {
				t.Fatalf("status lists %d problems: %s", len(listed), got)
			}
			for _, p := range listed {
				if !strings.Contains(full, p+";") {
					t.Errorf("status cuts a problem: %q", p)
				}
			}
			if want := fmt.Sprintf("; and %d more (the class's Events list every one)", 40-len(listed)); !strings.HasSuffix(got, want) {
				t.Errorf("status %q does not end with %q", got, want)
			}
			if !strings.HasPrefix(got, full[:strings.Index(full, "(1)")]) {
				t.Errorf("status lost the lead: %q", got)
			}
			if inv := invalidStatus(1, tc.result); inv.Message != got {
				t.Errorf("class status %q, Secret status %q", inv.Message, got)
			}
		})
	}
	t.Run("one long problem is cut at a word", func(t *testing.T) {
		r := failed("s", ReasonIdentityFailed, "%s", strings.Repeat("serviceAccountName ", 100))
		got := secretStatus(r, "", SecretStatus{}, time.Now()).Message
		if len(got) > maxStatusMessage || !strings.HasSuffix(got, "serviceAccountName ... (cut; the class's Events have the whole message)") {
			t.Errorf("status %q", got)
		}
	})
	t.Run("many failed Secrets", func(t *testing.T) {
		var list []SecretStatus
		for i := range 200 {
			list = append(list, SecretStatus{Name: fmt.Sprintf("secret-with-a-long-name-%03d", i), Ready: "False", Reason: ReasonFetchFailed})
		}
		st := summarize(1, list)
		if len(st.Message) > maxStatusMessage || !strings.HasPrefix(st.Message, "200 of 200 Secrets not synced: secret-with-a-long-name-000 (FetchFailed);") ||
			!regexp.MustCompile(`\(FetchFailed\); and \d+ more \(the class's Events list every one\)$`).MatchString(st.Message) {
			t.Errorf("summary %q", st.Message)
		}
	})
}
