package tmpl

import (
	"context"
	"runtime"
	"strings"
	"testing"
)

// TestLimitsRefuseHostileTemplates: templates nested a hundred thousand
// levels deep (which exhaust the parser's stack) and templates merely too
// long are refused before text/template parses them, allocating almost
// nothing.
func TestLimitsRefuseHostileTemplates(t *testing.T) {
	attacks := map[string]func(n int) string{
		"if":          func(n int) string { return strings.Repeat("{{if .a}}", n) + strings.Repeat("{{end}}", n) },
		"trimmed if":  func(n int) string { return strings.Repeat("{{- if .a -}}", n) + strings.Repeat("{{end}}", n) },
		"range":       func(n int) string { return strings.Repeat("{{range .a}}", n) + strings.Repeat("{{end}}", n) },
		"with":        func(n int) string { return strings.Repeat("{{with .a}}", n) + strings.Repeat("{{end}}", n) },
		"else if":     func(n int) string { return "{{if .a}}" + strings.Repeat("{{else if .a}}", n) + "{{end}}" },
		"else with":   func(n int) string { return "{{with .a}}" + strings.Repeat("{{else with .a}}", n) + "{{end}}" },
		"parentheses": func(n int) string { return "{{" + strings.Repeat("(", n) + ".a" + strings.Repeat(")", n) + "}}" },
		"block":       func(n int) string { return strings.Repeat(`{{block "b" .}}`, n) + strings.Repeat("{{end}}", n) },
		"mixed":       func(n int) string { return strings.Repeat("{{if (or (.a) (.b))}}", n) + strings.Repeat("{{end}}", n) },
		"flat":        func(n int) string { return strings.Repeat("{{ .a }}", n) },
	}
	sizes := map[string]struct {
		n    int
		want string
	}{
		"600 KB":           {600 << 10 / 7, "bytes, over the limit of 65536"},
		"within 64 KB":     {1000, "levels"},
		"one over the cap": {MaxTemplateDepth + 1, "levels"},
	}
	for name, attack := range attacks {
		for size, tc := range sizes {
			if name == "flat" && size != "600 KB" {
				continue
			}
			text := attack(tc.n)
			t.Run(name+"/"+size, func(t *testing.T) {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				_, err := Parse(text)
				runtime.ReadMemStats(&after)
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "limit of") {
					t.Fatalf("Parse = %v, want an error with %q and the limit", err, tc.want)
				}
				if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
					t.Errorf("refusing a %d-byte template allocated %d bytes, want under 64 KiB", len(text), got)
				}
			})
		}
	}
}

// TestLimitsAcceptRealTemplates: real nesting, and nesting up to the
// limit, parse; strings and comments that look like actions do not count.
func TestLimitsAcceptRealTemplates(t *testing.T) {
	for _, text := range []string{
		`{{ range $k, $v := fromJson .db }}{{ if eq $k "host" }}{{ with $v }}{{ printf "%s:%05d" . 5432 }}{{ end }}{{ end }}{{ end }}`,
		`{{ if .a }}x{{ else if .b }}y{{ else }}w{{ end }}{{ with .a }}{{ else with .b }}{{ end }}`,
		`{{ define "t" }}{{ .x }}{{ end }}{{ template "t" . }}`,
		`{{ "((((((((" }} {{/* {{if}} {{if}} (((( */}} {{ print "{{if .a}}" }} ` + "{{ `((((` }}",
		`{{ printf "%-256s|%.256s|%[2]s|%256.256s" .a .b }}`,
		// ESO's templating guide's kinds: a config file, a dashed key,
		// a JSON value reached into.
		"database:\n  url: \"postgres://{{ .user }}:{{ .password | urlquery }}@{{ .host }}:5432/app\"\n  token: {{ index . \"service-account-token\" | quote }}\n",
		`{{ $c := fromJson .config }}{{ range $k, $v := $c }}{{ $k }}={{ $v }}{{ "\n" }}{{ end }}`,
		`{{ .cert | b64dec | b64enc }}{{ printf "%-12s|%08.3f" .name 3.14159 }}`,
		strings.Repeat("{{if .a}}", MaxTemplateDepth) + strings.Repeat("{{end}}", MaxTemplateDepth),
		strings.Repeat("{{if .a}}{{end}}", 4000), // long, not deep
	} {
		if _, err := Parse(text); err != nil {
			t.Errorf("Parse(%.60q) = %v", text, err)
		}
	}
}

// TestFormatWidthLimit: a printf width or precision over MaxFormatWidth
// is refused when the template is parsed if the format is written in it,
// and when it runs otherwise (a piped format, or a * width).
func TestFormatWidthLimit(t *testing.T) {
	parseErrors := map[string]string{
		"width":              `{{ printf "%257s" .a }}`,
		"precision":          `{{ printf "%.999999999s" .a }}`,
		"after flags":        `{{ printf "%-0+# 300d" 1 }}`,
		"after an index":     `{{ printf "%[1]300s" .a }}`,
		"second verb":        `{{ printf "%s %1000v" .a .a }}`,
		"on the second line": "x\n{{ printf \"%5000s\" .a }}",
	}
	for name, text := range parseErrors {
		t.Run("parse/"+name, func(t *testing.T) {
			_, err := Parse(text)
			if err == nil || !strings.Contains(err.Error(), "over the limit of 256") || !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("Parse(%q) = %v, want line N and the width limit", text, err)
			}
		})
	}
	runErrors := map[string]string{
		"star width":             `{{ printf "%*s" 1000 .a }}`,
		"negative star":          `{{ printf "%-*s" -1000 .a }}`,
		"star precision":         `{{ printf "%.*s" 100000 .a }}`,
		"piped format":           `{{ "%300s" | printf }}`,
		"format from a variable": `{{ $f := "%9999s" }}{{ printf $f .a }}`,
	}
	for name, text := range runErrors {
		t.Run("run/"+name, func(t *testing.T) {
			tm, err := Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			x := NewExecution(context.Background(), 1<<20, Wording{Limit: "the limit"})
			_, err = x.Execute(tm, map[string]string{"a": "v"}, 1<<20)
			if err == nil || !strings.Contains(err.Error(), "over the limit of 256") {
				t.Fatalf("Execute(%q) = %v, want the width limit", text, err)
			}
		})
	}
	tm, err := Parse(`{{ printf "%*s|%.*s|%05d" 256 .a -256 .a 7 }}`)
	if err != nil {
		t.Fatal(err)
	}
	x := NewExecution(context.Background(), 1<<20, Wording{Limit: "the limit"})
	if _, err := x.Execute(tm, map[string]string{"a": "v"}, 1<<20); err != nil {
		t.Fatalf("widths at the limit: %v", err)
	}
}

func TestWidestLiteral(t *testing.T) {
	tests := map[string]int{
		"": 0, "%s": 0, "%05d": 5, "%-20s": 20, "%.3f": 3, "%10.200f": 200, "%[12]d": 0,
		"%%300": 0, "%9999999999999999999999d": MaxFormatWidth + 1, "100%": 0, "%*d": 0,
	}
	for f, want := range tests {
		if got := widestLiteral(f); got != want {
			t.Errorf("widestLiteral(%q) = %d, want %d", f, got, want)
		}
	}
}
