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
// Every function charges the execution's budget (see execution), before
// it runs, what it allocates: its output at the worst case of its input
// (escaping, a width applied to every element of a list or map, the data
// map or any composite argument at its printed size), and the buffers and
// copies it makes on the way. TestChargeCoversAllocation measures each
// function and fmt verb: none allocates more than twice its charge.
// text/template's own string builders (printf, print, println, html, js,
// urlquery) are replaced by budgeted ones of the same behaviour.
func (x *execution) funcs() template.FuncMap {
	// str charges, before f runs, what it allocates: factor bytes per
	// byte of its input (TestChargeCoversAllocation measures each).
	str := func(factor int, f func(string) string) func(string) (string, error) {
		return func(s string) (string, error) {
			if err := x.charge(factor * len(s)); err != nil {
				return "", err
			}
			return f(s), nil
		}
	}
	return template.FuncMap{
		// b64enc encodes a value in standard base64.
		// A copy of the input, the encoding (4/3 of it) and its copy.
		"b64enc": str(4, func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }),
		// b64dec decodes standard base64 (padded or not).
		"b64dec": func(s string) (string, error) {
			// A copy of the input, the decoding (three quarters of it;
			// a second is tried only when the first fails), the result.
			if err := x.charge(3 * len(s)); err != nil {
				return "", err
			}
			b, err := DecodeBase64([]byte(s), false)
			if err != nil {
				return "", funcError{err.Error()}
			}
			return string(b), nil
		},
		// fromJson parses a JSON value, to reach into it: (fromJson .db).host
		"fromJson": func(s string) (any, error) {
			// Charged before decoding, what decoding it allocates
			// (jmes.DecodeCost counts its values without decoding).
			if err := x.charge(jmes.DecodeCost(s)); err != nil {
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
			// encoding/json escapes a byte to at most six (\u003c), in a
			// buffer that grows by doubling, copied out twice (the
			// []byte and the string), and sorts each map's keys.
			size, values, entries := sized(v, x.limit(), jmes.EscapedSize)
			if err := x.charge(fmtFactor*(size+8*values) + mapEntryCost*entries); err != nil {
				return "", err
			}
			b, err := json.Marshal(v)
			if err != nil {
				return "", funcError{"toJson: the value cannot be written as JSON"}
			}
			return string(b), nil
		},
		"upper":      str(3, strings.ToUpper),
		"lower":      str(3, strings.ToLower),
		"trim":       strings.TrimSpace,
		"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"replace": func(old, new, s string) (string, error) {
			// The result, and the indexes of the matches.
			if err := x.charge(2 * (len(s) + strings.Count(s, old)*max(0, len(new)-len(old)))); err != nil {
				return "", err
			}
			return strings.ReplaceAll(s, old, new), nil
		},
		// indent prefixes every line with n spaces; nindent adds a newline
		// first (for YAML blocks).
		"indent": x.indent,
		"nindent": func(n int, s string) (string, error) {
			s, err := x.indent(n, s)
			if err != nil {
				return "", err
			}
			if err := x.charge(len(s)); err != nil { // the copy after the newline
				return "", err
			}
			return "\n" + s, nil
		},
		// quote writes a value as a double-quoted string with escapes.
		// strconv.Quote writes up to four bytes a byte (\x01), in a
		// buffer that grows by doubling, then copied out.
		"quote": func(s string) (string, error) {
			if err := x.charge(fmtFactor * jmes.EscapedSize(s)); err != nil {
				return "", err
			}
			return strconv.Quote(s), nil
		},
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
			if x.err != nil {
				return "", x.err
			}
			cost, err := x.formatCost(format, args)
			if err != nil {
				return "", err
			}
			if err := x.charge(cost); err != nil {
				return "", err
			}
			return fmt.Sprintf(format, args...), nil
		},
		"print":   x.variadic(1, nil, fmt.Sprint),
		"println": x.variadic(1, nil, fmt.Sprintln),
		"html": x.variadic(5, func(c byte) bool { // &#34;
			return c == '<' || c == '>' || c == '&' || c == '\'' || c == '"' || c == 0
		}, template.HTMLEscaper),
		"js": x.variadic(6, func(c byte) bool { // \u003C
			return c < 0x20 || c >= 0x7f || strings.IndexByte(`\'"<>&=`, c) >= 0
		}, template.JSEscaper),
		"urlquery": x.variadic(3, func(c byte) bool { // %2F
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~", c) >= 0)
		}, template.URLQueryEscaper),
		stepFunc: func(nodes int) (string, error) { return x.step(1, nodes) },
		callFunc: func(nodes int) (string, error) { return x.step(callSteps, nodes) },
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
// value, or the whole data map, may be passed thousands of times): before
// it runs, what it allocates is charged. fmt.Sprint writes each argument
// as %v does (printed), in a buffer that grows by doubling and is then
// copied out (fmtFactor); an escaper then writes at most expansion bytes
// per byte of that, in a buffer of its own (fmtFactor again).
//
// An escaper given one string escapes it without fmt, and only the bytes
// special says it escapes grow (by expansion): a long value with none of
// them is charged what it is, not five times it.
func (x *execution) variadic(expansion int, special func(byte) bool, f func(...any) string) func(...any) (string, error) {
	return func(args ...any) (string, error) {
		if x.err != nil {
			return "", x.err
		}
		if s, ok := oneString(args); ok && special != nil {
			out := len(s)
			for i := 0; i < len(s); i++ {
				if special(s[i]) {
					out += expansion - 1
				}
			}
			if err := x.charge(fmtFactor * out); err != nil {
				return "", err
			}
			return f(args...), nil
		}
		n := 0
		for _, a := range args {
			size, _, entries := printed(a, x.limit())
			if n += size + 1 + entries*mapEntryCost; n > x.limit() {
				return "", x.over()
			}
		}
		cost := fmtFactor * n
		if expansion > 1 {
			cost += fmtFactor * expansion * n
		}
		if err := x.charge(cost); err != nil {
			return "", err
		}
		return f(args...), nil
	}
}

