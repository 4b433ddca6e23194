// Package hostile builds SecretProviderClass parameters that attack the
// static limits (spc, secretsync, jmes, tmpl limits.go), for the tests of
// every entry point that parses a class: a Mount, coffer-controller sync's
// declaration load and coffer validate. Each class must be refused, with
// a message naming the field and the limit, before any parser runs long.
package hostile

import (
	"fmt"
	"strings"
)

// Class is one attack: the class's parameters, and what the refusal says.
type Class struct {
	Parameters map[string]string
	// Want are substrings of the refusal: the field and the limit.
	Want []string
}

const region = "us-east-1"

// object is one valid object with a jmesPath entry of path.
func object(i int, path string) string {
	return fmt.Sprintf("- objectName: s%d\n  objectType: secretsmanager\n  jmesPath:\n    - path: %s\n      objectAlias: a%d\n", i, yamlQuote(path), i)
}

func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func objects(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- {objectName: s%d, objectType: secretsmanager}\n", i)
	}
	return b.String()
}

// Classes are the attacks, by name.
func Classes() map[string]Class {
	sync := func(decl string) map[string]string {
		return map[string]string{"region": region, "objects": object(0, "a"), "syncSecrets": decl}
	}
	manyEntries := func(n int) string {
		var b strings.Builder
		b.WriteString("[")
		for i := range n {
			fmt.Fprintf(&b, "{path: a, objectAlias: e%d, writeFile: false},", i)
		}
		return b.String() + "]"
	}
	deepJMES := strings.Repeat("(", 300_000) + "a" + strings.Repeat(")", 300_000)
	return map[string]Class{
		"600 KB deeply nested jmesPath": {
			Parameters: map[string]string{"region": region, "objects": object(0, deepJMES)},
			Want:       []string{"over the limit of 262144"},
		},
		"deeply nested jmesPath within the class size": {
			Parameters: map[string]string{"region": region, "objects": object(0, strings.Repeat("[", 2000)+"a"+strings.Repeat("]", 2000))},
			Want:       []string{`objects[0] (s0).jmesPath[0]`, "path", "over the limit of 100"},
		},
		"long jmesPath": {
			Parameters: map[string]string{"region": region, "objects": object(0, "{"+strings.Repeat("a: b, ", 1000)+"c: d}")},
			Want:       []string{`objects[0] (s0).jmesPath[0]`, "path", "over the limit of 4096"},
		},
		// Every unknown key is a problem with a suggestion: each costs
		// what reading the key costs, and the message lists 100.
		"thousands of unknown keys": {
			Parameters: map[string]string{"region": region, "objects": "- objectName: s\n  objectType: secretsmanager\n" + func() string {
				var b strings.Builder
				for i := range 3000 {
					fmt.Fprintf(&b, "  objectNam%04d%s: x\n", i, strings.Repeat("e", 60))
				}
				return b.String()
			}()},
			Want: []string{"objects[0] (s)", "unknown key"},
		},
		// yaml.v3 stops at its own depth limit.
		"deeply nested YAML": {
			Parameters: map[string]string{"region": region, "objects": strings.Repeat("[", 200_000)},
			Want:       []string{"objects", "is not valid YAML"},
		},
		"too many objects": {
			Parameters: map[string]string{"region": region, "objects": objects(300)},
			Want:       []string{"objects", "lists 300 objects, over the limit of"},
		},
		"too many jmesPath entries in one object": {
			Parameters: map[string]string{"region": region, "objects": "- objectName: s\n  objectType: secretsmanager\n  jmesPath: " + manyEntries(65)},
			Want:       []string{"objects[0] (s)", "jmesPath", "65 entries, over the limit of 64"},
		},
		"too many jmesPath entries in all": {
			Parameters: map[string]string{"region": region, "objects": func() string {
				var b strings.Builder
				for i := range 5 {
					fmt.Fprintf(&b, "- objectName: s%d\n  objectType: secretsmanager\n  jmesPath: %s\n", i, strings.ReplaceAll(manyEntries(60), "objectAlias: e", fmt.Sprintf("objectAlias: o%d-", i)))
				}
				return b.String()
			}()},
			Want: []string{"objects[4] (s4)", "jmesPath", "300, over the limit of 256"},
		},
		"too many templated files": {
			Parameters: map[string]string{"region": region, "objects": object(0, "a"), "files": func() string {
				var b strings.Builder
				for i := range 65 {
					fmt.Fprintf(&b, "- {path: f%d, template: x}\n", i)
				}
				return b.String()
			}()},
			Want: []string{"files", "65 entries, over the limit of 64"},
		},
		"deeply nested template": {
			Parameters: map[string]string{"region": region, "objects": object(0, "a"), "files": "- path: f\n  template: " + yamlQuote(strings.Repeat("{{if .a0}}", 3000)+strings.Repeat("{{end}}", 3000))},
			Want:       []string{"files[0]", "template", "over the limit of 100"},
		},
		"long template": {
			Parameters: map[string]string{"region": region, "objects": object(0, "a"), "files": "- path: f\n  template: " + yamlQuote(strings.Repeat("{{ .a0 }}", 8000))},
			Want:       []string{"files[0]", "template", "over the limit of 65536"},
		},
		"wide printf": {
			Parameters: map[string]string{"region": region, "objects": object(0, "a"), "files": "- path: f\n  template: " + yamlQuote(`{{ printf "%999999d" 1 }}`)},
			Want:       []string{"files[0]", "template", "over the limit of 256"},
		},
		"too many syncSecrets": {
			Parameters: sync(func() string {
				var b strings.Builder
				for i := range 129 {
					fmt.Fprintf(&b, "- {secretName: s%d, data: [{key: k, objectName: a0}]}\n", i)
				}
				return b.String()
			}()),
			Want: []string{"syncSecrets", "129 entries, over the limit of 128"},
		},
		"too many data keys": {
			Parameters: sync("- secretName: s\n  data: [" + strings.Repeat("{key: k, objectName: a0},", 257) + "]"),
			Want:       []string{"syncSecrets[0] (s)", "data", "257 entries, over the limit of 256"},
		},
		"deeply nested sync template": {
			Parameters: sync("- secretName: s\n  data: [{key: k, objectName: a0}]\n  template:\n    data:\n      x: " + yamlQuote(strings.Repeat("{{with .k}}", 3000)+strings.Repeat("{{end}}", 3000))),
			Want:       []string{"syncSecrets[0] (s).template.data", "over the limit of 100"},
		},
		// 250 names of 250 bytes, and 250 references that miss them by a
		// byte: "did you mean" once compared every pair, letter by letter.
		"long misspelt references": {
			Parameters: func() map[string]string {
				name := func(i int) string { return fmt.Sprintf("%s%03d", strings.Repeat("n", 247), i) }
				var objs, data strings.Builder
				for i := range 250 {
					fmt.Fprintf(&objs, "- {objectName: %s, objectType: secretsmanager}\n", name(i))
					fmt.Fprintf(&data, "{key: k%d, objectName: %sx},", i, name(i)[1:])
				}
				return map[string]string{"region": region, "objects": objs.String(), "syncSecrets": "- secretName: s\n  data: [" + data.String() + "]"}
			}(),
			Want: []string{"syncSecrets[0] (s).data[0]", "is not a file"},
		},
	}
}
