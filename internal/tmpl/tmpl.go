// Package tmpl is coffer's one template language: Go text/template with
// coffer's functions, bounded while it runs (output, work, steps and the
// deadline), with errors that name the template's line and action and never
// a value. Secret sync (template.data) and templated mount files both use
// it.
package tmpl

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode"

	"github.com/coffer-csi/coffer/internal/jmes"
	"github.com/coffer-csi/coffer/internal/work"
)

// Template functions, besides text/template's own (index, printf, eq, ...).
// Values are strings; a function that takes the piped value takes it last,
// as in Helm. Their errors never contain the value they were given.
//
// Every function that builds a string charges it to the execution's budget
// (see execution), and those whose output can exceed their input many times
// over in one call (replace, indent, printf widths) are sized before they
// run. text/template's own string builders (printf, print, println, html,
// js, urlquery) are replaced by budgeted ones of the same behaviour.
func (x *execution) funcs() template.FuncMap {
	str := func(f func(string) string) func(string) (string, error) {
		return func(s string) (string, error) { return x.built(f(s)) }
	}
	return template.FuncMap{
		// b64enc encodes a value in standard base64.
		"b64enc": str(func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }),
		// b64dec decodes standard base64 (padded or not).
		"b64dec": func(s string) (string, error) {
			b, err := DecodeBase64([]byte(s), false)
			if err != nil {
				return "", funcError{err.Error()}
			}
			return x.built(string(b))
		},
		// fromJson parses a JSON value, to reach into it: (fromJson .db).host
		"fromJson": func(s string) (any, error) {
			// Charged before decoding, by the most a document of this
			// length can decode to (a value per byte).
			if err := x.charge(jsonCostPerByte * len(s)); err != nil {
				return nil, err
			}
			v, err := jmes.DecodeJSON([]byte(s), true)
			if err != nil {
				return nil, funcError{"fromJson: the value is not valid JSON (" + err.Error() + ")"}
			}
			return v, nil
		},
		// toJson writes a value as compact JSON.
		"toJson": func(v any) (string, error) {
			if err := x.charge(jmes.Cost(v, x.limit())); err != nil {
				return "", err
			}
			b, err := json.Marshal(v)
			if err != nil {
				return "", funcError{"toJson: the value cannot be written as JSON"}
			}
			return x.built(string(b))
		},
		"upper":      str(strings.ToUpper),
		"lower":      str(strings.ToLower),
		"trim":       strings.TrimSpace,
		"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"replace": func(old, new, s string) (string, error) {
			if err := x.charge(len(s) + strings.Count(s, old)*max(0, len(new)-len(old))); err != nil {
				return "", err
			}
			return strings.ReplaceAll(s, old, new), nil
		},
		// indent prefixes every line with n spaces; nindent adds a newline
		// first (for YAML blocks).
		"indent":  x.indent,
		"nindent": func(n int, s string) (string, error) { s, err := x.indent(n, s); return "\n" + s, err },
		// quote writes a value as a double-quoted string with escapes.
		"quote": str(strconv.Quote),
		// default returns def when the value is empty.
		"default": func(def, s string) string {
			if s == "" {
				return def
			}
			return s
		},
		// required fails when the value is empty, with its message (a
		// quoted string in the template: see checkRequired).
		"required": func(msg, s string) (string, error) {
			if s == "" {
				return "", funcError{"required: " + msg}
			}
			return s, nil
		},
		"printf": func(format string, args ...any) (string, error) {
			if err := x.checkFormat(format, args); err != nil {
				return "", err
			}
			return x.built(fmt.Sprintf(format, args...))
		},
		"print":    x.variadic(1, fmt.Sprint),
		"println":  x.variadic(1, fmt.Sprintln),
		"html":     x.variadic(5, template.HTMLEscaper), // &#34;
		"js":       x.variadic(6, template.JSEscaper),   // \u003C
		"urlquery": x.variadic(3, template.URLQueryEscaper),
		stepFunc:   func() (string, error) { return x.step(1) },
		callFunc:   func() (string, error) { return x.step(callSteps) },
	}
}

