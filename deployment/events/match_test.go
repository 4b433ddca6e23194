// Package events_test checks the AWS side of change events offline: the
// EventBridge patterns under patterns/ against AWS's documented events and
// the AWS fake's, and the CloudFormation templates and Terraform module that
// install them (the same patterns, the queue policy, the consumer's exact
// permissions). See docs/events.md.
package events_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// The pattern files, one per rule.
const (
	parameterStore = "parameter-store-change"
	secretsManager = "secretsmanager-change"
	iamRoles       = "iam-role-change"
)

// loadPatterns reads every pattern under patterns/, by file name without
// .json.
func loadPatterns(t *testing.T) map[string]map[string]any {
	t.Helper()
	files, err := filepath.Glob("patterns/*.json")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, f := range files {
		var p map[string]any
		if err := json.Unmarshal(readFile(t, f), &p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		checkPatternGrammar(t, f, p)
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = p
	}
	want := []string{iamRoles, parameterStore, secretsManager}
	if got := keys(out); !reflect.DeepEqual(got, want) {
		t.Fatalf("patterns/ holds %v, want %v", got, want)
	}
	return out
}

// checkPatternGrammar fails on anything beyond the subset the matcher below
// implements: nested objects whose leaves are arrays of exact strings.
// Content filters (prefix, anything-but, exists, ...) would need a fuller
// matcher before a pattern may use them.
func checkPatternGrammar(t *testing.T, where string, p map[string]any) {
	t.Helper()
	for k, v := range p {
		switch v := v.(type) {
		case map[string]any:
			checkPatternGrammar(t, where+"."+k, v)
		case []any:
			if len(v) == 0 {
				t.Errorf("%s.%s: an empty array matches nothing", where, k)
			}
			for _, e := range v {
				if _, ok := e.(string); !ok {
					t.Errorf("%s.%s: %v is not an exact string; the test's matcher knows no other filter", where, k, e)
				}
			}
		default:
			t.Errorf("%s.%s: a pattern's leaves are arrays, not %T", where, k, v)
		}
	}
}

// matches is EventBridge's matching for the subset checkPatternGrammar
// allows: every field the pattern names must be in the event; an array is
// a set of alternatives; an event's array field matches when any element
// does; objects nest.
func matches(pattern, event map[string]any) bool {
	for k, want := range pattern {
		got, ok := event[k]
		if !ok {
			return false
		}
		switch want := want.(type) {
		case map[string]any:
			sub, ok := got.(map[string]any)
			if !ok || !matches(want, sub) {
				return false
			}
		case []any:
			if !matchesAny(want, got) {
				return false
			}
		}
	}
	return true
}

func matchesAny(alternatives []any, got any) bool {
	values := []any{got}
	if list, ok := got.([]any); ok {
		values = list
	}
	for _, v := range values {
		for _, a := range alternatives {
			if v == a {
				return true
			}
		}
	}
	return false
}

// matching names the patterns an event matches, sorted.
func matching(patterns map[string]map[string]any, event map[string]any) []string {
	var out []string
	for name, p := range patterns {
		if matches(p, event) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// TestMatcher: the matcher itself, on the rules EventBridge documents for
// exact matching (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html).
func TestMatcher(t *testing.T) {
	pattern := map[string]any{
		"source": []any{"aws.a", "aws.b"},
		"detail": map[string]any{"name": []any{"x"}},
	}
	for _, tc := range []struct {
		name  string
		event string
		want  bool
	}{
		{"every field matches", `{"source":"aws.b","detail":{"name":"x","other":1}}`, true},
		{"an array field matches when one element does", `{"source":"aws.a","detail":{"name":["y","x"]}}`, true},
		{"a value outside the alternatives", `{"source":"aws.c","detail":{"name":"x"}}`, false},
		{"a nested value differs", `{"source":"aws.a","detail":{"name":"y"}}`, false},
		{"a field the pattern names is missing", `{"source":"aws.a"}`, false},
		{"a nested field is missing", `{"source":"aws.a","detail":{}}`, false},
		{"an object where the pattern nests is a scalar", `{"source":"aws.a","detail":"x"}`, false},
		{"case matters", `{"source":"AWS.A","detail":{"name":"x"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ev map[string]any
			if err := json.Unmarshal([]byte(tc.event), &ev); err != nil {
				t.Fatal(err)
			}
			if got := matches(pattern, ev); got != tc.want {
				t.Errorf("matches = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPatternsMatchAWSEvents: each rule matches AWS's events for every
// change it covers, and no rule matches read-only calls, other services or
// other detail types (testdata/aws-events.json, each case with its sources).
func TestPatternsMatchAWSEvents(t *testing.T) {
	patterns := loadPatterns(t)
	var data struct {
		Cases []struct {
			Name    string
			Sources []string
			Want    string
			Event   map[string]any
		}
	}
	if err := json.Unmarshal(readFile(t, "testdata/aws-events.json"), &data); err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, c := range data.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if len(c.Sources) == 0 {
				t.Error("the case names no source")
			}
			var want []string
			if c.Want != "" {
				want = []string{c.Want}
			}
			if got := matching(patterns, c.Event); !reflect.DeepEqual(got, want) {
				t.Errorf("matched by %v, want %v", got, want)
			}
		})
		if c.Want != "" {
			covered[c.Want+"/"+changeName(c.Event)] = true
		}
	}
	// Every event name and operation a pattern lists has a sample.
	for name, p := range patterns {
		for _, change := range listedChanges(p) {
			if !covered[name+"/"+change] {
				t.Errorf("%s lists %s, which no case in testdata/aws-events.json shows", name, change)
			}
		}
	}
}

// changeName is an event's eventName (CloudTrail) or operation (Parameter
// Store).
func changeName(event map[string]any) string {
	detail, _ := event["detail"].(map[string]any)
	if n, ok := detail["eventName"].(string); ok {
		return n
	}
	n, _ := detail["operation"].(string)
	return n
}

// listedChanges are the event names a pattern lists; a pattern listing
// none (Parameter Store's, which takes every operation) needs a sample of
// each operation AWS documents.
func listedChanges(p map[string]any) []string {
	detail, _ := p["detail"].(map[string]any)
	names, _ := detail["eventName"].([]any)
	if len(names) == 0 {
		return []string{"Create", "Update", "Delete", "LabelParameterVersion"}
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n.(string)
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
