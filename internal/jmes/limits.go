package jmes

import "fmt"

// Static limits, checked before the parser runs. The library's parser is
// recursive descent (every bracket, prefix operator and projection is a
// Go call) and every pass over its tree (coffer's guard, the function
// check, the interpreter) recurses once per level: an expression nested a
// few hundred thousand levels deep overflows the Go stack, which kills the
// whole process, not the request. So the input is measured first, in one
// pass that allocates nothing, and refused before the parser sees it.
//
// No published jmesPath of the AWS provider comes near either limit: its
// examples are a key or a dotted path of two or three steps (under 40
// bytes, depth under 5).
const (
	// MaxExprBytes is the longest expression accepted.
	MaxExprBytes = 4096
	// MaxExprDepth is the deepest nesting accepted, as counted by
	// exprDepth.
	MaxExprDepth = 100
)

// checkLimits refuses an expression over MaxExprBytes or MaxExprDepth,
// saying the limit and the fix. Its work is linear in the expression (at
// most MaxExprBytes) and it allocates only its error.
func checkLimits(expr string) error {
	if len(expr) > MaxExprBytes {
		return fmt.Errorf("the expression is %d bytes, over the limit of %d; select the value with a shorter path (a jmesPath entry picks one value: a key or a short dotted path)", len(expr), MaxExprBytes)
	}
	if d := exprDepth(expr, MaxExprDepth); d > MaxExprDepth {
		return fmt.Errorf("the expression nests or chains more than %d levels (brackets, parentheses, operators and path steps, counted together), over the limit of %d; use a shorter path", MaxExprDepth, MaxExprDepth)
	}
	return nil
}

// exprDepth is an upper bound of the depth of expr's syntax tree and of
// the parser's recursion, or a number over limit as soon as it passes it.
// Outside quoted identifiers, raw strings and literals:
//   - every operator and path step (. | || && ! & comparisons, arithmetic,
//     *, =, and any non-ASCII rune, which can only be an operator) adds a
//     level: the tree of a chain of n steps is n deep, and a prefix
//     operator recurses;
//   - an opening bracket ([ { () adds a level; inside it, a comma starts a
//     sibling at the bracket's level again; after the closing bracket, the
//     group counts as deep as its deepest element, and steps that follow
//     it add to that.
//
// Counting chains as nesting overestimates (a|b|c is not three deep for
// the parser), which is safe: MaxExprDepth is far above real paths.
func exprDepth(expr string, limit int) int {
	// A fixed array: no allocation. A stack deeper than it means the
	// depth is over any limit it could be used with.
	type group struct{ start, peak int }
	var stack [MaxExprDepth + 1]group
	top := 0 // groups open
	d, deepest := 0, 0
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			// Skip to the closing delimiter; a backslash escapes the next
			// byte. An unterminated string ends the scan (the lexer will
			// refuse it).
			for i++; i < len(expr) && expr[i] != c; i++ {
				if expr[i] == '\\' {
					i++
				}
			}
			continue
		case c == '[' || c == '{' || c == '(':
			if top == len(stack) {
				return limit + 1
			}
			stack[top] = group{start: d, peak: d + 1}
			top++
			d++
		case c == ']' || c == '}' || c == ')':
			if top == 0 {
				continue // the parser refuses an unbalanced closer
			}
			top--
			d = max(stack[top].peak, d)
		case c == ',':
			if top > 0 {
				stack[top-1].peak = max(stack[top-1].peak, d)
				d = stack[top-1].start + 1
			}
		case c >= 0x80 || isOperator(c):
			if c >= 0x80 {
				// One level per rune, not per byte: skip continuation
				// bytes.
				for i+1 < len(expr) && expr[i+1]&0xC0 == 0x80 {
					i++
				}
			}
			d++
		}
		if d > deepest {
			if deepest = d; deepest > limit {
				return deepest
			}
		}
	}
	return deepest
}

// isOperator reports whether c is (part of) a JMESPath operator or path
// step. Doubled operators (|| && == <= >= != //) count twice: harmless.
func isOperator(c byte) bool {
	switch c {
	case '.', '|', '&', '!', '=', '<', '>', '*', '+', '-', '/', '%', '?':
		return true
	}
	return false
}