// Functions lists the functions templates may call besides
// text/template's own, for the docs.
func Functions() []string {
	var names []string
	for n := range (&execution{}).funcs() {
		if n != stepFunc && n != callFunc && !builtins[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// builtins are text/template's functions that coffer replaces with
// budgeted ones of the same behaviour.
var builtins = map[string]bool{"printf": true, "print": true, "println": true, "html": true, "js": true, "urlquery": true}

// variadic budgets a builtin that prints any number of arguments (one
// value may be passed thousands of times): before it runs, what it can
// write, at most expansion bytes per byte of each argument and a
// separator, must fit in the budget left.
func (x *execution) variadic(expansion int, f func(...any) string) func(...any) (string, error) {
	return func(args ...any) (string, error) {
		if x.err != nil {
			return "", x.err
		}
		n := 0
		for _, a := range args {
			if n += expansion*x.argSize(a) + 1; n > x.limit() {
				return "", x.over()
			}
		}
		return x.built(f(args...))
	}
}

func (x *execution) indent(n int, s string) (string, error) {
	if n < 0 {
		return "", funcError{"indent: the count must not be negative"}
	}
	if err := x.charge(len(s) + n*(strings.Count(s, "\n")+1)); err != nil {
		return "", err
	}
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad), nil
}

// checkFormat sizes a printf before it runs: the widths and precisions it
// writes or passes with * (any int argument may be one, with explicit
// argument indexes), and every argument each verb prints, as many times as
// verbs print it (explicit indexes let a short format print one large
// value thousands of times), times what the verb can make of a byte. The
// total may not exceed the budget left.
func (x *execution) checkFormat(format string, args []any) error {
	widest := 0 // the largest int argument
	for _, a := range args {
		if n, ok := a.(int); ok {
			widest = max(widest, n, -n)
		}
	}
	widest = min(widest, x.limit()+1) // so that sums cannot overflow
	// Arguments no verb uses are printed once, after %!(EXTRA.
	total := len(format)
	for _, a := range args {
		if total += x.argSize(a); total > x.limit() {
			return x.over()
		}
	}
	next := 0 // the argument the next verb or * takes, as fmt counts
	for i := 0; i < len(format) && total <= x.limit(); i++ {
		if format[i] != '%' {
			continue
		}
		space, sharp := false, false
	verb:
		for i++; i < len(format); i++ {
			c := format[i]
			switch {
			case c == '*':
				total += widest
				next++
			case c == '[':
				end := strings.IndexByte(format[i:], ']')
				if end < 0 {
					break verb // fmt prints %!(BADINDEX)
				}
				if n, err := strconv.Atoi(format[i+1 : i+end]); err == nil && n >= 1 {
					next = n - 1
				}
				i += end
			case c >= '0' && c <= '9':
				n := 0
				for ; i < len(format) && format[i] >= '0' && format[i] <= '9'; i++ {
					if n = n*10 + int(format[i]-'0'); n > x.limit() {
						return x.over()
					}
				}
				total += n
				i--
			case c == ' ':
				space = true
			case c == '#':
				sharp = true
			case strings.IndexByte("+-.", c) >= 0:
			case c == '%':
				break verb
			default:
				// The verb: what it prints of its argument, at most
				// verbExpansion times the argument's size, plus the
				// %!verb(type=...) of a wrong type.
				if next < len(args) {
					total += verbExpansion(c, space, sharp)*x.argSize(args[next]) + verbOverhead
				}
				next++
				break verb
			}
		}
	}
	if total > x.limit() {
		return x.over()
	}
	return nil
}

// verbOverhead is what fmt writes around one argument besides its value:
// a number's digits, a wrong type's %!d(map[string]interface {}=...).
const verbOverhead = 64

// argSize is an argument's size as printed by %v: a string's length, a
// parsed JSON value's cost (never less than its text), walked no further
// than the budget left.
func (x *execution) argSize(a any) int {
	if s, ok := a.(string); ok {
		return len(s)
	}
	return jmes.Cost(a, x.limit())
}

// verbExpansion is the most bytes a verb writes per byte of its argument:
// hex writes two ("% #x" five: "0xab "), %q four (\x00).
func verbExpansion(verb byte, space, sharp bool) int {
	switch verb {
	case 'x', 'X':
		switch {
		case space && sharp:
			return 5
		case space:
			return 3
		}
		return 2
	case 'q':
		return 4
	}
	return 1
}

// stepFunc and callFunc are the step guards that parseTemplate puts at the
// start of every range body and every template's body. A template call
// costs callSteps: text/template allocates far more for one than for a
// range iteration.
const (
	stepFunc  = "cofferStep"
	callFunc  = "cofferCall"
	callSteps = 16
)

// A budget bounds one execution of a set of templates (a Secret's, or a
// mount's files):
//   - output: what each template writes, at most what remains of the size
//     limit (a limited writer, so output stops when full);
//   - work: every string or value a function builds, in total, at most
//     WorkFactor times the limit;
//   - steps: range iterations (one each) and template calls (callSteps
//     each), at most maxSteps: each allocates a little in text/template;
//     and the context's deadline.
//
// Nothing else in a template grows: text/template only writes and passes
// values on, so these three bound its memory and time.
const (
	WorkFactor      = 8
	jsonCostPerByte = 16
	maxSteps        = 1 << 16
)

// Wording names, in messages, what the templates are rendered into and
// which keys they read; the messages are otherwise the same everywhere.
type Wording struct {
	// Limit is the size limit of the output: "the Secret's size limit".
	Limit string
	// MissingKey describes reading a key the data lacks: "reads a key the
	// Secret's values do not have (keys are the data and dataFrom keys)".
	MissingKey string
}

// Execution is the state of one set of template executions that share a
// budget. It is not safe for concurrent use.
type Execution = execution

type execution struct {
	ctx    context.Context
	words  Wording
	budget error
	left   int          // work
	shared *work.Budget // the request's, nil if none
	steps  int
	err    error
}

// NewExecution starts executions whose output may total outputLimit
// bytes (each Execute takes its own limit, at most that) and whose
// functions may build WorkFactor times that, until ctx ends. When ctx
// carries a work.Budget, what they build is spent from it too, and
// exhausting it fails with work.ErrExhausted.
func NewExecution(ctx context.Context, outputLimit int, w Wording) *Execution {
	return &execution{ctx: ctx, words: w, left: WorkFactor * outputLimit, shared: work.FromContext(ctx), steps: maxSteps,
		budget: fmt.Errorf("the template builds more than its budget (%d times %s)", WorkFactor, w.Limit)}
}

func (x *execution) fail(err error) error {
	if x.err == nil {
		x.err = err
	}
	return x.err
}

func (x *execution) charge(n int) error {
	if x.err != nil {
		return x.err
	}
	if x.left -= n; x.left < 0 {
		return x.fail(x.budget)
	}
	if x.shared != nil && !x.shared.Spend(n) {
		return x.fail(work.ErrExhausted)
	}
	return nil
}

// limit is the most the next charge may be: arguments are sized no
// further, and an estimate over it fails at once.
func (x *execution) limit() int {
	if x.shared != nil {
		return min(x.left, x.shared.Left())
	}
	return x.left
}

// over fails the execution for an estimate over limit.
func (x *execution) over() error {
	if x.shared != nil && x.shared.Left() < x.left {
		return x.fail(work.ErrExhausted)
	}
	return x.fail(x.budget)
}

func (x *execution) built(s string) (string, error) {
	if err := x.charge(len(s)); err != nil {
		return "", err
	}
	return s, nil
}

func (x *execution) step(n int) (string, error) {
	if x.err != nil {
		return "", x.err
	}
	if err := x.ctx.Err(); err != nil {
		return "", x.fail(fmt.Errorf("the template ran out of time: %w", err))
	}
	if x.steps -= n; x.steps < 0 {
		return "", x.fail(fmt.Errorf("the template runs more than %d range iterations and template calls", maxSteps))
	}
	return "", nil
}

// funcError is a template function's failure: a fixed message, or the
// template's own text (required's message).
type funcError struct{ msg string }

func (e funcError) Error() string { return e.msg }

// Template is a parsed template, ready to execute; safe for concurrent
// use.
type Template struct {
	t    *template.Template
	refs []string
}

// Parse parses a template. Its errors say the line and what is wrong
// ("line 1: unclosed action"); the caller names the key or file: the
// template's name, which text/template would quote, is the user's and may
// hold anything, control characters included.
func Parse(text string) (*Template, error) {
	t, err := template.New(parseName).Funcs((&execution{}).funcs()).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, parseError(err)
	}
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		if err := checkRequired(tt.Tree); err != nil {
			return nil, err
		}
	}
	refs := references(t.Tree)
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			addSteps(tt.Tree.Root)
		}
	}
	return &Template{t: t, refs: refs}, nil
}

