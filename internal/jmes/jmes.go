// Package jmes evaluates JMESPath expressions within a budget, with
// messages that never contain the value evaluated.
//
// The JMESPath library's interpreter has no limits: a 138-byte expression
// (`[@,@]|` repeated) doubles its result at every step, and functions such
// as pad_left or replace allocate what their arguments ask for. Its errors
// print the values they reject ("invalid type for: <the password>"). This
// package keeps the library's parser, interpreter and functions, and adds
// what they lack:
//
//   - Every node that constructs a value (lists, hashes, projections,
//     flattening, comparisons, arithmetic, function calls) is wrapped, at
//     compile time, in a call to a guard. The guard charges the logical size
//     of the new value (walked with a cap, so a value that shares its parts
//     costs what it would cost written out) against the evaluation's work
//     budget, and checks the deadline. Nodes that only select from existing
//     values (fields, indexes, @, $, pipes) cost nothing and do constant
//     work, so every loop of the interpreter passes a guard or is bounded by
//     a value already charged. Once the budget is spent, every further guard
//     and function call fails at once: the evaluation ends quickly.
//   - Work that builds little but reads much is charged what it reads:
//     a function call the size of its arguments, an equality the size of
//     its operands, a string slice the runes it converts. Selecting is
//     free, so without this a filter reading the whole document once per
//     element ($.a == $.b, contains($.b, x)) would run quadratic in the
//     document until the deadline.
//   - Functions run through coffer's own caller: arguments are type-checked
//     with coffer's messages, and functions whose output can exceed their
//     input many times over in one call (pad_left, pad_right, replace, join,
//     split) have their output size computed before they run.
//   - Any other error of the library becomes a fixed message.
package jmes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/jmespath-community/go-jmespath/pkg/functions"
	"github.com/jmespath-community/go-jmespath/pkg/interpreter"
	"github.com/jmespath-community/go-jmespath/pkg/parsing"
	"github.com/jmespath-community/go-jmespath/pkg/util"

	"github.com/coffer-csi/coffer/internal/work"
)

// ErrBudget is returned when an evaluation would build more than its
// work budget.
var ErrBudget = errors.New("the expression builds more data than the budget allows")

// Expr is a compiled expression. It is safe for concurrent use.
type Expr struct {
	ast parsing.ASTNode
}

// guardName is the guard's function name; sliceGuardName's guard charges
// what a slice is about to slice, operandGuardName's what an equality is
// about to compare. The lexer only produces identifiers, so no expression
// can call them.
const (
	guardName        = "coffer budget"
	sliceGuardName   = "coffer budget slice"
	operandGuardName = "coffer budget operand"
)

// runeBytes is what slicing a string allocates per byte of the string,
// besides the result: the interpreter converts the string to runes (four
// bytes a character), slices those into a new []rune and converts the
// result back (measured: 17 bytes a byte in all, 2 of them the result).
const runeBytes = 16

// Compile parses an expression and checks every function it calls (name
// and number of arguments). Only the standard JMESPath grammar is
// accepted (a *DialectError otherwise); functions are the library's, the
// standard ones and the community's additions. Its errors quote only the
// expression.
func Compile(expr string) (*Expr, error) { return compile(expr, true) }

// compile is Compile; without standardOnly it accepts the community
// grammar too (for tests of the guards of community-only nodes).
func compile(expr string, standardOnly bool) (e *Expr, err error) {
	defer func() {
		// The library's lexer panics on some invalid input.
		if r := recover(); r != nil {
			e, err = nil, errors.New("the expression cannot be parsed")
		}
	}()
	if err := checkLimits(expr); err != nil {
		return nil, err // before any parser: see limits.go
	}
	if !utf8.ValidString(expr) {
		return nil, errors.New("the expression is not valid UTF-8")
	}
	ast, err := parsing.NewParser().Parse(expr)
	if err != nil {
		if de := suggestQuoted(expr); de != nil && standardOnly {
			return nil, de // db.api-key-2: invalid in both grammars, and quoting fixes it
		}
		return nil, err // a SyntaxError: the expression and an offset
	}
	// What the community grammar accepts and the standard one rejects
	// would mean something here that it never meant for the AWS provider.
	if standardOnly {
		if err := checkStandard(expr); err != nil {
			return nil, err
		}
	}
	if err := checkFunctions(ast); err != nil {
		return nil, err
	}
	return &Expr{ast: guard(ast)}, nil
}

