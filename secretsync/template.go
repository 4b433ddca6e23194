package secretsync

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/coffer-csi/coffer/provider/render"
	"strconv"
	"strings"
	"text/template"
)

// Template functions, besides text/template's own (index, printf, eq, ...).
// Values are strings; a function that takes the piped value takes it last,
// as in Helm. Their errors never contain the value they were given.
var templateFuncs = template.FuncMap{
	// b64enc encodes a value in standard base64.
	"b64enc": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	// b64dec decodes standard base64 (padded or not).
	"b64dec": func(s string) (string, error) {
		b, err := decode([]byte(s), DecodeBase64)
		return string(b), err
	},
	// fromJson parses a JSON value, to reach into it: (fromJson .db).host
	"fromJson": func(s string) (any, error) { return decodeJSON([]byte(s)) },
	// toJson writes a value as compact JSON.
	"toJson": func(v any) (string, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return "", errors.New("the value cannot be written as JSON")
		}
		return string(b), nil
	},
	"upper":      strings.ToUpper,
	"lower":      strings.ToLower,
	"trim":       strings.TrimSpace,
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	// indent prefixes every line with n spaces; nindent adds a newline
	// first (for YAML blocks).
	"indent":  indent,
	"nindent": func(n int, s string) string { return "\n" + indent(n, s) },
	// quote writes a value as a double-quoted string with escapes.
	"quote": strconv.Quote,
	// default returns def when the value is empty.
	"default": func(def, s string) string {
		if s == "" {
			return def
		}
		return s
	},
	// required fails with msg when the value is empty.
	"required": func(msg, s string) (string, error) {
		if s == "" {
			return "", errors.New(msg)
		}
		return s, nil
	},
}

// TemplateFunctions lists the functions templates may call, for the docs.
func TemplateFunctions() []string { return sortedKeys(templateFuncs) }

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

func parseTemplate(key, text string) (*template.Template, error) {
	return template.New(key).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
}

// execute runs a template over the Secret's values. Its error names the
// template position and what failed, never a value: coffer's functions
// say nothing of their input, and text/template's own errors name fields
// and types.
func execute(t *template.Template, values map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, values); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeJSON parses one JSON value. Its errors give only the byte offset:
// encoding/json messages quote the offending character, which is part of
// a secret.
func decodeJSON(data []byte) (any, error) {
	v, err := render.DecodeJSON(data, true)
	if err != nil {
		return nil, fmt.Errorf("not valid JSON (%v)", err)
	}
	return v, nil
}

// decode applies a decoding to a value. Surrounding whitespace (a trailing
// newline) is ignored; padding is optional. Errors give only the offset.
func decode(b []byte, d Decoding) ([]byte, error) {
	var encs []*base64.Encoding
	switch d {
	case DecodeBase64:
		encs = []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding}
	case DecodeBase64URL:
		encs = []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding}
	default:
		return b, nil
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
		return nil, fmt.Errorf("not valid %s (illegal data at byte %d)", d, int64(corrupt))
	}
	return nil, fmt.Errorf("not valid %s", d)
}