// parseName is every template's name in text/template, so that its parse
// errors start with a known prefix.
const parseName = "_coffer_template_"

// parseError turns text/template's parse error ("template: t:3: unclosed
// action") into "line 3: unclosed action", with any control character the
// description quotes from the template escaped: it goes into one-line
// messages, events and logs.
func parseError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: "+parseName+":")
	if line, rest, ok := strings.Cut(msg, ": "); ok && line != "" && strings.Trim(line, "0123456789:") == "" {
		line, _, _ = strings.Cut(line, ":")
		msg = "line " + line + ": " + rest
	}
	return errors.New(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, msg))
}

// References are the keys the template names at its top level, sorted:
// {{ .key }}, {{ $.key }}, {{ index . "key" }} and {{ index $ "key" }}
// where the dot is the template's data (outside with and range bodies and
// defined templates). A key read any other way ({{ index . $k }}) is
// known only when the template runs.
func (t *Template) References() []string { return t.refs }

// checkRequired refuses a required whose message is not a quoted string
// in the template: the message goes into Events and the status, so it must
// never be a value ({{ "" | required .password }}).
func checkRequired(tree *parse.Tree) error {
	var err error
	walk(tree.Root, func(n parse.Node) {
		cmd, ok := n.(*parse.CommandNode)
		if !ok || len(cmd.Args) == 0 || err != nil {
			return
		}
		if id, ok := cmd.Args[0].(*parse.IdentifierNode); ok && id.Ident == "required" {
			if len(cmd.Args) < 2 {
				return // text/template reports the missing argument
			}
			if _, ok := cmd.Args[1].(*parse.StringNode); !ok {
				location, _ := tree.ErrorContext(cmd)
				err = fmt.Errorf("template: %s: required's message must be a quoted string, such as {{ .password | required \"password is empty\" }}", location)
			}
		}
	})
	return err
}