// isConstruct reports whether a node builds a new value.
func isConstruct(n parsing.ASTNode) bool {
	switch n.NodeType {
	case parsing.ASTFunctionExpression, parsing.ASTMultiSelectList, parsing.ASTMultiSelectHash,
		parsing.ASTProjection, parsing.ASTFilterProjection, parsing.ASTFlatten, parsing.ASTValueProjection,
		parsing.ASTComparator, parsing.ASTNotExpression, parsing.ASTArithmeticExpression, parsing.ASTArithmeticUnaryExpression:
		return true
	}
	return false
}

// guard wraps every constructing node in a call to the guard. Nodes whose
// children the interpreter inspects by type (a projection's index
// expression, hash keys, let bindings, slices, expression references) are
// never constructs, so their shape is kept.
func guard(n parsing.ASTNode) parsing.ASTNode {
	if len(n.Children) > 0 {
		children := make([]parsing.ASTNode, len(n.Children))
		for i, c := range n.Children {
			children[i] = guard(c)
		}
		n.Children = children
	}
	if !isConstruct(n) {
		return n
	}
	if n.NodeType == parsing.ASTComparator && (n.Value == parsing.TOKEQ || n.Value == parsing.TOKNE) {
		// Equality compares its operands deeply, and a filter compares
		// once per element: operands selected from the document cost
		// nothing to select, so they are charged what comparing them
		// costs, or a 20-byte filter ($.a == $.b over a) runs for as
		// long as the deadline allows.
		for i, c := range n.Children {
			n.Children[i] = parsing.ASTNode{NodeType: parsing.ASTFunctionExpression, Value: operandGuardName, Children: []parsing.ASTNode{c}}
		}
	}
	if isSlice(n) {
		// Charge what is sliced before the slice runs: the interpreter
		// slices a string's runes, however short the result.
		ix := n.Children[0]
		ix.Children = append([]parsing.ASTNode{{NodeType: parsing.ASTFunctionExpression, Value: sliceGuardName, Children: ix.Children[:1]}}, ix.Children[1:]...)
		n.Children = append([]parsing.ASTNode{ix}, n.Children[1:]...)
	}
	return parsing.ASTNode{NodeType: parsing.ASTFunctionExpression, Value: guardName, Children: []parsing.ASTNode{n}}
}

// isSlice reports whether a node is a slice (a projection of an index
// expression whose index is a slice), which on a string the interpreter
// computes on the string's runes.
func isSlice(n parsing.ASTNode) bool {
	if n.NodeType != parsing.ASTProjection || len(n.Children) == 0 {
		return false
	}
	ix := n.Children[0]
	return ix.NodeType == parsing.ASTIndexExpression && len(ix.Children) > 1 && ix.Children[1].NodeType == parsing.ASTSlice
}

func checkFunctions(n parsing.ASTNode) error {
	if n.NodeType == parsing.ASTFunctionExpression {
		name, _ := n.Value.(string)
		f, ok := table[name]
		if !ok {
			return fmt.Errorf("unknown function %s()", name)
		}
		if lo, hi := arity(f.Arguments); len(n.Children) < lo || (hi >= 0 && len(n.Children) > hi) {
			return fmt.Errorf("function %s() takes %s, not %d", name, describeArity(lo, hi), len(n.Children))
		}
	}
	for _, c := range n.Children {
		if err := checkFunctions(c); err != nil {
			return err
		}
	}
	return nil
}

// table holds the library's functions by name; read only.
var table = func() map[string]functions.FunctionEntry {
	t := map[string]functions.FunctionEntry{}
	for _, f := range functions.GetDefaultFunctions() {
		t[f.Name] = f
	}
	return t
}()

// Search evaluates the expression on doc (a decoded JSON value). Building
// more than work bytes (counted as Cost counts) fails with ErrBudget; the
// context's end fails it with the context's error. When ctx carries a
// work.Budget, what the evaluation builds is also spent from it, and
// exhausting it fails with work.ErrExhausted.
func (e *Expr) Search(ctx context.Context, doc any, budget int) (result any, err error) {
	return e.search(&evaluation{ctx: ctx, left: budget, shared: work.FromContext(ctx)}, doc)
}

