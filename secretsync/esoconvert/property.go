package esoconvert

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// gjsonSyntax are the characters that make a gjson path more than a chain
// of keys: wildcards, queries (#), modifiers (@), pipes, escapes of
// anything but a dot, and JSON literals.
const gjsonSyntax = `*?#@|!\=<>%()[]{},:"'` + "`"

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
var index = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})$`)

// jmesPath translates an ESO property (a gjson path, as ESO's AWS provider
// reads it) into a JMESPath expression that selects the same value:
// components separated by unescaped dots, a number an array index. When
// the property has a dot, ESO first looks for a key named by the whole
// property; so does the expression ("a.b" || a.b). numeric reports a
// component taken as an array index (gjson would also read an object's
// key of that name).
func jmesPath(property string) (expr string, numeric bool, err error) {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(property); i++ {
		b := property[i]
		switch {
		case b == '\\' && i+1 < len(property) && property[i+1] == '.':
			cur.WriteByte('.')
			i++
		case b == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		case strings.IndexByte(gjsonSyntax, b) >= 0:
			return "", false, fmt.Errorf("%q uses gjson syntax (%q)", property, b)
		default:
			cur.WriteByte(b)
		}
	}
	parts = append(parts, cur.String())
	var b strings.Builder
	for i, p := range parts {
		switch {
		case p == "":
			return "", false, fmt.Errorf("%q has an empty path step", property)
		case i > 0 && index.MatchString(p):
			numeric = true
			b.WriteString("[" + p + "]")
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(quoteIdentifier(p))
		}
	}
	path := b.String()
	if strings.Contains(property, ".") && !strings.Contains(property, `\.`) {
		path = quoteIdentifier(property) + " || " + path
	}
	return path, numeric, nil
}

// quoteIdentifier writes a key as a JMESPath identifier: bare when it can
// be, else a quoted identifier with JSON escapes.
func quoteIdentifier(s string) string {
	if identifier.MatchString(s) {
		return s
	}
	q, _ := json.Marshal(s) // a string always encodes
	return string(q)
}
