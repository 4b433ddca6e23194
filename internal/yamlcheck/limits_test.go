package yamlcheck

import (
	"runtime"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestSuggestionsBounded: a long key or long candidates cost nothing
// (an edit distance costs the product of the lengths), at most
// MaxSuggestCandidates are read, and a declaration computes at most
// MaxSuggestions suggestions.
func TestSuggestionsBounded(t *testing.T) {
	long := strings.Repeat("k", 4000)
	many := make([]string, 200)
	for i := range many {
		many[i] = long + "x"
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if s := Nearest(long, many); s != "" {
		t.Errorf("Nearest(long) = %.20q, want none", s)
	}
	if s := Nearest("key", many); s != "" {
		t.Errorf("Nearest(key, long candidates) = %.20q, want none", s)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Errorf("allocated %d bytes, want under 64 KiB", got)
	}
	if s := Nearest("objectNme", []string{"objectName"}); s != "objectName" {
		t.Errorf("Nearest(objectNme) = %q", s)
	}
	late := append(make([]string, MaxSuggestCandidates), "objectName")
	if s := Nearest("objectNme", late); s != "" {
		t.Errorf("Nearest read past %d candidates: %q", MaxSuggestCandidates, s)
	}
	var c Checker
	for range MaxSuggestions {
		if s := c.Suggest("objectNme", []string{"objectName"}); s != "objectName" {
			t.Fatalf("Suggest = %q", s)
		}
	}
	if s := c.Suggest("objectNme", []string{"objectName"}); s != "" {
		t.Errorf("suggestion %d computed: %q", MaxSuggestions+1, s)
	}
}

func TestWithin(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("[1, 2, 3]"), &doc); err != nil {
		t.Fatal(err)
	}
	var c Checker
	if !c.Within(doc.Content[0], "objects[0]", "jmesPath", 3, "fix it") {
		t.Error("3 entries refused with a limit of 3")
	}
	if c.Within(doc.Content[0], "objects[0]", "jmesPath", 2, "fix it") {
		t.Error("3 entries accepted with a limit of 2")
	}
	if got, want := c.Problems[0].String(), `objects[0]: field "jmesPath": has 3 entries, over the limit of 2; fix it`; got != want {
		t.Errorf("problem %q, want %q", got, want)
	}
}

// TestQuoting: a user-written name never breaks a message into lines,
// never hides text (bidirectional overrides, zero-width characters), and
// is cut when long.
func TestQuoting(t *testing.T) {
	long := strings.Repeat("a", 150)
	tests := []struct{ in, name, quote string }{
		{"prod/db", "prod/db", `"prod/db"`},
		{"a b", "a b", `"a b"`},
		{"bad\nname", `"bad\nname"`, `"bad\nname"`},
		{"x\u202ey", `"x\u202ey"`, `"x\u202ey"`},
		{"x\u200by", `"x\u200by"`, `"x\u200by"`},
		{"\xff", `"\xff"`, `"\xff"`},
		{long, `"` + long[:100] + `"...`, `"` + long[:100] + `"...`},
	}
	for _, tc := range tests {
		if got := Name(tc.in); got != tc.name {
			t.Errorf("Name(%q) = %s, want %s", tc.in, got, tc.name)
		}
		if got := Quote(tc.in); got != tc.quote {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.quote)
		}
	}
}