// evalCost is what one evaluation allocates whatever it computes: the
// interpreter, its state, the result's interface.
const evalCost = 256

// search runs one evaluation.
func (e *Expr) search(ev *evaluation, doc any) (result any, err error) {
	if err := ev.charge(evalCost); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			result, err = nil, errors.New("the expression failed on this value")
		}
	}()
	res, err := interpreter.NewInterpreter(doc, ev, nil).Execute(e.ast, doc)
	switch {
	case ev.err != nil:
		// Some nodes swallow their children's errors; the first failure
		// is the answer whatever the interpreter made of it.
		return nil, ev.err
	case err != nil:
		return nil, errors.New("the expression failed on this value")
	}
	return res, nil
}

// evaluation is the state of one Search: it is the interpreter's function
// caller.
type evaluation struct {
	ctx    context.Context
	left   int
	shared *work.Budget // nil: none
	err    error
}

func (ev *evaluation) fail(err error) error {
	if ev.err == nil {
		ev.err = err
	}
	return ev.err
}

// charge spends n bytes of the budget, and of the shared one.
func (ev *evaluation) charge(n int) error {
	if n < 0 { // an estimate that overflowed
		return ev.fail(ErrBudget)
	}
	if ev.left -= n; ev.left < 0 {
		return ev.fail(ErrBudget)
	}
	if ev.shared != nil && !ev.shared.Spend(n) {
		return ev.fail(work.ErrExhausted)
	}
	return nil
}

// limit is the most the next charge may be: values are sized no further.
func (ev *evaluation) limit() int {
	if ev.shared != nil {
		return min(ev.left, ev.shared.Left())
	}
	return ev.left
}

// CallFunction implements interpreter.FunctionCaller.
func (ev *evaluation) CallFunction(name string, args []any) (any, error) {
	if ev.err != nil {
		return nil, ev.err
	}
	if err := ev.ctx.Err(); err != nil {
		return nil, ev.fail(fmt.Errorf("evaluation stopped: %w", err))
	}
	switch name {
	case guardName, operandGuardName:
		if err := ev.charge(Cost(args[0], ev.limit())); err != nil {
			return nil, err
		}
		return args[0], nil
	case sliceGuardName:
		switch x := args[0].(type) {
		case string:
			if err := ev.charge(runeBytes * len(x)); err != nil {
				return nil, err
			}
		case []any:
			// The library copies the list before slicing it.
			if err := ev.charge(elementCost * len(x)); err != nil {
				return nil, err
			}
		}
		return args[0], nil
	}
	f, ok := table[name]
	if !ok {
		return nil, ev.fail(fmt.Errorf("unknown function %s()", name))
	}
	if err := checkArgs(name, f.Arguments, args); err != nil {
		return nil, ev.fail(err)
	}
	// A function walks its arguments (contains compares each element,
	// sort compares them n log n times), and arguments selected from the
	// document cost nothing to select: each call is charged their size, so
	// a function called once per element of a filter cannot scan the whole
	// document each time for free.
	for _, a := range args {
		if err := ev.charge(Cost(a, ev.limit())); err != nil {
			return nil, err
		}
	}
	if n, ok := outputSize(name, args, ev.limit()); ok {
		if err := ev.charge(n); err != nil {
			return nil, err
		}
	}
	res, err := f.Handler(args)
	if err != nil {
		// The library's message may quote an argument.
		return nil, ev.fail(fmt.Errorf("function %s() failed on this value (a count or width must be a non-negative integer, a pad a single character)", name))
	}
	return res, nil
}

// arity gives the least and most arguments (-1: no most).
func arity(specs []functions.ArgSpec) (lo, hi int) {
	hi = len(specs)
	for _, s := range specs {
		if !s.Optional {
			lo++
		}
		if s.Variadic {
			hi = -1
		}
	}
	return lo, hi
}

func describeArity(lo, hi int) string {
	switch {
	case hi < 0:
		return fmt.Sprintf("at least %d arguments", lo)
	case lo == hi && lo == 1:
		return "1 argument"
	case lo == hi:
		return fmt.Sprintf("%d arguments", lo)
	}
	return fmt.Sprintf("%d to %d arguments", lo, hi)
}

