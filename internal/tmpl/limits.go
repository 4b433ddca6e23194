package tmpl

import (
	"fmt"
	"reflect"
	"strings"
	"text/template/parse"
)

// Static limits, checked before text/template's parser runs (length and
// nesting) or before a template runs (literal printf widths). The parser
// recurses once per nested {{if}}, {{range}}, {{with}}, {{else if}} and
// parenthesised pipeline, and so do coffer's walks of the tree and the
// executor: without a bound, a template of a few hundred kilobytes
// exhausts the stack (fatal to the process) or its memory. text/template
// itself stops only parentheses, at 10000.
//
// Real templates (ESO's published ones, and coffer's examples) are a few
// lines of a config file, nested two or three deep, with widths of a few
// characters (%05d).
const (
	// MaxTemplateBytes is the longest template accepted.
	MaxTemplateBytes = 64 << 10
	// MaxTemplateDepth is the deepest nesting of blocks and parentheses.
	MaxTemplateDepth = 100
	// MaxFormatWidth is the largest width or precision a printf format
	// may give (literal or with *): fmt pads every element of a list or
	// map to it.
	MaxFormatWidth = 256
)

// checkSource refuses a template over MaxTemplateBytes or
// MaxTemplateDepth before it is parsed. Linear, and it allocates only its
// error.
func checkSource(text string) error {
	if len(text) > MaxTemplateBytes {
		return fmt.Errorf("the template is %d bytes, over the limit of %d; split it into several keys or files", len(text), MaxTemplateBytes)
	}
	if d := templateDepth(text, MaxTemplateDepth); d > MaxTemplateDepth {
		return fmt.Errorf("the template nests more than %d levels ({{if}}, {{range}}, {{with}}, {{else if}}, {{define}}, {{block}} and parentheses, counted together), over the limit of %d; flatten it", MaxTemplateDepth, MaxTemplateDepth)
	}
	return nil
}

// templateDepth is an upper bound of the nesting text/template's parser
// recurses through, or a number over limit as soon as it passes it: the
// blocks open ({{if}} {{range}} {{with}} {{define}} {{block}}, and each
// {{else if}} / {{else with}}, which nests one more until the chain's
// {{end}}), plus the parentheses open inside an action. Strings, raw
// strings, character constants and comments inside actions are skipped.
func templateDepth(text string, limit int) int {
	var stack [MaxTemplateDepth + 1]int // the depth before each block
	top, d, deepest := 0, 0, 0
	for i := 0; i < len(text); {
		open := strings.Index(text[i:], "{{")
		if open < 0 {
			break
		}
		i += open + 2
		// The action's first word (after a trim marker and spaces).
		j := i
		if j < len(text) && text[j] == '-' {
			j++
		}
		for j < len(text) && isSpace(text[j]) {
			j++
		}
		word := j
		for j < len(text) && text[j] >= 'a' && text[j] <= 'z' {
			j++
		}
		switch text[word:j] {
		case "if", "range", "with", "define", "block":
			if top == len(stack) {
				return limit + 1
			}
			stack[top] = d
			top++
			d++
		case "else":
			for j < len(text) && isSpace(text[j]) {
				j++
			}
			if strings.HasPrefix(text[j:], "if") || strings.HasPrefix(text[j:], "with") {
				d++ // else if: a nested if, closed by the chain's one end
			}
		case "end":
			if top > 0 {
				top--
				d = stack[top]
			}
		}
		if d > deepest {
			if deepest = d; deepest > limit {
				return deepest
			}
		}
		// The rest of the action: parentheses add to the depth.
		parens := 0
		for i < len(text) && !strings.HasPrefix(text[i:], "}}") {
			switch c := text[i]; c {
			case '"', '\'', '`':
				for i++; i < len(text) && text[i] != c; i++ {
					if text[i] == '\\' && c != '`' {
						i++
					}
				}
			case '/':
				if strings.HasPrefix(text[i:], "/*") {
					end := strings.Index(text[i+2:], "*/")
					if end < 0 {
						return deepest // unclosed comment: the parser refuses it
					}
					i += end + 3
				}
			case '(':
				if parens++; d+parens > deepest {
					if deepest = d + parens; deepest > limit {
						return deepest
					}
				}
			case ')':
				parens = max(parens-1, 0)
			}
			i++
		}
	}
	return deepest
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// checkFormats refuses, at parse time, every printf whose format is
// written in the template and gives a width or precision over
// MaxFormatWidth.
func checkFormats(tree *parse.Tree) error {
	var err error
	walk(tree.Root, func(n parse.Node) {
		cmd, ok := n.(*parse.CommandNode)
		if !ok || len(cmd.Args) < 2 || err != nil {
			return
		}
		if id, ok := cmd.Args[0].(*parse.IdentifierNode); !ok || id.Ident != "printf" {
			return
		}
		if s, ok := cmd.Args[1].(*parse.StringNode); ok {
			if werr := checkWidths(s.Text); werr != nil {
				location, _ := tree.ErrorContext(cmd)
				err = parseError(fmt.Errorf("template: %s: %s", location, werr.Error())) // "line 3: printf: ..."
			}
		}
	})
	return err
}

// checkWidths refuses a format with a literal width or precision over
// MaxFormatWidth.
func checkWidths(format string) error {
	if w := widestLiteral(format); w > MaxFormatWidth {
		return widthError()
	}
	return nil
}

func widthError() error {
	return funcError{fmt.Sprintf("printf: a width or precision is over the limit of %d (fmt pads every element of a list or map to it); use a smaller one", MaxFormatWidth)}
}

// widestLiteral is the largest width or precision written in format
// (digits after % and its flags, or after its '.'), capped just over
// MaxFormatWidth; argument indexes ([n]) are not widths.
func widestLiteral(format string) int {
	widest := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		for i++; i < len(format) && strings.IndexByte("+-# 0123456789.*[", format[i]) >= 0; i++ {
			switch c := format[i]; {
			case c == '[':
				end := strings.IndexByte(format[i:], ']')
				if end < 0 {
					return widest
				}
				i += end
			case c >= '1' && c <= '9':
				n := 0
				for ; i < len(format) && format[i] >= '0' && format[i] <= '9'; i++ {
					n = min(n*10+int(format[i]-'0'), MaxFormatWidth+1)
				}
				widest = max(widest, n)
				i--
			}
		}
		// format[i] is the verb (or %): the loop's i++ passes it.
	}
	return widest
}

// checkStarWidth refuses args[i], which a * takes as a width or
// precision, when it is over MaxFormatWidth (fmt takes any integer).
func checkStarWidth(args []any, i int) error {
	if i >= len(args) {
		return nil // fmt prints %!(BADWIDTH)
	}
	v := reflect.ValueOf(args[i])
	var n int64
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n = v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if v.Uint() > MaxFormatWidth {
			return widthError()
		}
		return nil
	default:
		return nil // fmt prints %!(BADWIDTH)
	}
	if n > MaxFormatWidth || n < -MaxFormatWidth {
		return widthError()
	}
	return nil
}
