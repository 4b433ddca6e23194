package secretsync

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/internal/work"
	"github.com/coffer-csi/coffer/provider/render"
)

// templateDecl declares one Secret with the values pw (the canary) and
// list (a JSON array of 200 numbers) and the template x.
func templateDecl(x string) string {
	return "[{secretName: s, data: [{key: pw, objectName: db-pass}, {key: list, objectName: cert}], template: {data: {x: '" + strings.ReplaceAll(x, "'", "''") + "'}}}]"
}

func templateContent() content {
	c := defaultContent()
	c["cert"] = "[" + strings.TrimSuffix(strings.Repeat("0,", 200), ",") + "]"
	return c
}

// TestTemplateBudget: templates that multiply their input, loop or recurse
// fail with a clear error, having allocated no more than a fixed multiple
// of the Secret's size limit, and stop at the deadline.
func TestTemplateBudget(t *testing.T) {
	tests := map[string]struct{ tmpl, want string }{
		"nested range output": {
			`{{range fromJson .list}}{{range fromJson $.list}}{{range fromJson $.list}}{{$.pw}}{{end}}{{end}}{{end}}`,
			// Each iteration is charged what text/template allocates for
			// it, so the work budget ends this before the output limit.
			"the template builds more than its budget"},
		"nested range, no output": {
			`{{$l := fromJson .list}}{{range $l}}{{range $l}}{{range $l}}{{range $l}}{{end}}{{end}}{{end}}{{end}}`,
			"the template builds more than its budget"},
		"recursion": {
			`{{define "a"}}{{if .}}{{template "a" (slice . 1)}}{{template "a" (slice . 1)}}{{end}}{{end}}{{template "a" .list}}`,
			"the template builds more than its budget"},
		"doubling a variable": {
			`{{$x := .pw}}{{range fromJson .list}}{{$x = printf "%s%s" $x $x}}{{end}}{{len $x}}`,
			"the template builds more than its budget"},
		"replace": {`{{$a := replace "" .pw .pw}}{{$b := replace "" $a $a}}{{replace "" $b $b | len}}`, "the template builds more than its budget"},
		// Widths over tmpl.MaxFormatWidth are refused before fmt runs (a
		// literal format's when the template is parsed: see tmpl).
		"printf width": {`{{printf (print "%0999999999d") 1 | len}}`, "over the limit of 256"},
		"printf star":  {`{{printf "%*d" 999999999 1 | len}}`, "over the limit of 256"},
		"printf index": {`{{printf "%[2]*[1]d" 1 999999999 | len}}`, "over the limit of 256"},
		"indent":       {`{{indent 999999999 .pw | len}}`, "the template builds more than its budget"},
		// The review's: fmt pads every element of a list with the width,
		// and prints the whole data map for each $ it is given.
		"printf width per element": {`{{range fromJson .list}}{{printf "%256v" (fromJson $.list) | len}}{{end}}`, "the template builds more than its budget"},
		"data map printed": {`{{range fromJson .list}}{{range fromJson $.list}}{{$x := html $ $ $ $ $ $ $ $ $ $ $ $ $ $ $ $}}{{end}}{{end}}`,
			"the template builds more than its budget"},
		"fromJson": {`{{range fromJson .list}}{{range fromJson $.list}}{{$j := fromJson $.list}}{{end}}{{end}}`, "the template builds more than its budget"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := parseDecl(t, templateDecl(tc.tmpl))[0]
			fs := byPath(files(t, testConfig(t), templateContent(), "v1"))
			var err error
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = s.Build(context.Background(), fs)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error holds a value: %v", err)
			}
			if got, bound := after.TotalAlloc-before.TotalAlloc, uint64(maxTemplateAllocPerByte*MaxSecretBytes); got > bound {
				t.Errorf("allocated %d bytes, over %d", got, bound)
			}
		})
	}
	t.Run("deadline", func(t *testing.T) {
		s := parseDecl(t, templateDecl(`{{range fromJson .list}}{{end}}`))[0]
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := s.Build(ctx, byPath(files(t, testConfig(t), templateContent(), "v1")))
		if err == nil || !strings.Contains(err.Error(), "ran out of time") {
			t.Fatalf("Build = %v, want the deadline", err)
		}
	})
}

// maxTemplateAllocPerByte is the invariant: a Build allocates at most this
// many bytes per byte of the Secret size limit.
const maxTemplateAllocPerByte = 32

