package tmpl

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"testing"
)

// maxAllocPerCharge is what the accounting promises: an execution
// allocates at most this many times what it is charged.
const maxAllocPerCharge = 2

// chargeValues are the data the charge tests execute over: values large
// enough that what a function allocates per byte decides the ratio, and
// chosen for each one's worst case (characters that escaping multiplies,
// multi-byte runes, many short keys whose overhead outweighs their bytes).
func chargeValues(t testing.TB) map[string]string {
	t.Helper()
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	list := make([]string, 1024)
	nums := make([]int, 1024)
	empties := make([]string, 1024)
	obj := map[string]any{}
	for i := range list {
		list[i] = fmt.Sprintf("k%04d", i)
		nums[i] = i
	}
	for i := range 512 {
		obj[fmt.Sprintf("k%04d", i)] = i
	}
	v := map[string]string{
		"s":       strings.Repeat("abcdefgh", 512),
		"h":       strings.Repeat(`<>&"'`, 800),
		"c":       strings.Repeat("\x01", 4096),
		"u":       strings.Repeat("é", 2048),
		"lines":   strings.Repeat("\n", 4096),
		"b64":     strings.Repeat("QUJD", 1024),
		"list":    js(list),
		"nums":    js(nums),
		"empties": js(empties),
		"nested":  js([][]string{list, list}),
		"obj":     js(obj),
		"json":    `[` + strings.TrimSuffix(strings.Repeat(`[],`, 2048), ",") + `]`,
		"maps":    `[` + strings.TrimSuffix(strings.Repeat(`{},`, 2048), ",") + `]`,
		"keyed":   `[` + strings.TrimSuffix(strings.Repeat(`{"":0},`, 2048), ",") + `]`,
		"zeros":   `[` + strings.TrimSuffix(strings.Repeat(`0,`, 4096), ",") + `]`,
	}
	for i := range 256 {
		v[fmt.Sprintf("key%03d", i)] = "v"
	}
	return v
}

// verbs are every fmt verb, with flags.
var verbs = []string{"%v", "%+v", "%#v", "%T", "%s", "%q", "%#q", "%x", "%X", "% x", "% #x", "%d", "%b", "%o", "%O", "%c", "%U", "%#U",
	"%e", "%E", "%f", "%F", "%g", "%G", "%t", "%p", "%8v", "%-8v", "%08v", "%.3v", "%8.3f", "%*v", "%[1]v%[1]v"}

