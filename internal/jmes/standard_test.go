package jmes

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	standard "github.com/jmespath/go-jmespath"
)

// TestSameResultsAsASCPsLibrary: every expression of the standard grammar
// gives what AWS's provider gives (it evaluates with go-jmespath v0.4.0), so
// a class written for it means the same here. TestSameResultsAsTheLibrary
// checks the community library coffer evaluates with; this checks the one
// the drop-in promise is about.
func TestSameResultsAsASCPsLibrary(t *testing.T) {
	const doc = `{"username":"app","password":"p@ss","port":5432,"host":"db.internal","ssl":true,` +
		`"api-key":"k","nested":{"a":{"b":"deep"}},"list":[{"k":"x","v":1},{"k":"y","v":2}],` +
		`"m":{"p":"q","r":[1,2,3]},"s":["b","a"],"empty":"","nil":null,"n":1e3}`
	exprs := []string{
		// As ASCP's README and examples write them.
		"username", "password", "nested.a.b", `"api-key"`, "port", "ssl", "host",
		// The rest of the standard grammar.
		"list[*].k", "list[?v > `1`].k | [0]", "length(m.*)", "m.r[]", "[username, port]", "{x: username, y: m.p}",
		"sort(s)", "length(list)", "map(&v, list)", "sort_by(list, &k)[].v", "max_by(list, &v).k", "join('-', s)",
		"to_string(m)", "!ssl", "ssl && port", "username || password", "m.r[1:]", "m.r[::-1]", "list[*].[k, v]",
		"not_null(nil, empty, username)", "type(@)", "s[?@ == 'a']", "m.r[?@ > `1`] | sum(@)", "contains(s, 'a')",
		"starts_with(host, 'db')", "ends_with(host, 'internal')", "keys(nested)", "values(nested.a)", "abs(`-3`)",
		"ceil(`1.5`)", "floor(`1.5`)", "avg(m.r)", "max(m.r)", "min(m.r)", "reverse(s)", "to_array(username)",
		"to_number('12')", "merge(m, {z: username})", "min_by(list, &v).k", "n", "empty", "list[0]", "list[-1].v",
		"@.username", "*.a", "nested.*.b", "list[].k", "m.r[0:2]", "length(username)", "`\"literal\"`", "'raw'",
	}
	var data any
	if err := json.Unmarshal([]byte(doc), &data); err != nil {
		t.Fatal(err)
	}
	for _, src := range exprs {
		want, err := standard.Search(src, data)
		if err != nil {
			t.Fatalf("%s: go-jmespath v0.4.0: %v", src, err)
		}
		e, err := Compile(src)
		if err != nil {
			t.Fatalf("%s: coffer refuses what AWS's provider evaluates: %v", src, err)
		}
		got, err := e.Search(context.Background(), data, 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, AWS's provider gives %#v", src, got, want)
		}
	}
}