// oneString reports whether args are one string.
func oneString(args []any) (string, bool) {
	if len(args) != 1 {
		return "", false
	}
	s, ok := args[0].(string)
	return s, ok
}

func (x *execution) indent(n int, s string) (string, error) {
	if n < 0 {
		return "", funcError{"indent: the count must not be negative"}
	}
	// The pad, the replacement, the result, and the result's copy with
	// the first pad.
	if err := x.charge(3 * (len(s) + n*(strings.Count(s, "\n")+1))); err != nil {
		return "", err
	}
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad), nil
}

// formatCost sizes a printf before it runs: the widths and precisions it
// writes or passes with * (any int argument may be one, with explicit
// argument indexes), each applied to every value the verb prints (fmt pads
// every element of a list or map, keys and values), and every argument
// each verb prints, as many times as verbs print it (explicit indexes let a
// short format print one large value thousands of times), times what the
// verb can make of a byte. It returns what the printf allocates: that
// output, fmtFactor times (fmt's buffer doubles, then is copied), and the
// keys fmt sorts of each map it prints. An estimate over the budget left
// fails at once.
func (x *execution) formatCost(format string, args []any) (int, error) {
	if err := checkWidths(format); err != nil {
		return 0, err // see limits.go
	}
	limit := x.limit()
	widest := 0 // the largest int argument
	for _, a := range args {
		if n, ok := a.(int); ok {
			widest = max(widest, n, -n)
		}
	}
	widest = min(widest, limit+1) // so that sums cannot overflow
	type sized struct {
		size, values, entries int
		used                  bool
	}
	sizes := make([]sized, len(args))
	total, entries := len(format), 0
	for i, a := range args {
		s := &sizes[i]
		s.size, s.values, s.entries = printed(a, limit)
		if s.size > limit {
			return 0, x.over()
		}
	}
	next := 0 // the argument the next verb or * takes, as fmt counts
	for i := 0; i < len(format) && total <= limit; i++ {
		if format[i] != '%' {
			continue
		}
		space, sharp, pad := false, false, 0
	verb:
		for i++; i < len(format); i++ {
			c := format[i]
			switch {
			case c == '*':
				if err := checkStarWidth(args, next); err != nil {
					return 0, err // see limits.go
				}
				pad += widest
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
					if n = n*10 + int(format[i]-'0'); n > limit {
						return 0, x.over()
					}
				}
				pad += n
				i--
			case c == ' ':
				space = true
			case c == '#':
				sharp = true
			case strings.IndexByte("+-.", c) >= 0:
			case c == '%':
				total += pad
				break verb
			default:
				// The verb: what it prints of its argument, at most
				// verbExpansion times the argument's size, the widths
				// and precisions for each value it prints, and
				// around each value its separators, quotes, a %#v's
				// type names, a wrong type's %!d(map[string]string=).
				values, size, sorts := 1, 0, 0
				if next < len(args) {
					s := &sizes[next]
					values, size, sorts = s.values, s.size, s.entries
					s.used = true
				}
				pad = min(pad, limit+1)
				if pad > 0 && values > (limit+1)/pad {
					return 0, x.over()
				}
				total += verbExpansion(c, space, sharp)*size + (pad+verbOverhead)*values
				entries += sorts
				next++
				break verb
			}
		}
	}
	// Arguments no verb uses are printed once, after %!(EXTRA.
	for _, s := range sizes {
		if !s.used {
			total += s.size + verbOverhead
			entries += s.entries
		}
	}
	if total > limit {
		return 0, x.over()
	}
	return fmtFactor*total + mapEntryCost*entries, nil
}