// checkArgs checks argument types as the library does, with a message that
// names the function, the argument and the types, never the value.
func checkArgs(name string, specs []functions.ArgSpec, args []any) error {
	if len(specs) == 0 {
		return nil
	}
	for i, a := range args {
		spec := specs[min(i, len(specs)-1)]
		if !accepts(spec.Types, a) {
			var want []string
			for _, t := range spec.Types {
				want = append(want, string(t))
			}
			return fmt.Errorf("function %s() needs %s as argument %d, not %s", name, strings.Join(want, " or "), i+1, TypeName(a))
		}
	}
	return nil
}

func accepts(types []functions.JpType, a any) bool {
	for _, t := range types {
		switch t {
		case functions.JpAny:
			return true
		case functions.JpNumber:
			if _, ok := a.(float64); ok {
				return true
			}
		case functions.JpString:
			if _, ok := a.(string); ok {
				return true
			}
		case functions.JpArray:
			if util.IsSliceType(a) {
				return true
			}
		case functions.JpObject:
			if _, ok := a.(map[string]any); ok {
				return true
			}
		case functions.JpArrayArray:
			if _, ok := a.([]any); ok {
				return true
			}
		case functions.JpArrayNumber:
			if _, ok := util.ToArrayNum(a); ok {
				return true
			}
		case functions.JpArrayString:
			if _, ok := util.ToArrayStr(a); ok {
				return true
			}
		case functions.JpExpref:
			if _, ok := a.(functions.ExpRef); ok {
				return true
			}
		}
	}
	return false
}

// TypeName is the JMESPath type of a value, for messages.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case functions.ExpRef:
		return "an expression reference"
	}
	if util.IsSliceType(v) {
		return "an array"
	}
	return "a value of another type"
}

// outputSize computes, before they run, the size of what the functions
// that can multiply their input in one call would build. Their arguments
// are already type-checked.
func outputSize(name string, args []any, limit int) (int, bool) {
	count := func(i int) int {
		if len(args) <= i {
			return -1
		}
		n, ok := util.ToPositiveInteger(args[i])
		if !ok {
			return -1 // the function itself refuses it
		}
		return n
	}
	switch name {
	case "pad_left", "pad_right":
		if w := count(1); w > 0 {
			return 2 * w, true // the pad, and the padded string
		}
	case "replace":
		subject, old, repl := args[0].(string), args[1].(string), args[2].(string)
		n := strings.Count(subject, old)
		if c := count(3); c >= 0 {
			n = min(n, c)
		}
		return len(subject) + n*max(0, len(repl)-len(old)), true
	case "join":
		sep := args[0].(string)
		items := args[1].([]any)
		n := len(sep) * max(0, len(items)-1)
		for _, it := range items {
			if s, ok := it.(string); ok {
				n += len(s)
			}
		}
		return n, true
	case "split":
		s, sep := args[0].(string), args[1].(string)
		n := strings.Count(s, sep) + 1
		if sep == "" {
			n = len(s) // one piece per character, at most one per byte
		}
		if c := count(2); c >= 0 {
			n = min(n, c+1)
		}
		// Each piece is a string in a []string, then in the []any.
		return len(s) + n*(elementCost+stringCost), true
	case "reverse":
		if s, ok := args[0].(string); ok {
			return runeBytes * len(s), true // reversed as runes
		}
	case "to_string":
		if _, ok := args[0].(string); !ok {
			// encoding/json's buffers (jsonFactor) for the text, which
			// escaping (< is \u003c) makes up to six times a string.
			return jsonFactor * jsonTextBound(args[0], limit), true
		}
	}
	return 0, false
}

// TextCost is what writing a result as file text allocates, at least half
// of it: a string's copy (and its decoding), or, for any other value,
// encoding/json's buffer (doubling, then copied out) of at most
// jsonTextBound bytes. Walked no further than limit.
func TextCost(v any, limit int) int {
	if s, ok := v.(string); ok {
		return stringCost + 2*len(s)
	}
	return min(jsonFactor*jsonTextBound(v, limit), limit+1)
}

