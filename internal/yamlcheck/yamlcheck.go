// Package yamlcheck is the validation kit of coffer's YAML parameters
// (objects, syncSecrets): it reads mappings and scalars from yaml.v3 nodes
// and collects every problem, each naming where it is, the field at fault
// and the fix, so that a user fixes them all in one round.
//
// Problems never carry secret values: the parameters hold names and
// settings only.
package yamlcheck

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a declaration. Where names the item
// ("objects[2] (prod/db)") or "parameters" for top-level keys, Field is the
// key at fault, and Message says what is wrong and how to fix it.
type Problem struct {
	Where   string
	Field   string
	Message string
}

func (p Problem) String() string {
	switch {
	case p.Where == "" && p.Field == "":
		return p.Message
	case p.Field == "":
		return p.Where + ": " + p.Message
	default:
		return fmt.Sprintf("%s: field %s: %s", p.Where, Quote(p.Field), p.Message)
	}
}

// Checker collects Problems while a declaration is read. The zero value is
// ready to use.
type Checker struct {
	// Hints explain unknown keys (by lower-case name) that users bring from
	// another tool, in place of a "did you mean".
	Hints    map[string]string
	Problems []Problem
	// suggested counts the suggestions computed (see Suggest).
	suggested int
}

// Add records a problem.
func (c *Checker) Add(where, field, format string, args ...any) {
	c.Problems = append(c.Problems, Problem{Where: where, Field: field, Message: fmt.Sprintf(format, args...)})
}

// Fields maps the keys of a YAML mapping to their value nodes, under the
// spelling of valid, reporting unknown and duplicate keys. Keys match
// case-insensitively, as they do for the AWS provider (which decodes
// through encoding/json).
func (c *Checker) Fields(n *yaml.Node, valid []string, where string) map[string]*yaml.Node {
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := canonicalKey(k.Value, valid)
		if key == "" {
			c.Add(where, k.Value, "%s", c.unknownKey(k.Value, valid))
			continue
		}
		if _, dup := out[key]; dup {
			c.Add(where, key, "is set twice (line %d); keep one", k.Line)
			continue
		}
		out[key] = v
	}
	return out
}

// Scalar returns the trimmed text of field key of f ("" when absent),
// reporting a value that is not a scalar.
func (c *Checker) Scalar(f map[string]*yaml.Node, key, where string) string {
	n, ok := f[key]
	if !ok {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		c.Add(where, key, "must be a single value, found a %s at line %d", KindName(n), n.Line)
		return ""
	}
	return strings.TrimSpace(n.Value)
}

// unknownKey explains an unknown key: a hint, or the valid key it most
// likely meant.
func (c *Checker) unknownKey(key string, valid []string) string {
	if hint, ok := c.Hints[strings.ToLower(key)]; ok {
		return "unknown key; " + hint
	}
	// Nearest, not Suggest: valid is a short list of short keys, so the
	// cost is linear in the key, and every unknown key gets its hint.
	if s := Nearest(key, valid); s != "" {
		return fmt.Sprintf("unknown key; did you mean %q? (valid keys: %s)", s, strings.Join(valid, ", "))
	}
	return "unknown key; valid keys are " + strings.Join(valid, ", ")
}

func canonicalKey(k string, valid []string) string {
	for _, v := range valid {
		if strings.EqualFold(k, v) {
			return v
		}
	}
	return ""
}

// KindName names a node's kind as users know it, for messages.
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "plain value"
	case yaml.AliasNode:
		return "YAML alias"
	}
	return "document"
}