// verbOverhead is the most fmt writes around one value besides the value:
// a number's digits, separators and quotes, %#v's type names
// (map[string]interface {}{...}), a wrong type's %!d(string=...).
const verbOverhead = 64

// fmtFactor is what fmt (or an escaper's bytes.Buffer) allocates per byte
// it writes: its buffer grows by doubling, so the buffers it allocated sum
// to up to four times the output (just past a power of two), and Sprint
// copies it into the string it returns.
const fmtFactor = 5

// mapEntryCost is what fmt allocates per entry of a map it prints: it
// sorts the keys, in slices of reflect.Values (24 bytes each) of keys and
// values.
const mapEntryCost = 64

// printed is what fmt writes for v with %v (never less; the printf verbs
// that write more say so in verbExpansion), walked no further than limit;
// values is how many values it pads with a width (v itself, and every
// element, key and value within), entries how many map entries it sorts.
// It reads any Go value: the data map (map[string]string), what fromJson
// returns, what builtins such as slice return.
func printed(v any, limit int) (size, values, entries int) {
	return sized(v, limit, func(s string) int { return len(s) })
}

// sized walks v as printed does, sizing its strings (and map keys) with
// str.
func sized(v any, limit int, str func(string) int) (size, values, entries int) {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		if size > limit {
			return
		}
		values++
		switch v.Kind() {
		case reflect.Invalid:
			size += 5 // <nil>
		case reflect.String:
			size += str(v.String())
		case reflect.Bool:
			size += 5
		case reflect.Interface, reflect.Pointer:
			if v.IsNil() {
				size += 5
				return
			}
			values--
			walk(v.Elem())
		case reflect.Slice, reflect.Array:
			size += 2
			for i := 0; i < v.Len() && size <= limit; i++ {
				size++
				walk(v.Index(i))
			}
		case reflect.Map:
			size += 5 // map[]
			it := v.MapRange()
			for it.Next() && size <= limit {
				size += 2 // : and the separator
				entries++
				walk(it.Key())
				walk(it.Value())
			}
		case reflect.Struct:
			size += 2
			for i := 0; i < v.NumField() && size <= limit; i++ {
				size += 1 + len(v.Type().Field(i).Name)
				walk(v.Field(i))
			}
		default:
			size += 32 // a number's digits, a pointer, a function's address
		}
	}
	walk(reflect.ValueOf(v))
	return min(size, limit+1), values, entries
}

// verbExpansion is the most bytes a verb writes per byte of its argument:
// hex writes two ("% #x" five: "0xab "), %q and %#v four (\x00).
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
	case 'v':
		if sharp {
			return 4
		}
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