// addSteps puts a step guard at the start of every range body and of the
// template's own body.
func addSteps(root *parse.ListNode) {
	prepend := func(l *parse.ListNode, guard string) {
		if l == nil {
			return
		}
		step := &parse.ActionNode{NodeType: parse.NodeAction, Pos: l.Pos, Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: l.Pos,
			Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: l.Pos, Args: []parse.Node{parse.NewIdentifier(guard).SetPos(l.Pos)}}}}}
		l.Nodes = append([]parse.Node{step}, l.Nodes...)
	}
	walk(root, func(n parse.Node) {
		if r, ok := n.(*parse.RangeNode); ok {
			prepend(r.List, stepFunc)
		}
	})
	prepend(root, callFunc)
}

// walk calls fn for n and every node below it.
func walk(n parse.Node, fn func(parse.Node)) {
	walkScoped(n, true, func(n parse.Node, _ bool) { fn(n) })
}

// walkScoped calls fn for n and every node below it, with whether the dot
// is the data it started with (not in with and range bodies, whose dot is
// their pipeline's value).
func walkScoped(n parse.Node, data bool, fn func(n parse.Node, data bool)) {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return
	}
	fn(n, data)
	branch := func(b *parse.BranchNode, body bool) {
		walkScoped(b.Pipe, data, fn)
		walkScoped(b.List, body, fn)
		walkScoped(b.ElseList, data, fn)
	}
	switch x := n.(type) {
	case *parse.ListNode:
		for _, c := range x.Nodes {
			walkScoped(c, data, fn)
		}
	case *parse.ActionNode:
		walkScoped(x.Pipe, data, fn)
	case *parse.PipeNode:
		for _, c := range x.Cmds {
			walkScoped(c, data, fn)
		}
	case *parse.CommandNode:
		for _, c := range x.Args {
			walkScoped(c, data, fn)
		}
	case *parse.ChainNode:
		walkScoped(x.Node, data, fn)
	case *parse.IfNode:
		branch(&x.BranchNode, data)
	case *parse.RangeNode:
		branch(&x.BranchNode, false)
	case *parse.WithNode:
		branch(&x.BranchNode, false)
	case *parse.TemplateNode:
		walkScoped(x.Pipe, data, fn)
	}
}

// Execute runs a template over values, writing at most limit bytes. Its
// error names the template position and what failed, never a value: coffer's functions say nothing of their input, and text/template's
// own messages (which can print values) are replaced by fixed ones.
func (x *execution) Execute(tm *Template, values map[string]string, limit int) ([]byte, error) {
	t, err := tm.t.Clone()
	if err != nil {
		return nil, errors.New("the template cannot be prepared")
	}
	t.Funcs(x.funcs())
	out := &limitedWriter{limit: limit}
	if err := t.Execute(out, values); err != nil {
		return nil, x.describe(err, out)
	}
	return out.buf.Bytes(), nil
}

var errOutputFull = errors.New("output over the limit")

// limitedWriter keeps at most limit bytes and fails the write that would
// go over.
type limitedWriter struct {
	buf   bytes.Buffer
	limit int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.limit {
		return 0, errOutputFull
	}
	return w.buf.Write(p)
}