// TestTemplateErrorsNeverEchoTheValue: text/template's messages can print
// values; coffer's replace them, naming the line and what was wrong.
func TestTemplateErrorsNeverEchoTheValue(t *testing.T) {
	tests := map[string]struct{ tmpl, want string }{
		"range over a string": {`{{range .pw}}{{end}}`, "line 1, column 8 ({{ .pw }}): ranges over a value that is not a list or map"},
		"index a string":      {`{{index .pw 99}}`, "line 1, column 2 ({{ index .pw 99 }})"},
		"slice out of range":  {`{{slice .pw 1 999}}`, "an index or slice bound is out of range"},
		"compare":             {`{{if lt .pw 1}}{{end}}`, "line 1"},
		"field of a string":   {`{{.pw.x}}`, "reads a field of a value that has none"},
		"wrong type":          {`{{indent .pw .pw}}`, "line 1"},
		"b64dec":              {`{{b64dec .pw}}`, "not valid base64"},
		"fromJson":            {`{{fromJson .pw}}`, "fromJson: the value is not valid JSON"},
		"required":            {`{{"" | required "pw is empty"}}`, "required: pw is empty"},
		"nil":                 {`{{(fromJson "null").x}}`, "line 1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := parseDecl(t, templateDecl(tc.tmpl))[0]
			_, err := s.Build(context.Background(), byPath(files(t, testConfig(t), templateContent(), "v1")))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error holds a value: %v", err)
			}
		})
	}
	// required's message is the template's own text, never a value.
	for _, tmpl := range []string{`{{"" | required .pw}}`, `{{required .pw ""}}`, `{{"" | required (printf "%s" .pw)}}`} {
		_, err := Parse(templateDecl(tmpl), testConfig(t))
		if err == nil || !strings.Contains(err.Error(), "required's message must be a quoted string") {
			t.Errorf("Parse(%s) = %v, want required's message refused", tmpl, err)
		}
	}
}

// TestTemplateFailuresInEventsAndStatus: a failing template's Event, log
// and status annotation name the template and line, never a value.
func TestTemplateFailuresInEventsAndStatus(t *testing.T) {
	for _, tmpl := range []string{`{{range .pw}}{{end}}`, `{{slice .pw 1 999}}`, `{{lt .pw 1}}`, strings.Repeat(`{{range fromJson .list}}`, 3) + `{{$.pw}}` + strings.Repeat(`{{end}}`, 3)} {
		e := newEnv(t)
		r := e.one(templateDecl(tmpl), templateContent(), "v1", nil)
		wantResult(t, r, false, ReasonInvalidData, "template.data[x]")
		st := summarize(1, []SecretStatus{secretStatus(r, "", SecretStatus{}, time.Now())}).encode()
		if strings.Contains(st, canary) || !strings.Contains(st, "template.data[x]") {
			t.Errorf("status annotation %s: want the template named, no value", st)
		}
	}
}

// TestBudgetedBuiltinsBehaveAsTextTemplates: the replaced printf, print,
// println, html, js and urlquery write what text/template's would.
func TestBudgetedBuiltinsBehaveAsTextTemplates(t *testing.T) {
	tmpl := `{{printf "%05d-%[1]x-%.2f-%*d" 7 1.5 3 2}}|{{print "a" 1}}|{{println "b"}}|{{html "<a>"}}|{{js "'"}}|{{urlquery "a b"}}|{{indent 2 "x\ny"}}`
	s := parseDecl(t, templateDecl(tmpl))[0]
	got, err := s.Build(context.Background(), byPath(files(t, testConfig(t), templateContent(), "v1")))
	if err != nil {
		t.Fatal(err)
	}
	if want := "00007-7-1.50-  2|a1|b\n|&lt;a&gt;|\\'|a+b|  x\n  y"; string(got["x"]) != want {
		t.Errorf("x = %q, want %q", got["x"], want)
	}
}

// TestPrintfArgumentsAreSized: a printf whose verbs repeat a large
// argument (explicit argument indexes let a short format print one value
// thousands of times) is sized before it runs, not charged after fmt has
// built it.
func TestPrintfArgumentsAreSized(t *testing.T) {
	tests := map[string]string{
		"%s":  `{{printf "` + strings.Repeat("%[1]s", 2000) + `" $a | len}}`,
		"%x":  `{{printf "` + strings.Repeat("%[1]x", 1000) + `" $a | len}}`,
		"% x": `{{printf "` + strings.Repeat("%[1] x", 400) + `" $a | len}}`,
		"%q":  `{{printf "` + strings.Repeat("%[1]q", 1000) + `" $a | len}}`,
		// A format built at run time: a template is at most 64 KiB.
		"%v": `{{$j := fromJson .list}}{{$f := printf "` + strings.Repeat("%[1]s", 200) + `" "%[1]v"}}{{$f = printf "` + strings.Repeat("%[1]s", 200) + `" $f}}{{printf $f $j | len}}`,
	}
	for name, tmpl := range tests {
		t.Run(name, func(t *testing.T) { overBudget(t, tmpl) })
	}
}