// jsonFactor is what encoding/json allocates per byte it writes, at worst
// (its buffer pool empty, as the race detector leaves it at random): the
// buffer grows by doubling (up to four times the text in all), a map key
// is escaped into a buffer of its own, and the result is copied out.
const jsonFactor = 6

// EscapedSize is the most JSON or Go quoting writes for s: a plain ASCII
// byte stays one, any other may become six (\u003c, \u0001; a multi-byte
// rune's bytes are kept or escaped, never more).
func EscapedSize(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			n++
		} else {
			n += 6
		}
	}
	return n
}

// jsonTextBound is the most bytes encoding/json can write for v (strings
// and keys at their EscapedSize), walked no further than limit.
func jsonTextBound(v any, limit int) int {
	n := 0
	var walk func(v any)
	walk = func(v any) {
		if n > limit {
			return
		}
		switch x := v.(type) {
		case string:
			n += 2 + EscapedSize(x)
		case []any:
			n += 2
			for _, e := range x {
				n++
				if walk(e); n > limit {
					return
				}
			}
		case map[string]any:
			n += 2
			for k, e := range x {
				n += 4 + EscapedSize(k)
				if walk(e); n > limit {
					return
				}
			}
		default:
			n += 32 // a number's digits, true, false, null
		}
	}
	walk(v)
	return min(n, limit+1)
}

// Costs of values: what building them allocates, so a budget in bytes
// bounds memory; never less than their JSON text (up to escaping).
// TestChargeCoversAllocation measures them: an element costs its interface
// slot, twice over (a list is built by append, which doubles), the boxed
// value, and the library's copies into typed slices ([]string,
// []float64) that functions make of their arguments.
const (
	scalarCost  = 24
	stringCost  = 32
	arrayCost   = 48
	objectCost  = 64
	elementCost = 48 // per element of a list, per entry of an object
)

// Cost is the size of a value written out (shared parts counted every time
// they appear), walked no further than limit: the result is at most
// limit+1 when the value is larger.
func Cost(v any, limit int) int {
	n := 0
	var walk func(v any)
	walk = func(v any) {
		if n > limit {
			return
		}
		switch x := v.(type) {
		case string:
			n += stringCost + len(x)
		case json.Number:
			n += scalarCost + len(x)
		case []any:
			n += arrayCost
			for _, e := range x {
				n += elementCost
				if walk(e); n > limit {
					return
				}
			}
		case map[string]any:
			n += objectCost
			for k, e := range x {
				n += elementCost + stringCost + len(k)
				if walk(e); n > limit {
					return
				}
			}
		default:
			n += scalarCost
		}
	}
	walk(v)
	return min(n, limit+1)
}

// decodeValueCost is what decoding allocates per JSON value besides its
// bytes: the interface, the boxed number or string header, the slot in
// its list (grown by doubling) or the map entry (TestDecodeCostCoversAllocation
// measures it: about 70 bytes for each 0 of [0,0,...], 410 for each {"":0}).
const decodeValueCost = 96

// DecodeCost is what DecodeJSON allocates for data, at least half of it,
// computed without decoding (a scan that allocates nothing): the decoder's
// buffer (doubling) and the strings, four bytes a byte, and
// decodeValueCost for every value (counted by the commas, colons and
// brackets outside strings). A caller charges it before decoding: a
// document of small values ([0,0,...]) decodes to forty times its size.
func DecodeCost[T string | []byte](data T) int {
	values := 1
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ',' || c == ':' || c == '[' || c == '{':
			values++
		}
	}
	return 4*len(data) + decodeValueCost*values
}

// DecodeJSON parses a JSON document, with numbers as json.Number when
// exactNumbers (kept as written) or float64. Its error
// gives only the byte offset: encoding/json messages quote the offending
// character, which is part of a secret.
func DecodeJSON(data []byte, exactNumbers bool) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if exactNumbers {
		dec.UseNumber()
	}
	var doc any
	if err := dec.Decode(&doc); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("syntax error at byte %d", syn.Offset)
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return nil, fmt.Errorf("unexpected JSON type at byte %d", typ.Offset)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("the value is empty or truncated")
		}
		return nil, errors.New("the value cannot be decoded")
	}
	if dec.More() {
		return nil, fmt.Errorf("extra data after the JSON value at byte %d", dec.InputOffset())
	}
	return doc, nil
}