// chargeCases are, for every function a template may call (coffer's and
// text/template's own), templates that make it allocate the most per byte
// charged. TestChargeCoversAllocation fails on a function missing here.
func chargeCases() map[string][]string {
	cases := map[string][]string{
		"b64enc":     {`{{b64enc .s}}`, `{{b64enc .c}}`},
		"b64dec":     {`{{b64dec .b64}}`},
		"fromJson":   {`{{fromJson .list | len}}`, `{{fromJson .nums | len}}`, `{{fromJson .obj | len}}`, `{{fromJson .json | len}}`, `{{fromJson .empties | len}}`, `{{fromJson .maps | len}}`, `{{fromJson .keyed | len}}`, `{{fromJson .zeros | len}}`},
		"toJson":     {`{{toJson .}}`, `{{toJson (fromJson .obj)}}`, `{{toJson .h}}`, `{{toJson (fromJson .nested)}}`, `{{toJson .c}}`},
		"upper":      {`{{upper .s}}`, `{{upper .u}}`},
		"lower":      {`{{lower .s}}`, `{{lower .u}}`},
		"trim":       {`{{trim .s}}`},
		"trimPrefix": {`{{trimPrefix "a" .s}}`},
		"trimSuffix": {`{{trimSuffix "h" .s}}`},
		"replace":    {`{{replace "a" "xyz" .s}}`, `{{replace "" "x" .s}}`, `{{replace "é" "" .u}}`},
		"indent":     {`{{indent 8 .lines}}`, `{{indent 4096 .s}}`},
		"nindent":    {`{{nindent 8 .lines}}`},
		"quote":      {`{{quote .c}}`, `{{quote .s}}`, `{{quote .h}}`},
		"default":    {`{{default .s ""}}`},
		"required":   {`{{required "x" .s}}`},
		"print":      {`{{print . . .}}`, `{{print .s .s}}`, `{{print (fromJson .list)}}`, `{{print (fromJson .obj)}}`},
		"println":    {`{{println . .}}`, `{{println (fromJson .nested)}}`},
		"html":       {`{{html .h}}`, `{{html .s}}`, `{{html .c}}`, `{{html . .}}`, `{{html .h .h}}`, `{{html (fromJson .list)}}`},
		"js":         {`{{js .h}}`, `{{js .c}}`, `{{js .u}}`, `{{js .s}}`, `{{js . .}}`, `{{js .u .u}}`},
		"urlquery":   {`{{urlquery .s}}`, `{{urlquery .c}}`, `{{urlquery .u}}`, `{{urlquery .h}}`, `{{urlquery . .}}`, `{{urlquery .u .c}}`},
		// text/template's own, which coffer does not replace: they select
		// and compare, and build nothing but the step guards count.
		"and":   {`{{and .s .s}}`},
		"or":    {`{{or .s .s}}`},
		"not":   {`{{not .s}}`},
		"len":   {`{{len .s}}`},
		"index": {`{{index . "s"}}`, `{{index (fromJson .list) 3}}`},
		"slice": {`{{slice .s 1 9}}`, `{{slice (fromJson .list) 1 9 | len}}`},
		"eq":    {`{{eq .s .s}}`},
		"ne":    {`{{ne .s .u}}`},
		"lt":    {`{{lt .s .u}}`},
		"le":    {`{{le .s .u}}`},
		"gt":    {`{{gt .s .u}}`},
		"ge":    {`{{ge .s .u}}`},
		"call":  {`{{with 1}}{{end}}`}, // no value a template reads is a function
		stepFunc: {`{{range fromJson .list}}{{end}}`, `{{range fromJson .list}}{{.}}{{end}}`, `{{range $k, $v := .}}{{$k}}{{$v}}{{end}}`,
			`{{range fromJson .empties}}{{print . . . .}}{{end}}`},
		callFunc: {`{{define "t"}}{{.}}{{end}}{{range fromJson .list}}{{template "t" .}}{{end}}`},
	}
	for _, v := range verbs {
		star := ""
		if strings.Contains(v, "*") {
			star = "256 "
		}
		for _, arg := range []string{".s", ".h", ".c", ".", "(fromJson .list)", "(fromJson .obj)", "(fromJson .nested)", "(fromJson .nums)", "(fromJson .empties)"} {
			cases["printf"] = append(cases["printf"], fmt.Sprintf(`{{printf %q %s%s}}`, v, star, arg))
		}
	}
	cases["printf"] = append(cases["printf"], `{{printf "%[1]v%[1]v%[1]v%[1]v" .}}`, `{{printf "%08.3v" (fromJson .empties)}}`, `{{printf "%8v" .}}`, `{{printf "%-256v" .}}`)
	return cases
}

// builtinNames are text/template's own functions (its builtins table is
// not exported; this list is go1.26's).
var builtinNames = []string{"and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf", "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne"}

// measure executes tm over values without limits, and returns what it
// allocated (after a warm-up run, with the collector off) and what it
// was charged.
func measure(t *testing.T, tm *Template, values map[string]string) (alloc, charged int) {
	t.Helper()
	const unlimited = 1 << 26
	run := func() int {
		x := NewExecution(context.Background(), unlimited, Wording{Limit: "the limit", MissingKey: "missing"})
		start := x.left
		if _, err := x.Execute(tm, values, unlimited); err != nil {
			t.Fatalf("execution failed: %v", err)
		}
		return start - x.left
	}
	run()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	charged = run()
	runtime.ReadMemStats(&after)
	return int(after.TotalAlloc - before.TotalAlloc), charged
}