// TestVariadicBuiltinsAreSized: print, println, html, js and urlquery
// take any number of arguments; one value passed thousands of times is
// sized before they run.
func TestVariadicBuiltinsAreSized(t *testing.T) {
	for _, fn := range []string{"print", "println", "html", "js", "urlquery"} {
		t.Run(fn, func(t *testing.T) { overBudget(t, `{{`+fn+strings.Repeat(" $a", 2000)+` | len}}`) })
	}
}

// overBudget builds tmpl, with $a a 64 KiB string built within the budget,
// and wants the budget's error having allocated no more than the invariant.
func overBudget(t *testing.T, tmpl string) {
	t.Helper()
	grow := `{{$a := printf "` + strings.Repeat("%[1]s", 160) + `" .list}}`
	s := parseDecl(t, templateDecl(grow+tmpl))[0]
	fs := byPath(files(t, testConfig(t), templateContent(), "v1"))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := s.Build(context.Background(), fs)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "the template builds more than its budget") {
		t.Fatalf("Build = %v, want the budget", err)
	}
	if got, bound := after.TotalAlloc-before.TotalAlloc, uint64(maxTemplateAllocPerByte*MaxSecretBytes); got > bound {
		t.Errorf("allocated %d bytes, over %d", got, bound)
	}
}

// TestPrintfHugeStarsDoNotOverflow: two maximal * widths cannot wrap the
// total below the budget: they are refused (over tmpl.MaxFormatWidth).
func TestPrintfHugeStarsDoNotOverflow(t *testing.T) {
	s := parseDecl(t, templateDecl(`{{printf "%**d" 9223372036854775807 9223372036854775807 1 | len}}`))[0]
	_, err := s.Build(context.Background(), byPath(files(t, testConfig(t), templateContent(), "v1")))
	if err == nil || !strings.Contains(err.Error(), "over the limit of 256") {
		t.Fatalf("Build = %v, want the width limit", err)
	}
}

// TestTemplatesShareOneBudget: the templates of one sync draw from one
// work budget (the controller and the sync after a mount put one in the
// context), so a class cannot multiply its allowance by declaring more
// Secrets: each of these stays within its own, and together they are
// refused once the shared budget is spent.
func TestTemplatesShareOneBudget(t *testing.T) {
	e := newEnv(t)
	var decls []string
	// About 1 MiB of work each, an eighth of a Secret's own allowance.
	tmpl := `{{$a := replace "" .pw .pw}}` + strings.Repeat(`{{replace "" $a $a | len}}`, 4)
	for i := range 64 {
		decls = append(decls, fmt.Sprintf("{secretName: s%d, data: [{key: pw, objectName: db-pass}], template: {data: {x: '%s'}}}", i, tmpl))
	}
	secrets, err := Parse("["+strings.Join(decls, ", ")+"]", e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := work.NewContext(context.Background(), work.New(render.MaxWork))
	refused := 0
	for _, r := range e.engine.Sync(ctx, e.owner, secrets, files(t, e.cfg, templateContent(), "v1"), nil) {
		if !r.Ready {
			if !strings.Contains(r.Message, "work budget they share") {
				t.Errorf("%s: %s, want the shared budget", r.Secret, r.Message)
			}
			refused++
		}
	}
	if refused == 0 || refused == len(secrets) {
		t.Errorf("%d of %d Secrets refused, want the first synced and the rest refused once the budget is spent", refused, len(secrets))
	}
}

// TestExtractsShareOneBudget: each Secret's dataFrom decodes its JSON
// source anew; under a sync's shared budget, many Secrets extracting a
// large document of small values are refused once it is spent, instead
// of decoding it to sixty times its size for each of them.
func TestExtractsShareOneBudget(t *testing.T) {
	e := newEnv(t)
	var decls []string
	for i := range 64 {
		decls = append(decls, fmt.Sprintf("{secretName: s%d, dataFrom: [{extract: db.json}]}", i))
	}
	secrets, err := Parse("["+strings.Join(decls, ", ")+"]", e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := defaultContent()
	var keys []string
	for i := range 20000 {
		keys = append(keys, fmt.Sprintf(`"k%d":{}`, i))
	}
	c["db.json"] = "{" + strings.Join(keys, ",") + "}"
	ctx := work.NewContext(context.Background(), work.New(render.MaxWork))
	refused := 0
	for _, r := range e.engine.Sync(ctx, e.owner, secrets, files(t, e.cfg, c, "v1"), nil) {
		if !r.Ready && strings.Contains(r.Message, "work budget they share") {
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("no Secret refused by the shared budget, want those after it is spent")
	}
}
