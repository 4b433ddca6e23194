package tmpl

import (
	"context"
	"strings"
	"testing"
)

// TestReferences: the keys a template names with the data as its dot, and
// none that a with or range body names of its own value.
func TestReferences(t *testing.T) {
	tests := map[string]struct{ text, want string }{
		"field":              {`{{ .db }}`, "db"},
		"nested field":       {`{{ .db.host }}`, "db"},
		"root variable":      {`{{ range fromJson .list }}{{ $.pw }}{{ end }}`, "list pw"},
		"index":              {`{{ index . "api-key" }} {{ index $ "b" "c" }}`, "api-key b"},
		"with body":          {`{{ with fromJson .db }}{{ .host }}:{{ .port }}{{ else }}{{ .fallback }}{{ end }}`, "db fallback"},
		"range body":         {`{{ range $k, $v := fromJson .m }}{{ .x }}{{ end }}`, "m"},
		"if keeps the dot":   {`{{ if .a }}{{ .b }}{{ end }}`, "a b"},
		"parenthesized":      {`{{ (fromJson .db).host | upper }}`, "db"},
		"index in with body": {`{{ with .x }}{{ index . "y" }}{{ end }}`, "x"},
		"dynamic index":      {`{{ $k := "a" }}{{ index . $k }}`, ""},
		"no references":      {`static`, ""},
		"define body":        {`{{ define "t" }}{{ .inner }}{{ end }}{{ template "t" .outer }}`, "outer"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tm, err := Parse(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(tm.References(), " "); got != tc.want {
				t.Errorf("References() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWording: the limit and the missing-key message are the caller's,
// the rest the engine's; no message holds a value.
func TestWording(t *testing.T) {
	w := Wording{Limit: "the file's limit", MissingKey: "reads an input the file does not name"}
	const canary = "canary-Zq9"
	tests := map[string]struct{ text, want string }{
		"output": {`{{ .pw }}{{ .pw }}`, "the output exceeds the 12 bytes left of the file's limit"},
		"work":   {`{{ replace "" .pw .pw | replace "" .pw | replace "" .pw | replace "" .pw | len }}`, "the template builds more than its budget (8 times the file's limit, plus 64 KiB)"},
		"key":    {`{{ .nope }}`, "line 1, column 3 ({{ .nope }}): reads an input the file does not name"},
		"base64": {`{{ b64dec .pw }}`, "not valid base64"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tm, err := Parse(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			_, err = NewExecution(context.Background(), 12, w).Execute(tm, map[string]string{"pw": canary}, 12)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Execute = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error holds the value: %v", err)
			}
		})
	}
}

func TestDecodeBase64(t *testing.T) {
	for _, tc := range []struct {
		in   string
		url  bool
		want string
	}{{"aGk=", false, "hi"}, {"aGk", false, "hi"}, {"aGk=\n", false, "hi"}, {"-_8", true, "\xfb\xff"}} {
		got, err := DecodeBase64([]byte(tc.in), tc.url)
		if err != nil || string(got) != tc.want {
			t.Errorf("DecodeBase64(%q, %v) = %q, %v; want %q", tc.in, tc.url, got, err, tc.want)
		}
	}
	if _, err := DecodeBase64([]byte("secret!"), false); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("DecodeBase64 of bad input = %v, want an error without the input", err)
	}
}

// TestStepLimit: however large the work budget, range iterations and
// template calls are bounded too.
func TestStepLimit(t *testing.T) {
	tm, err := Parse(`{{$l := fromJson .list}}{{range $l}}{{range $l}}{{end}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	list := "[" + strings.TrimSuffix(strings.Repeat("0,", 300), ",") + "]"
	_, err = NewExecution(context.Background(), 64<<20, Wording{}).Execute(tm, map[string]string{"list": list}, 64<<20)
	if err == nil || !strings.Contains(err.Error(), "range iterations and template calls") {
		t.Fatalf("Execute = %v, want the step limit", err)
	}
}

// TestLargeValuesFitTheBudget: the charges are worst cases, yet an
// ordinary template over a value near a Secret's 1 MiB still fits its
// budget: printing, quoting and encoding it once each.
func TestLargeValuesFitTheBudget(t *testing.T) {
	const limit = 1 << 20
	values := map[string]string{"v": strings.Repeat("MIIEpAIBAAKCAQEAx", 900<<10/17)}
	for _, text := range []string{`{{ .v }}`, `{{ printf "%s" .v }}`, `{{ print .v }}`, `{{ .v | quote }}`, `{{ .v | toJson }}`,
		`{{ .v | upper }}`, `{{ .v | b64enc | len }}`, `{{ .v | b64dec | len }}`, `{{ indent 2 .v }}`, `{{ html .v }}`, `{{ replace "A" "a" .v }}`} {
		tm, err := Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewExecution(context.Background(), limit, Wording{Limit: "the limit"}).Execute(tm, values, limit); err != nil {
			t.Errorf("%s: %v", text, err)
		}
	}
}

// TestGuardsCannotBeCalled: the step guards charge the count they are
// given; a template that calls one (with a negative count, to get work
// back) is refused when parsed.
func TestGuardsCannotBeCalled(t *testing.T) {
	for _, text := range []string{`{{ cofferStep -100000000 }}`, `{{ cofferCall -1 }}`, `{{ define "x" }}{{ cofferStep 0 }}{{ end }}`} {
		if _, err := Parse(text); err == nil || !strings.Contains(err.Error(), "not defined") {
			t.Errorf("Parse(%s) = %v, want the guard refused", text, err)
		}
	}
}
