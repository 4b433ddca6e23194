package jmes

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"testing"

	"github.com/jmespath-community/go-jmespath/pkg/functions"
)

// maxAllocPerCharge is what the accounting promises: an evaluation
// allocates at most this many times what it is charged.
const maxAllocPerCharge = 2

// chargeDoc is the document the charge tests evaluate on: values large
// enough that what an evaluation allocates per byte, not its constant
// overhead, decides the ratio, and chosen for the worst case of each
// function (characters JSON escapes six-fold, multi-byte runes, short
// strings whose headers outweigh their bytes).
func chargeDoc(t testing.TB) any {
	t.Helper()
	var b strings.Builder
	list := func(n int, f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	fmt.Fprintf(&b, `{"s":%q,`, strings.Repeat("abcdefgh", 512))
	fmt.Fprintf(&b, `"h":%q,`, strings.Repeat("<>&", 1024))
	fmt.Fprintf(&b, `"c":"%s",`, strings.Repeat(`\u0001`, 2048))
	fmt.Fprintf(&b, `"u":%q,`, strings.Repeat("é", 2048))
	fmt.Fprintf(&b, `"csv":%q,`, strings.Repeat("a,", 2048))
	fmt.Fprintf(&b, `"n":%s,`, list(1024, func(i int) string { return fmt.Sprint(i) }))
	fmt.Fprintf(&b, `"ss":%s,`, list(1024, func(i int) string { return fmt.Sprintf("%q", fmt.Sprintf("k%04d", i)) }))
	fmt.Fprintf(&b, `"e":%s,`, list(1024, func(int) string { return `""` }))
	fmt.Fprintf(&b, `"aa":%s,`, list(512, func(i int) string { return fmt.Sprintf(`["k%04d",%d]`, i, i) }))
	fmt.Fprintf(&b, `"objs":%s,`, list(512, func(i int) string { return fmt.Sprintf(`{"k":"k%d","n":%d}`, i%7, i) }))
	fmt.Fprintf(&b, `"o":{%s}}`, strings.Trim(list(512, func(i int) string { return fmt.Sprintf(`"k%04d":%d`, i, i) }), "[]"))
	doc, err := DecodeJSON([]byte(b.String()), false)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// chargeCases are, for every function the library offers, expressions
// that make it allocate the most per byte charged. TestChargeCoversAllocation
// fails on a function missing here.
var chargeCases = map[string][]string{
	"abs":         {"map(&abs(@), n)"},
	"avg":         {"avg(n)"},
	"ceil":        {"map(&ceil(@), n)"},
	"contains":    {"contains(ss, 'zzz')", "contains(s, 'zzz')"},
	"ends_with":   {"ends_with(s, 'x')"},
	"find_first":  {"find_first(s, 'z')", "find_first(u, 'z')"},
	"find_last":   {"find_last(s, 'z')", "find_last(u, 'z')"},
	"floor":       {"map(&floor(@), n)"},
	"from_items":  {"from_items(aa)"},
	"group_by":    {"group_by(objs, &k)", "group_by(objs, &to_string(n))"},
	"items":       {"items(o)"},
	"join":        {"join(',', ss)", "join('', e)"},
	"keys":        {"keys(o)"},
	"length":      {"length(s)", "length(u)", "map(&length(@), ss)"},
	"lower":       {"lower(s)", "lower(u)"},
	"map":         {"map(&@, n)", "map(&[@], e)", "map(&pad_left(@, `1`), e)"},
	"max":         {"max(n)", "max(ss)"},
	"max_by":      {"max_by(objs, &n)"},
	"merge":       {"merge(o, o)", "merge(o, o, o, o)"},
	"min":         {"min(n)", "min(ss)"},
	"min_by":      {"min_by(objs, &n)"},
	"not_null":    {"not_null(s, n)"},
	"pad_left":    {"pad_left(s, `8192`)", "pad_left('', `8192`, 'x')"},
	"pad_right":   {"pad_right(s, `8192`)", "pad_right('', `8192`, 'x')"},
	"replace":     {"replace(s, 'a', 'xyz')", "replace(csv, ',', '')", "replace(u, 'é', 'e')"},
	"reverse":     {"reverse(n)", "reverse(s)", "reverse(u)"},
	"sort":        {"sort(n)", "sort(ss)"},
	"sort_by":     {"sort_by(objs, &k)", "sort_by(objs, &n)"},
	"split":       {"split(csv, ',')", "split(s, '')", "split(u, '')", "map(&split(@, ''), ss)", "map(&split(@, 'x'), e)"},
	"starts_with": {"starts_with(s, 'x')"},
	"sum":         {"sum(n)"},
	"to_array":    {"map(&to_array(@), n)", "to_array(o)"},
	"to_number":   {"map(&to_number(@), ss)", "map(&to_number(@), n)"},
	"to_string":   {"to_string(h)", "to_string(c)", "to_string(o)", "to_string(n)", "to_string(objs)", "to_string(u)", "map(&to_string(@), n)", "to_string(e)", "map(&to_string([@]), e)"},
	"trim":        {"trim(s)", "trim(s, 'a')", "trim(u, 'a')"},
	"trim_left":   {"trim_left(s, 'a')", "trim_left(u, 'x')"},
	"trim_right":  {"trim_right(s, 'h')", "trim_right(u, 'x')"},
	"type":        {"map(&type(@), n)"},
	"upper":       {"upper(s)", "upper(u)"},
	"values":      {"values(o)"},
	"zip":         {"zip(n, ss)", "zip(n, ss, e, n)"},
}

// nodeCases are the constructs besides function calls.
var nodeCases = []string{
	"[s, s, s, s]", "[n, n, n, n]", "{a: s, b: n, c: o}", "n[*]", "objs[*].k", "objs[*].[k, n]", "objs[*].{a: k, b: n}",
	"o.*", "e[*].[@, @]", "e[*].{a: @}", "map(&{a: @, b: @}, e)", "aa[]", "[aa, aa][][]", "objs[?n > `100`]", "ss[?@ == 'k0001']", "n[?@ != `3`]", "s[::-1]", "u[::-1]", "u[1:]",
	"n[::-1]", "n[1:]", "!s", "s == s", "n == n", "objs[?!n]", "[n, ss] | [0]", "n[*] | [*]", "ss[].[@]",
}

// measure evaluates e on doc without a budget, and returns what it
// allocated (after a warm-up run, with the collector off) and what it was
// charged.
func measure(t *testing.T, e *Expr, doc any) (alloc, charged int) {
	t.Helper()
	const unlimited = 1 << 40
	run := func() int {
		ev := &evaluation{ctx: context.Background(), left: unlimited}
		if _, err := e.search(ev, doc); err != nil {
			t.Fatalf("evaluation failed: %v", err)
		}
		return unlimited - ev.left
	}
	run()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	charged = run()
	runtime.ReadMemStats(&after)
	return int(after.TotalAlloc - before.TotalAlloc), charged
}

// TestChargeCoversAllocation: for every function and construct, an
// evaluation allocates at most maxAllocPerCharge times what it is
// charged, so a budget in charged bytes bounds memory. Deterministic: it
// counts bytes, never time.
func TestChargeCoversAllocation(t *testing.T) {
	doc := chargeDoc(t)
	var names []string
	for _, f := range functions.GetDefaultFunctions() {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	check := func(expr string) {
		t.Helper()
		e, err := compile(expr, true)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		alloc, charged := measure(t, e, doc)
		if testing.Verbose() {
			t.Logf("%-40s alloc %8d charged %8d ratio %.2f", expr, alloc, charged, float64(alloc)/float64(max(1, charged)))
		}
		if alloc > maxAllocPerCharge*charged {
			t.Errorf("%s allocated %d bytes, more than %d times its charge of %d", expr, alloc, maxAllocPerCharge, charged)
		}
	}
	for _, name := range names {
		exprs, ok := chargeCases[name]
		if !ok {
			t.Errorf("function %s() has no case in chargeCases: add the inputs that make it allocate the most", name)
			continue
		}
		for _, expr := range exprs {
			check(expr)
		}
	}
	for name := range chargeCases {
		if _, ok := table[name]; !ok {
			t.Errorf("chargeCases names %s(), which the library does not offer", name)
		}
	}
	for _, expr := range nodeCases {
		check(expr)
	}
}

// TestDecodeCostCoversAllocation: decoding allocates at most
// maxAllocPerCharge times DecodeCost, for documents of the smallest values
// per byte and of large strings, with numbers exact or not.
func TestDecodeCostCoversAllocation(t *testing.T) {
	repeat := func(item string, n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
	}
	docs := map[string]string{
		"zeros":         repeat("0", 8192),
		"empty lists":   repeat("[]", 8192),
		"empty objects": repeat("{}", 8192),
		"keyed":         repeat(`{"":0}`, 8192),
		"nested":        strings.Repeat("[", 512) + strings.Repeat("]", 512),
		"strings":       repeat(`""`, 8192),
		"long string":   `"` + strings.Repeat("x", 65536) + `"`,
		"escapes":       `"` + strings.Repeat(`\u00e9`, 8192) + `"`,
		"object":        "{" + strings.TrimSuffix(strings.Repeat(`"k":true,`, 8192), ",") + "}",
		"numbers":       repeat("-1.5e300", 8192),
	}
	for name, doc := range docs {
		for _, exact := range []bool{false, true} {
			data := []byte(doc)
			if _, err := DecodeJSON(data, exact); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var before, after runtime.MemStats
			func() {
				defer debug.SetGCPercent(debug.SetGCPercent(-1))
				runtime.ReadMemStats(&before)
				if _, err := DecodeJSON(data, exact); err != nil {
					t.Fatal(err)
				}
				runtime.ReadMemStats(&after)
			}()
			alloc, charged := int(after.TotalAlloc-before.TotalAlloc), DecodeCost(data)
			if testing.Verbose() {
				t.Logf("%-14s exact=%-5v alloc %8d charged %8d ratio %.2f", name, exact, alloc, charged, float64(alloc)/float64(charged))
			}
			if alloc > maxAllocPerCharge*charged {
				t.Errorf("%s (exact %v): decoding allocated %d bytes, more than %d times its charge of %d", name, exact, alloc, maxAllocPerCharge, charged)
			}
		}
	}
}

// TestTextCostCoversAllocation: writing a result as file text (as
// provider/render does: the string, or its compact JSON) allocates at most
// maxAllocPerCharge times TextCost, escaping included.
func TestTextCostCoversAllocation(t *testing.T) {
	doc := chargeDoc(t).(map[string]any)
	for name, v := range map[string]any{"string": doc["s"], "escaped in a list": []any{doc["h"], doc["c"]}, "object": doc["o"],
		"objects": doc["objs"], "numbers": doc["n"], "empty strings": doc["e"], "escaped keys": map[string]any{doc["h"].(string): doc["c"]}} {
		write := func() {
			if s, ok := v.(string); ok {
				runtime.KeepAlive([]byte(s))
				return
			}
			if _, err := json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		write()
		var before, after runtime.MemStats
		func() {
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			runtime.ReadMemStats(&before)
			write()
			runtime.ReadMemStats(&after)
		}()
		alloc, charged := int(after.TotalAlloc-before.TotalAlloc), TextCost(v, 1<<40)
		if testing.Verbose() {
			t.Logf("%-18s alloc %8d charged %8d ratio %.2f", name, alloc, charged, float64(alloc)/float64(charged))
		}
		if alloc > maxAllocPerCharge*charged {
			t.Errorf("%s: writing allocated %d bytes, more than %d times its charge of %d", name, alloc, maxAllocPerCharge, charged)
		}
	}
}
