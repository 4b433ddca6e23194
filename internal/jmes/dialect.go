package jmes

import (
	"errors"
	"fmt"
	"strings"

	standard "github.com/jmespath/go-jmespath"
)

// DialectError is an expression that the standard JMESPath grammar
// rejects. coffer's library (jmespath-community) parses a superset of it:
// arithmetic (+ - * / % // and their Unicode forms, unary minus), let
// expressions and $. The AWS provider uses the standard grammar
// (github.com/jmespath/go-jmespath), where an unquoted api-key is a syntax
// error and users quote it; the community grammar reads it as api minus
// key, which with numeric fields writes their difference. coffer refuses
// every such expression, so that no path means something here that it did
// not mean there.
type DialectError struct {
	// Offset is where the standard parser stopped.
	Offset int
	// Suggestion is the expression with its hyphenated keys quoted, when
	// that form is standard JMESPath ("" otherwise).
	Suggestion string
}

func (e *DialectError) Error() string {
	msg := fmt.Sprintf("it is not standard JMESPath, the grammar of the AWS provider (syntax error at byte %d); coffer refuses what that grammar rejects (arithmetic such as a-b, let, $), so that no path silently means something else", e.Offset)
	if e.Suggestion != "" {
		return msg + fmt.Sprintf(`; a key with "-" must be quoted: path: %s`, yamlQuote(e.Suggestion))
	}
	return msg + `; quote keys with "-" or other special characters, as in path: '"api-key"'`
}

// checkStandard returns a *DialectError when the standard grammar rejects
// expr.
func checkStandard(expr string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &DialectError{}
		}
	}()
	_, perr := standard.Compile(expr)
	if perr == nil {
		return nil
	}
	e := suggestQuoted(expr)
	if e == nil {
		e = &DialectError{}
	}
	if syn, ok := perr.(standard.SyntaxError); ok {
		e.Offset = syn.Offset
	}
	return e
}

// suggestQuoted returns a *DialectError suggesting expr with its
// hyphenated keys quoted, when that is standard JMESPath; nil otherwise.
func suggestQuoted(expr string) (e *DialectError) {
	defer func() {
		if recover() != nil {
			e = nil
		}
	}()
	s := quoteHyphenated(expr)
	if s == expr {
		return nil
	}
	if _, err := standard.Compile(s); err != nil {
		return nil
	}
	_, err := standard.Compile(expr)
	var syn standard.SyntaxError
	if errors.As(err, &syn) {
		return &DialectError{Offset: syn.Offset, Suggestion: s}
	}
	return &DialectError{Suggestion: s}
}

// quoteHyphenated quotes every unquoted key that holds a hyphen
// (db.api-key becomes db."api-key"), leaving quoted identifiers, raw
// strings and literals as they are.
func quoteHyphenated(expr string) string {
	var b strings.Builder
	isKey := func(c byte) bool {
		return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(expr))
			b.WriteString(expr[i:j])
			i = j
		case isKey(c) && c != '-':
			j := i
			for j < len(expr) && isKey(expr[j]) {
				j++
			}
			key := strings.TrimRight(expr[i:j], "-")
			j = i + len(key)
			if strings.Contains(key, "-") && (c < '0' || c > '9') {
				b.WriteString(`"` + key + `"`)
			} else {
				b.WriteString(key)
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// yamlQuote writes s as a YAML single-quoted scalar.
func yamlQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
