package render_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// allocated returns the bytes fn allocates (all goroutines; the tests here
// run alone).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestJMESPathBudget: expressions that multiply a small secret fail with a
// clear error, having allocated no more than a fixed multiple of the
// response limit, whatever they ask for.
func TestJMESPathBudget(t *testing.T) {
	const limit = 64 << 10
	secret := `{"password":"` + canaryValue + `","n":1000000000000,"list":["a","b","c"]}`
	tests := map[string]struct{ path, want string }{
		// The review's 138 bytes: each step doubles the value.
		"doubling":         {strings.Repeat("[@,@]|", 22) + "[@,@]", "builds more than"},
		"doubling flatten": {strings.Repeat("[@,@][]|", 22) + "@", "builds more than"},
		"doubling string":  {"password" + strings.Repeat("|join(@,[@,@,@])", 1) + strings.Repeat("|replace(@,'','xx')", 12), "builds more than"},
		"pad_left":         {"pad_left(password, n)", "builds more than"},
		"pad_right":        {"pad_right('', `1e15`)", "builds more than"},
		"join":             {"join(join('', [password,password,password,password]), [password,password,password,password,password,password,password,password])|join(@,[@,@,@,@,@,@,@,@,@,@,@,@,@,@,@,@])|join(@,[@,@,@,@,@,@,@,@,@,@,@,@,@,@,@,@])", "builds more than"},
		"split":            {"[password,password,password,password]|join('',@)" + strings.Repeat("|replace(@,'','y')", 9) + "|split(@,'')", "builds more than"},
		"projection":       {strings.Repeat("[@,@]|", 20) + "[*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*][*].x", "builds more than"},
		"result too large": {"to_string([@,@,@,@,@,@,@,@,@,@,@,@,@,@,@,@])|[@,@,@,@,@,@,@,@,@,@,@,@,@,@,@,@]|to_string(@)|[@,@,@,@,@,@,@,@]|to_string(@)", "more than"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := parse(t, "- {objectName: s, objectType: secretsmanager, jmesPath: [{path: \""+strings.ReplaceAll(tc.path, `"`, `\"`)+"\", objectAlias: x}]}")
			var err error
			got := allocated(func() {
				_, err = render.Files(context.Background(), []fetch.Value{{Object: cfg.Objects[0], Data: []byte(secret), Version: "v"}}, render.Options{MaxResponseBytes: limit})
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canaryValue) {
				t.Errorf("error echoes the value: %v", err)
			}
			// Invariant, not timing: a fixed multiple of the limit.
			if bound := uint64(maxAllocPerLimitByte*(limit+len(secret)) + allocSlack); got > bound {
				t.Errorf("allocated %d bytes, over %d", got, bound)
			}
		})
	}
}

// maxAllocPerLimitByte is the invariant the budget keeps: rendering
// allocates at most this many bytes per byte of response limit and of the
// value rendered, plus allocSlack.
const (
	maxAllocPerLimitByte = 64
	allocSlack           = 1 << 20
)

const canaryValue = "CANARY-budget-5d2e0f"

// TestJMESPathDeadline: evaluation stops when the mount's deadline passes.
func TestJMESPathDeadline(t *testing.T) {
	cfg := parse(t, "- {objectName: s, objectType: secretsmanager, jmesPath: [{path: \"[@,@]|[@,@]\", objectAlias: x}]}")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := render.Files(ctx, []fetch.Value{{Object: cfg.Objects[0], Data: []byte(`{"a":1}`), Version: "v"}}, render.Options{})
	if err == nil || !strings.Contains(err.Error(), "evaluation stopped") {
		t.Fatalf("err = %v, want the evaluation stopped", err)
	}
}

// TestJMESPathStringSliceBudget: slicing a string converts it to runes
// (four bytes per character) before slicing; a chain of string slices on a
// large secret is charged what it allocates, not only the string it
// returns.
func TestJMESPathStringSliceBudget(t *testing.T) {
	const limit = 64 << 10
	secret := `{"s":"` + strings.Repeat("x", 60000) + `"}`
	tests := map[string]string{
		// Within jmes.MaxExprDepth (a pipe and a slice count three levels).
		"reversed": "s" + strings.Repeat("|[::-1]", 30),
		// A one-character result of a whole string's runes.
		"short": "length([" + strings.TrimSuffix(strings.Repeat("s[:1],", 500), ",") + "])",
	}
	for name, path := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := parse(t, "- {objectName: s, objectType: secretsmanager, jmesPath: [{path: \""+path+"\", objectAlias: x}]}")
			var err error
			got := allocated(func() {
				_, err = render.Files(context.Background(), []fetch.Value{{Object: cfg.Objects[0], Data: []byte(secret), Version: "v"}}, render.Options{MaxResponseBytes: limit})
			})
			if err == nil || !strings.Contains(err.Error(), "builds more than") {
				t.Fatalf("err = %v, want the budget", err)
			}
			if bound := uint64(maxAllocPerLimitByte*(limit+len(secret)) + allocSlack); got > bound {
				t.Errorf("allocated %d bytes, over %d", got, bound)
			}
		})
	}
}

