package jmes

import (
	"runtime"
	"strings"
	"testing"
)

// TestLimitsRefuseHostileExpressions: expressions nested or chained a few
// hundred thousand levels deep (600 KB), which overflow the parser's stack
// and kill the process, and expressions merely too long, are refused
// before any parser runs, allocating almost nothing.
func TestLimitsRefuseHostileExpressions(t *testing.T) {
	// Each attack at n levels.
	attacks := map[string]func(n int) string{
		"brackets":           func(n int) string { return strings.Repeat("[", n) + "a" + strings.Repeat("]", n) },
		"parentheses":        func(n int) string { return strings.Repeat("(", n) + "a" + strings.Repeat(")", n) },
		"braces":             func(n int) string { return strings.Repeat("{a:", n) + "a" + strings.Repeat("}", n) },
		"not":                func(n int) string { return strings.Repeat("!", n) + "a" },
		"expression refs":    func(n int) string { return "sort_by(a, " + strings.Repeat("&", n) + "b)" },
		"unary minus":        func(n int) string { return strings.Repeat("\u2212", n) + "a" },
		"dotted path":        func(n int) string { return "a" + strings.Repeat(".a", n) },
		"pipes":              func(n int) string { return "a" + strings.Repeat("|a", n) },
		"projections":        func(n int) string { return "a" + strings.Repeat("[*].a", n/3) },
		"filters":            func(n int) string { return strings.Repeat("[?a", n/2) + strings.Repeat("]", n/2) },
		"comparisons":        func(n int) string { return "a" + strings.Repeat("==a", n/2) },
		"and":                func(n int) string { return "a" + strings.Repeat("&&a", n/2) },
		"function arguments": func(n int) string { return strings.Repeat("length(", n) + "a" + strings.Repeat(")", n) },
		"after a comma":      func(n int) string { return "[a, " + strings.Repeat("[", n) + "]" },
		"flat and long":      func(n int) string { return "{" + strings.Repeat("a: b, ", n) + "c: d}" },
	}
	sizes := map[string]struct {
		n    int
		want string // in the error, besides "limit of"
	}{
		"600 KB":           {300_000, "bytes, over the limit of 4096"},
		"within 4 KB":      {300, "levels"},
		"one over the cap": {MaxExprDepth + 2, "levels"},
	}
	for name, attack := range attacks {
		for size, tc := range sizes {
			expr := attack(tc.n)
			if name == "flat and long" && size != "600 KB" {
				continue
			}
			t.Run(name+"/"+size, func(t *testing.T) {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				_, err := Compile(expr)
				runtime.ReadMemStats(&after)
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "limit of") {
					t.Fatalf("Compile = %v, want an error with %q and the limit", err, tc.want)
				}
				if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
					t.Errorf("refusing a %d-byte expression allocated %d bytes, want under 64 KiB", len(expr), got)
				}
			})
		}
	}
}

// TestLimitsAcceptRealExpressions: the depth count leaves room for every
// expression a class uses, and for nesting up to the limit.
func TestLimitsAcceptRealExpressions(t *testing.T) {
	for _, expr := range []string{
		"username", `"api-key"`, "db.credentials.password", `[?Name == 'x'].Value | [0]`,
		`{user: username, pass: password, host: connection.host, port: to_string(connection.port)}`,
		`join(',', sort_by(items, &name)[*].name)`, `items[?tags[?Key == 'env' && Value == 'prod']].id | [0]`,
		`keys(@)`, "`{\"a\": [[[[1]]]]}`", `'(((((('`, `"[[[[[[["`,
		strings.Repeat("(", MaxExprDepth-1) + "a" + strings.Repeat(")", MaxExprDepth-1),
		"a" + strings.Repeat(".a", MaxExprDepth-1),
		"[" + strings.Repeat("a.b.c, ", 500) + "a]", // wide, not deep
	} {
		if _, err := Compile(expr); err != nil {
			t.Errorf("Compile(%.60q) = %v", expr, err)
		}
	}
}

func TestExprDepth(t *testing.T) {
	tests := map[string]int{
		"":                    0,
		"a":                   0,
		"a.b":                 1,
		"a.b.c":               2,
		"[a, b]":              1,
		"[a.b, c]":            2,
		"[a, b].c":            2,
		"[[a], [b]]":          2,
		"f(a.b.c).d":          4,
		`"a.b.c"`:             0,
		`'[[[' `:              0,
		"`[[[`":               0,
		`"a\"[[["`:            0,
		"!!a":                 2,
		"a \u00d7 b":          1,
		"((a))":               2,
		"]]]a":                0,
		"[?a == 'x'].b | [0]": 7,
	}
	for expr, want := range tests {
		if got := exprDepth(expr, 1000); got != want {
			t.Errorf("exprDepth(%q) = %d, want %d", expr, got, want)
		}
	}
}