// execPosition finds, in an execution error, the position and the action
// (template text, up to its first ">: "); what follows may print a value.
var execPosition = regexp.MustCompile(`^template: [^:]*:(\d+):(\d+): (?:executing "[^"]*" at <(.*?)>: )?`)

// execMessages are fixed descriptions of text/template's execution errors,
// found by the start of the library's message (whose rest may print a
// value, so it is never shown).
var execMessages = []struct{ marker, msg string }{
	{"map has no entry for key", ""}, // Wording.MissingKey
	{"can't evaluate field", "reads a field of a value that has none"},
	{"range can't iterate over", "ranges over a value that is not a list or map (use fromJson to parse JSON)"},
	{"index out of range", "an index or slice bound is out of range"},
	{"can't index item", "indexes a value that is not a list, map or string"},
	{"wrong type for value", "passes a value of the wrong type to a function"},
	{"incompatible types for comparison", "compares values of different types"},
	{"wrong number of args", "calls a function with the wrong number of arguments"},
	{"no such template", "calls a template that is not defined"},
	{"exceeded maximum template depth", "calls templates too deeply"},
	{"nil pointer evaluating", "reads a field of a missing value"},
	{"invalid type for comparison", "compares values that cannot be compared"},
}

// describe turns an execution error into coffer's message.
func (x *execution) describe(err error, out *limitedWriter) error {
	where := "the template"
	text := err.Error()
	if m := execPosition.FindStringSubmatch(text); m != nil {
		where = "line " + m[1] + ", column " + m[2]
		if m[3] != "" {
			where += " ({{ " + m[3] + " }})"
		}
	}
	var fe funcError
	switch {
	case errors.Is(err, errOutputFull):
		return fmt.Errorf("the output exceeds the %d bytes left of %s", out.limit, x.words.Limit)
	case x.err != nil:
		return fmt.Errorf("%s: %v", where, x.err)
	case errors.As(err, &fe):
		return fmt.Errorf("%s: %s", where, fe.msg)
	}
	for _, m := range execMessages {
		if strings.Contains(text, m.marker) {
			if m.msg == "" {
				return fmt.Errorf("%s: %s", where, x.words.MissingKey)
			}
			return fmt.Errorf("%s: %s", where, m.msg)
		}
	}
	return fmt.Errorf("%s: the template failed (a missing key, a wrong type or a bad argument)", where)
}

// DecodeBase64 decodes standard (or, urlSafe, URL-safe) base64, padded or
// not; surrounding whitespace (a trailing newline) is ignored. Its errors
// give only the offset, never the input.
func DecodeBase64(b []byte, urlSafe bool) ([]byte, error) {
	encs, name := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding}, "base64"
	if urlSafe {
		encs, name = []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding}, "base64url"
	}
	s := bytes.TrimSpace(b)
	var first error
	for _, enc := range encs {
		out := make([]byte, enc.DecodedLen(len(s)))
		n, err := enc.Decode(out, s)
		if err == nil {
			return out[:n], nil
		}
		if first == nil {
			first = err
		}
	}
	var corrupt base64.CorruptInputError
	if errors.As(first, &corrupt) {
		return nil, fmt.Errorf("not valid %s (illegal data at byte %d)", name, int64(corrupt))
	}
	return nil, fmt.Errorf("not valid %s", name)
}

// references collects the keys a template's main tree names with the data
// as the dot (see Template.References).
func references(tree *parse.Tree) []string {
	seen := map[string]bool{}
	walkScoped(tree.Root, true, func(n parse.Node, data bool) {
		switch x := n.(type) {
		case *parse.CommandNode:
			if len(x.Args) >= 3 {
				if id, ok := x.Args[0].(*parse.IdentifierNode); ok && id.Ident == "index" && isData(x.Args[1], data) {
					if key, ok := x.Args[2].(*parse.StringNode); ok {
						seen[key.Text] = true
					}
				}
			}
		case *parse.FieldNode:
			if data {
				seen[x.Ident[0]] = true
			}
		case *parse.VariableNode:
			if x.Ident[0] == "$" && len(x.Ident) > 1 {
				seen[x.Ident[1]] = true
			}
		}
	})
	refs := make([]string, 0, len(seen))
	for k := range seen {
		refs = append(refs, k)
	}
	sort.Strings(refs)
	return refs
}

// isData reports whether n is the template's data: $, or the dot where it
// is the data.
func isData(n parse.Node, root bool) bool {
	switch x := n.(type) {
	case *parse.DotNode:
		return root
	case *parse.VariableNode:
		return len(x.Ident) == 1 && x.Ident[0] == "$"
	}
	return false
}
