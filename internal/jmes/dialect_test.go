package jmes

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/jmespath-community/go-jmespath/pkg/functions"
	standard "github.com/jmespath/go-jmespath"
)

// TestDialect: every expression the standard grammar (the AWS provider's)
// rejects and the community grammar accepts is refused, with the quoted
// form where quoting is the fix. The numeric api and key fields show what
// the community grammar would have written: their difference.
func TestDialect(t *testing.T) {
	doc := map[string]any{"api": 5.0, "key": 2.0, "api-key": "s3cr3t", "db": map[string]any{"api-key": "x"}}
	refused := map[string]string{
		"api-key":                   `path: '"api-key"'`,
		"db.api-key":                `path: 'db."api-key"'`,
		"db.api-key-2":              `path: 'db."api-key-2"'`,
		"a-b-c | x":                 `path: '"a-b-c" | x'`,
		"[api-key, key]":            `path: '["api-key", key]'`,
		"api - key":                 `as in path: '"api-key"'`,
		"api+key":                   "arithmetic",
		"api*key":                   "arithmetic",
		"api/key":                   "arithmetic",
		"api%key":                   "arithmetic",
		"api//key":                  "arithmetic",
		"-api":                      "arithmetic",
		"api−key":                   "arithmetic", // U+2212
		"api×key":                   "arithmetic",
		"api÷key":                   "arithmetic",
		"`1` + `2`":                 "arithmetic",
		"$":                         "not standard JMESPath",
		"$.api":                     "not standard JMESPath",
		"let $x = api in $x":        "not standard JMESPath",
		"db.[api-key]":              `path: 'db.["api-key"]'`,
		"db.{k: api-key}":           `path: 'db.{k: "api-key"}'`,
		"length(api-key)":           `path: 'length("api-key")'`,
		"db.\"api-key\" - `1`":      "not standard JMESPath",
		"it's-key":                  "SyntaxError",
		"a['b']-c":                  "",
		`'a\\'`:                     "not standard JMESPath",
		"contains(db.api-key, 'x')": `path: 'contains(db."api-key", ''x'')'`,
	}
	for expr, want := range refused {
		t.Run(expr, func(t *testing.T) {
			_, err := Compile(expr)
			if err == nil {
				t.Fatalf("Compile(%q) accepted it", expr)
			}
			if _, serr := standard.Compile(expr); serr == nil {
				t.Fatalf("the standard library accepts %q: the case is wrong", expr)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Compile(%q) = %v, want %q", expr, err, want)
			}
			var de *DialectError
			if errors.As(err, &de) && de.Suggestion != "" {
				e, err := Compile(de.Suggestion)
				if err != nil {
					t.Fatalf("the suggestion %q does not compile: %v", de.Suggestion, err)
				}
				if _, err := e.Search(context.Background(), doc, 1<<20); err != nil {
					t.Errorf("the suggestion %q fails: %v", de.Suggestion, err)
				}
			}
		})
	}
	// What the quoted form reads, and what the community grammar would
	// have read from the unquoted one.
	quoted, err := Compile(`"api-key"`)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := quoted.Search(context.Background(), doc, 1<<20); got != "s3cr3t" {
		t.Errorf(`"api-key" = %v`, got)
	}
	community, err := compile("api-key", false)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := community.Search(context.Background(), doc, 1<<20); got != 3.0 {
		t.Errorf("community api-key = %v, want 3 (the reason for refusing it)", got)
	}
}

// TestStandardExpressionsAccepted: what both grammars accept compiles,
// community functions included (a documented extension: the AWS provider
// fails on them when it evaluates, so no class it served uses them).
func TestStandardExpressionsAccepted(t *testing.T) {
	for _, expr := range []string{
		"a", `"api-key"`, `db."api-key"`, "a.b[0]", "l[?@ > `1`]", "o[?k=='v'].k | [0]", "{x: a, y: b}", "[a, b]",
		"a || b", "!t", "&a", "`{\"a\":1}`", "'raw'", "length(s)", "to_number('1')", "sort_by(o, &k)",
		"upper(s)", "items(a)", "group_by(o, &k)", "pad_left(s, `3`)", "s[0:2]", "*", "l[]", "a.*",
	} {
		if _, err := Compile(expr); err != nil {
			t.Errorf("Compile(%q) = %v", expr, err)
		}
	}
}

// TestComparisonBudget: a filter that compares the whole document once per
// element fails on the budget, not at the deadline. $ makes such filters
// possible and is refused by Compile; the guard stays.
func TestComparisonBudget(t *testing.T) {
	zeros := "[" + strings.TrimSuffix(strings.Repeat("0,", 16000), ",") + "]"
	var doc any
	if err := json.Unmarshal([]byte(`{"a":`+zeros+`,"b":`+zeros+`}`), &doc); err != nil {
		t.Fatal(err)
	}
	for _, expr := range []string{"length(a[?$.a == $.b])", "length(a[?$.a != $.b])", "length(a[?contains($.b, `1`)])"} {
		e, err := compile(expr, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Search(context.Background(), doc, 4<<20); !errors.Is(err, ErrBudget) {
			t.Errorf("%s: err = %v, want the budget", expr, err)
		}
	}
}

// TestCommunityOnlyFunctions: the functions the standard library lacks
// are the ones docs/secretproviderclass.md lists as evaluating differently.
func TestCommunityOnlyFunctions(t *testing.T) {
	var only []string
	for _, f := range functions.GetDefaultFunctions() {
		if _, err := standard.Search(f.Name+"(@)", map[string]any{}); err != nil && strings.Contains(err.Error(), "nknown function") {
			only = append(only, f.Name)
		}
	}
	sort.Strings(only)
	readme, err := os.ReadFile("../../docs/secretproviderclass.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(readme), "functions only the community library has")
	if start < 0 {
		t.Fatal("docs/secretproviderclass.md's jmesPath dialect section lists no community-only functions")
	}
	section := string(readme)[start:]
	section = section[:strings.Index(section, "unknown function")]
	for _, name := range only {
		if !strings.Contains(section, "`"+name+"`") {
			t.Errorf("docs/secretproviderclass.md does not list the community-only function %s", name)
		}
	}
	if got := strings.Count(section, "`"); got != 2*len(only) {
		t.Errorf("docs/secretproviderclass.md lists %d functions, the library has %d community-only ones: %v", got/2, len(only), only)
	}
}