// TestJMESPathComparisonBudget: a filter that compares or scans the whole
// document once per element does quadratic work while building nothing
// but booleans (each case took 5 to 20 s of CPU on a 64 KiB secret). Only
// $ reaches the whole document from inside a filter, and $ is not standard
// JMESPath: such paths are refused when the class is read. internal/jmes
// keeps charging comparisons all the same (TestComparisonBudget there).
func TestJMESPathComparisonBudget(t *testing.T) {
	for name, path := range map[string]string{
		"equal":     "length(a[?$.a == $.b])",
		"not equal": "length(a[?$.a != $.b])",
		"contains":  "length(a[?contains($.b, `1`)])",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := spc.Parse(map[string]string{"region": "us-east-1", "objects": "- {objectName: s, objectType: secretsmanager, jmesPath: [{path: \"" + path + "\", objectAlias: x}]}"}, spc.Options{})
			if err == nil || !strings.Contains(err.Error(), "not standard JMESPath") {
				t.Fatalf("err = %v, want the path refused", err)
			}
		})
	}
}

// TestJMESPathSharedBudget: the entries of one mount share one budget,
// written or not. Each entry of the review's class (256 with writeFile:
// false) stayed within an allowance of its own, and together they took a
// mount that succeeded to 1.6 GB.
func TestJMESPathSharedBudget(t *testing.T) {
	const limit = 64 << 10
	secret := `{"s":"` + strings.Repeat("x", 6000) + `"}`
	multiplied := "length(to_string([@,@,@,@,@,@,@,@]))"
	tests := map[string]struct {
		path      string
		entries   int
		writeFile string
	}{
		// Each keeps a copy of the document's text.
		"unwritten whole document": {"@", 256, "false"},
		// Each builds within an allowance of its own and writes little.
		"unwritten multiplied": {multiplied, 256, "false"},
		"written multiplied":   {multiplied, 256, "true"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			// 64 entries an object (the cap), over as many objects as it takes.
			var objects []string
			for o := 0; o*64 < tc.entries; o++ {
				var entries []string
				for i := o * 64; i < min(tc.entries, (o+1)*64); i++ {
					entries = append(entries, fmt.Sprintf("{path: '%s', objectAlias: e%d, writeFile: %s}", tc.path, i, tc.writeFile))
				}
				objects = append(objects, fmt.Sprintf("- {objectName: s%d, objectType: secretsmanager, jmesPath: [%s]}", o, strings.Join(entries, ", ")))
			}
			cfg := parse(t, strings.Join(objects, "\n"))
			var values []fetch.Value
			for _, o := range cfg.Objects {
				values = append(values, fetch.Value{Object: o, Data: []byte(secret), Version: "v"})
			}
			var err error
			got := allocated(func() {
				_, err = render.Files(context.Background(), values, render.Options{MaxResponseBytes: limit})
			})
			if err == nil || !strings.Contains(err.Error(), "work budget") {
				t.Fatalf("err = %v, want the shared budget", err)
			}
			if bound := uint64(maxAllocPerLimitByte*(limit+len(values)*len(secret)) + allocSlack); got > bound {
				t.Errorf("allocated %d bytes, over %d", got, bound)
			}
		})
	}
}

// TestJMESPathDecodingIsCharged: decoding a document for jmesPath is
// charged to the mount's budget before it runs: a document of the smallest
// values decodes to sixty times its size ({"":0} is a map, a key and a
// number), twice (with exact numbers and without).
func TestJMESPathDecodingIsCharged(t *testing.T) {
	const limit = 64 << 10
	secret := "[" + strings.TrimSuffix(strings.Repeat(`{"":0},`, 150000), ",") + "]"
	cfg := parse(t, "- {objectName: s, objectType: secretsmanager, jmesPath: [{path: 'length(@)', objectAlias: x}]}")
	var err error
	got := allocated(func() {
		_, err = render.Files(context.Background(), []fetch.Value{{Object: cfg.Objects[0], Data: []byte(secret), Version: "v"}}, render.Options{MaxResponseBytes: limit})
	})
	if err == nil || !strings.Contains(err.Error(), "work budget") {
		t.Fatalf("err = %v, want the shared budget", err)
	}
	if bound := uint64(maxAllocPerLimitByte*(limit+len(secret)) + allocSlack); got > bound {
		t.Errorf("allocated %d bytes, over %d", got, bound)
	}
}

// TestOrdinaryPathsFitTheBudget: the charges are worst cases, yet the
// ordinary expressions of a class (selections, filters, to_string, keys)
// over a 256 KiB secret, twenty entries of them, some unwritten, fit the
// default response limit's budget.
func TestOrdinaryPathsFitTheBudget(t *testing.T) {
	var users []string
	for i := range 2000 {
		users = append(users, fmt.Sprintf(`{"name":"user%d","password":"%s","port":%d,"tags":["a","b"]}`, i, strings.Repeat("p", 80), 5000+i))
	}
	secret := `{"host":"db.example","users":[` + strings.Join(users, ",") + `]}`
	paths := []string{"host", "users[0].password", "users[?name == 'user1999'].password | [0]", "length(users)", "users[*].name | [0]",
		"to_string(users[0])", "keys(users[0])", "join(',', users[0].tags)", "max_by(users, &port).name", "users[-1].port"}
	var entries []string
	for i, p := range paths {
		entries = append(entries, fmt.Sprintf("{path: \"%s\", objectAlias: w%d}", p, i), fmt.Sprintf("{path: \"%s\", objectAlias: u%d, writeFile: false}", p, i))
	}
	cfg := parse(t, "- {objectName: s, objectType: secretsmanager, jmesPath: ["+strings.Join(entries, ", ")+"]}")
	if _, err := render.Files(context.Background(), []fetch.Value{{Object: cfg.Objects[0], Data: []byte(secret), Version: "v"}}, render.Options{}); err != nil {
		t.Fatal(err)
	}
}