// What executing allocates besides what functions build, charged as work:
// executeCost each Execute (the template's clone, its functions, the
// output buffer's start); stepCost each range iteration and, callSteps
// times, each template call (text/template's state and the values it
// passes); nodeCost for every node of the body each step runs (the
// arguments text/template evaluates and the calls it makes, whatever they
// are); outputFactor per byte written (the output buffer grows by
// doubling, and text/template prints a value through fmt, whose buffer
// pool the race detector empties at random).
const (
	executeCost  = 16 << 10
	stepCost     = 256
	nodeCost     = 64
	outputFactor = 3
)

// A budget bounds one execution of a set of templates (a Secret's, or a
// mount's files):
//   - output: what each template writes, at most what remains of the size
//     limit (a limited writer, so output stops when full);
//   - work: what functions, range iterations, template calls and the
//     output allocate (charged before they run, at the worst case), in
//     total at most WorkFactor times the limit plus workFloor, and at most
//     what remains of the request's shared work.Budget when ctx has one;
//   - steps: range iterations (one each) and template calls (callSteps
//     each), at most maxSteps: each allocates a little in text/template;
//     and the context's deadline.
//
// Nothing else in a template grows: text/template only writes and passes
// values on, so these three bound its memory and time.
const (
	WorkFactor = 8
	workFloor  = 64 << 10 // a small limit still runs a template (executeCost)
	maxSteps   = 1 << 16
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
	return &execution{ctx: ctx, words: w, left: WorkFactor*outputLimit + workFloor, shared: work.FromContext(ctx), steps: maxSteps,
		budget: fmt.Errorf("the template builds more than its budget (%d times %s, plus %d KiB)", WorkFactor, w.Limit, workFloor>>10)}
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
	if n < 0 { // an estimate that overflowed
		return x.over()
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

func (x *execution) step(n, nodes int) (string, error) {
	if x.err != nil {
		return "", x.err
	}
	if err := x.ctx.Err(); err != nil {
		return "", x.fail(fmt.Errorf("the template ran out of time: %w", err))
	}
	if x.steps -= n; x.steps < 0 {
		return "", x.fail(fmt.Errorf("the template runs more than %d range iterations and template calls", maxSteps))
	}
	if err := x.charge(n*stepCost + min(max(nodes, 0), 1<<20)*nodeCost); err != nil {
		return "", err
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
	if err := checkSource(text); err != nil {
		return nil, err // before the parser: see limits.go
	}
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
		if err := checkFormats(tt.Tree); err != nil {
			return nil, err
		}
		if err := checkGuards(tt.Tree); err != nil {
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

// checkGuards refuses a template that calls the step guards itself: their
// counts are charged, and a negative one would give work back.
func checkGuards(tree *parse.Tree) error {
	var err error
	walk(tree.Root, func(n parse.Node) {
		if id, ok := n.(*parse.IdentifierNode); ok && (id.Ident == stepFunc || id.Ident == callFunc) && err == nil {
			location, _ := tree.ErrorContext(n)
			err = fmt.Errorf("template: %s: function %q not defined", location, id.Ident)
		}
	})
	return err
}

// addSteps puts a step guard at the start of every range body and of the
// template's own body, with the number of nodes of that body: what one run
// of it allocates grows with them.
func addSteps(root *parse.ListNode) {
	prepend := func(l *parse.ListNode, guard string) {
		if l == nil {
			return
		}
		nodes := 0
		walk(l, func(parse.Node) { nodes++ })
		count := &parse.NumberNode{NodeType: parse.NodeNumber, Pos: l.Pos, IsInt: true, Int64: int64(nodes), Text: strconv.Itoa(nodes)}
		step := &parse.ActionNode{NodeType: parse.NodeAction, Pos: l.Pos, Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: l.Pos,
			Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: l.Pos, Args: []parse.Node{parse.NewIdentifier(guard).SetPos(l.Pos), count}}}}}
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
	if err := x.charge(executeCost); err != nil {
		return nil, x.describe(err, &limitedWriter{limit: limit})
	}
	out := &limitedWriter{limit: limit, x: x}
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
	x     *execution // charged for what the buffer allocates
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.limit {
		return 0, errOutputFull
	}
	if err := w.x.charge(outputFactor * len(p)); err != nil {
		return 0, err
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
