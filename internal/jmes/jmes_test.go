package jmes

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jmespath "github.com/jmespath-community/go-jmespath"
)

// TestSameResultsAsTheLibrary: the guards change no result.
func TestSameResultsAsTheLibrary(t *testing.T) {
	const doc = `{"a":"hello","n":3,"list":[{"k":"x","v":1},{"k":"y","v":2}],"m":{"p":"q","r":[1,2,3]},"s":["b","a"]}`
	exprs := []string{
		"a", "a[0:2]", "a[::-1]", "list[*].k", "list[?v > `1`].k | [0]", "length(m.*)", "m.r[]", "[a, n]", "{x: a, y: m.p}",
		"sort(s)", "length(list)", "map(&v, list)", "sort_by(list, &k)[].v", "max_by(list, &v).k", "join('-', s)",
		"to_string(m)", "pad_left(a, `8`, '*')", "replace(a, 'l', 'L')", "split(a, 'l')", "let $x = a in [$x, $x]",
		"n + `2`", "-n", "!a", "a == 'hello' && n", "m.r[1:]", "list[*].[k, v]", "sort_by(items(m), &[0])", "from_items(items(m))",
		"group_by(list, &k)", "merge(m, {z: a})", "zip(s, s)", "$.a", "list[*].[k, $.n]", "not_null(x, a)", "type(@)",
		"find_first(a, 'l')", "s[?@ == 'a']", "m.r[?@ > `1`] | sum(@)",
	}
	var data any
	if err := json.Unmarshal([]byte(doc), &data); err != nil {
		t.Fatal(err)
	}
	for _, src := range exprs {
		want, err := jmespath.Search(src, data)
		if err != nil {
			t.Fatalf("%s: library: %v", src, err)
		}
		e, err := compile(src, false)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, err := e.Search(context.Background(), data, 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", src, got, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := map[string]string{
		"nope(a)":       "unknown function nope()",
		"abs(a, b)":     "function abs() takes 1 argument, not 2",
		"pad_left(a)":   "function pad_left() takes 2 to 3 arguments, not 1",
		"not_null()":    "function not_null() takes at least 1 arguments, not 0",
		"a[":            "SyntaxError",
		"\xff":          "not valid UTF-8",
		"coffer budget": "SyntaxError",
	}
	for src, want := range tests {
		if _, err := Compile(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Compile(%q) = %v, want %q", src, err, want)
		}
	}
}

func TestCost(t *testing.T) {
	shared := []any{"ab", 1.0}
	tests := []struct {
		v     any
		limit int
		want  int
	}{
		{"abc", 100, stringCost + 3},
		{nil, 100, scalarCost},
		{[]any{shared, shared}, 1000, arrayCost + 2*(elementCost+arrayCost+elementCost+stringCost+2+elementCost+scalarCost)},
		{map[string]any{"k": "v"}, 1000, objectCost + elementCost + stringCost + 1 + stringCost + 1},
		{[]any{shared, shared}, 10, 11},
	}
	for _, tc := range tests {
		if got := Cost(tc.v, tc.limit); got != tc.want {
			t.Errorf("Cost(%v, %d) = %d, want %d", tc.v, tc.limit, got, tc.want)
		}
	}
}