// TestChargeCoversAllocation: for every function and fmt verb, with
// scalar, list, map and data-map arguments, an execution allocates at most
// maxAllocPerCharge times what it is charged, so the budget bounds memory.
// Deterministic: it counts bytes, never time.
func TestChargeCoversAllocation(t *testing.T) {
	values := chargeValues(t)
	cases := chargeCases()
	var names []string
	for n := range (&execution{}).funcs() {
		names = append(names, n)
	}
	names = append(names, builtinNames...)
	sort.Strings(names)
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		texts, ok := cases[name]
		if !ok {
			t.Errorf("function %s has no case in chargeCases: add the arguments that make it allocate the most", name)
			continue
		}
		for _, text := range texts {
			tm, err := Parse(text)
			if err != nil {
				t.Fatalf("%s: %v", text, err)
			}
			alloc, charged := measure(t, tm, values)
			if testing.Verbose() {
				t.Logf("%-50s alloc %9d charged %9d ratio %.2f", text, alloc, charged, float64(alloc)/float64(max(1, charged)))
			}
			if alloc > maxAllocPerCharge*charged {
				t.Errorf("%s allocated %d bytes, more than %d times its charge of %d", text, alloc, maxAllocPerCharge, charged)
			}
		}
	}
	for name := range cases {
		if !seen[name] {
			t.Errorf("chargeCases names %s, which templates cannot call", name)
		}
	}
}

// TestHostileArgumentsRefusedBeforeTheyAllocate: the review's templates,
// which printed the data map many times or padded every element of a list,
// are refused before fmt runs: what the execution allocates stays within
// twice its work budget, where each of them allocated tens of megabytes
// (and, with larger values, gigabytes) before its output was charged.
func TestHostileArgumentsRefusedBeforeTheyAllocate(t *testing.T) {
	const limit = 64 << 10
	// Widths and precisions are at most 256 (limits.go): per element of a
	// long list, that is still megabytes.
	values := map[string]string{"big": strings.Repeat("<", 256<<10), "list": "[" + strings.TrimSuffix(strings.Repeat(`"",`, 16384), ",") + "]",
		"nums": "[" + strings.TrimSuffix(strings.Repeat(`0,`, 16384), ",") + "]"}
	many := strings.TrimSpace(strings.Repeat("$ ", 32))
	tests := map[string]string{
		"print":           `{{print ` + many + `}}`,
		"println":         `{{println ` + many + `}}`,
		"html":            `{{html ` + many + `}}`,
		"js":              `{{js ` + many + `}}`,
		"urlquery":        `{{urlquery ` + many + `}}`,
		"printf %v":       `{{printf "%v%v%v%v%v%v%v%v" $ $ $ $ $ $ $ $}}`,
		"printf index":    `{{printf "%[1]v%[1]v%[1]v%[1]v%[1]v%[1]v%[1]v%[1]v" $}}`,
		"width per item":  `{{printf "%256v" (fromJson .list)}}`,
		"star per item":   `{{printf "%*v" 256 (fromJson .list)}}`,
		"precision":       `{{printf "%.256f" (fromJson .nums)}}`,
		"toJson data map": `{{toJson $}}{{toJson $}}{{toJson $}}{{toJson $}}`,
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			tm, err := Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			x := NewExecution(context.Background(), limit, Wording{Limit: "the limit", MissingKey: "missing"})
			budget := x.left
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = x.Execute(tm, values, limit)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), "builds more than its budget") {
				t.Fatalf("Execute = %v, want the budget", err)
			}
			if testing.Verbose() {
				t.Log(err)
			}
			if got := int(after.TotalAlloc - before.TotalAlloc); got > maxAllocPerCharge*budget {
				t.Errorf("allocated %d bytes, more than %d times the budget of %d", got, maxAllocPerCharge, budget)
			}
		})
	}
}
