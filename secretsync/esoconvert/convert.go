// Package esoconvert turns External Secrets Operator manifests for the AWS
// provider (ExternalSecret, SecretStore, ClusterSecretStore, API versions
// external-secrets.io/v1beta1 and v1) into SecretProviderClasses that
// declare the same Secrets with syncSecrets. It is a pure library:
// manifests in, the classes' YAML and a line for every field not carried
// over out; coffer convert does the I/O.
//
// What each field becomes, and why a field is dropped, is one table
// (Table), which docs/migrating-from-eso.md shows.
package esoconvert

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/internal/yamlcheck"
)

// Options fill in what the manifests may leave out.
type Options struct {
	// Namespace is the namespace of manifests that name none.
	Namespace string
	// ServiceAccount is the entry's serviceAccountName when the store
	// names no ServiceAccount of the ExternalSecret's namespace.
	ServiceAccount string
}

// Line is one field coffer convert did not carry over (a DROPPED line) or
// carried with a difference worth knowing (a NOTE line).
type Line struct {
	Dropped bool
	// Kind and Name name the manifest: ExternalSecret/slack-url.
	Kind, Name string
	// Field is the field's path in the manifest, with list indexes.
	Field string
	// Reason is the table row's text, and what to do instead; Detail
	// adds what only this input shows (a validation message).
	Reason, Detail string
}

func (l Line) String() string {
	tag := "NOTE"
	if l.Dropped {
		tag = "DROPPED"
	}
	// Names and keys come from the input: yamlcheck.Name quotes one
	// that could break the line or hide text.
	s := fmt.Sprintf("%s %s/%s %s: %s", tag, yamlcheck.Name(l.Kind), yamlcheck.Name(l.Name), yamlcheck.Name(l.Field), l.Reason)
	if l.Detail != "" {
		s += ": " + printable(strings.Join(strings.Fields(l.Detail), " "))
	}
	return s
}

// printable writes the characters of s that a terminal would act on or
// hide (control and format characters, bytes that are not UTF-8) as Go
// escapes: a detail may quote the input (a validation message, a
// namespace), and a line on stderr must show it, not obey it.
func printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) || r == utf8.RuneError }) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case unicode.IsGraphic(r) && r != utf8.RuneError:
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[size:]
	}
	return b.String()
}

// Result is what a conversion produced.
type Result struct {
	// YAML holds the SecretProviderClasses, one YAML document each, in the
	// order of their ExternalSecrets.
	YAML []byte
	// Classes counts them.
	Classes int
	// Lines are the DROPPED and NOTE lines, in input order, at most
	// MaxLines; MoreLines counts those left out.
	Lines       []Line
	MoreLines   int
	moreDropped bool
}

// Dropped reports whether any field was not carried over.
func (r *Result) Dropped() bool {
	if r.moreDropped {
		return true
	}
	for _, l := range r.Lines {
		if l.Dropped {
			return true
		}
	}
	return false
}

// Convert reads every YAML document of input and converts its
// ExternalSecrets, resolving their stores among its SecretStores and
// ClusterSecretStores. Other kinds are skipped. It fails only on input it
// cannot read (not YAML, over a limit, no ExternalSecret); everything
// else is a Line.
func Convert(input []byte, opts Options) (*Result, error) {
	docs, err := readDocuments(input)
	if err != nil {
		return nil, err
	}
	c := &converter{opts: opts, stores: map[storeKey]*yaml.Node{}, parsed: map[storeKey]*store{}, said: map[Line]bool{}}
	var externalSecrets []*yaml.Node
	for _, d := range docs {
		apiVersion, kind := scalarField(d, "apiVersion"), scalarField(d, "kind")
		group, _, _ := strings.Cut(apiVersion, "/")
		if group != esoGroup {
			continue
		}
		switch kind {
		case "ExternalSecret", "ClusterExternalSecret":
			externalSecrets = append(externalSecrets, d)
		case "SecretStore", "ClusterSecretStore":
			key := storeKey{kind: kind, name: nameOf(d)}
			if kind == "SecretStore" {
				key.namespace = c.namespaceOf(d)
			}
			c.stores[key] = d
		}
	}
	if len(externalSecrets) == 0 {
		return nil, errors.New("no ExternalSecret (external-secrets.io) in the input")
	}
	var out bytes.Buffer
	res := &Result{}
	for _, d := range externalSecrets {
		cls := c.externalSecret(d)
		if cls == nil {
			continue
		}
		doc, problems := cls.render()
		if len(problems) > 0 {
			for _, p := range problems {
				c.drop(cls.ref, "spec", "invalid", p)
			}
			continue
		}
		if res.Classes > 0 {
			out.WriteString("---\n")
		}
		out.Write(doc)
		res.Classes++
	}
	res.YAML = out.Bytes()
	res.Lines, res.MoreLines, res.moreDropped = c.lines, c.more, c.moreDropped
	return res, nil
}

const esoGroup = "external-secrets.io"

// readDocuments parses input into its YAML documents' root mappings (a
// List's items each),
// within the limits (limits.go): the size before any parsing, the count
// and depth of documents as they are read.
func readDocuments(input []byte) ([]*yaml.Node, error) {
	if len(input) > MaxInputBytes {
		return nil, fmt.Errorf("the input is %d bytes, over the limit of %d; convert the manifests in several runs", len(input), MaxInputBytes)
	}
	if err := checkNesting(input); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(input))
	var docs []*yaml.Node
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading YAML document %d: %w", i+1, err)
		}
		if i >= MaxDocuments {
			return nil, fmt.Errorf("the input holds more than %d YAML documents; convert the manifests in several runs", MaxDocuments)
		}
		if len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
			continue
		}
		if aliases(&n) > 0 {
			return nil, fmt.Errorf("YAML document %d (line %d) uses aliases (*name); ESO manifests need none: write the values out", i+1, n.Line)
		}
		docs = append(docs, listItems(n.Content[0])...)
		if len(docs) > MaxDocuments {
			return nil, fmt.Errorf("the input holds more than %d manifests; convert them in several runs", MaxDocuments)
		}
	}
	return docs, nil
}

// listItems returns the manifests of a kind: List (what kubectl get -o
// yaml prints for several objects), or the document itself.
func listItems(d *yaml.Node) []*yaml.Node {
	items := field(d, "items")
	if scalarField(d, "kind") != "List" || scalarField(d, "apiVersion") != "v1" || items == nil || items.Kind != yaml.SequenceNode {
		return []*yaml.Node{d}
	}
	var out []*yaml.Node
	for _, item := range items.Content {
		if item.Kind == yaml.MappingNode {
			out = append(out, item)
		}
	}
	return out
}

// aliases counts the alias nodes under n: a converter that copies values
// must not expand a billion laughs.
func aliases(n *yaml.Node) int {
	count := 0
	stack := []*yaml.Node{n}
	for len(stack) > 0 {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if top.Kind == yaml.AliasNode {
			count++
			continue
		}
		stack = append(stack, top.Content...)
	}
	return count
}

// storeKey names a store: a SecretStore by namespace and name, a
// ClusterSecretStore by name.
type storeKey struct{ kind, namespace, name string }

// ref names a manifest in Lines.
type ref struct{ kind, name string }

type converter struct {
	opts   Options
	stores map[storeKey]*yaml.Node
	// parsed are the stores read so far (nil: not convertible), so that a
	// store's lines are printed once however many ExternalSecrets use it.
	parsed map[storeKey]*store
	lines  []Line
	said   map[Line]bool
	// more counts the lines past MaxLines; moreDropped says one dropped
	// a field.
	more        int
	moreDropped bool
}

func (c *converter) drop(r ref, field, key, detail string) {
	c.add(Line{Dropped: true, Kind: r.kind, Name: r.name, Field: field, Reason: reason(key), Detail: detail})
}

func (c *converter) note(r ref, field, key string) {
	c.add(Line{Kind: r.kind, Name: r.name, Field: field, Reason: reason(key)})
}

// add appends l unless it was said already (a store's line, for the
// second ExternalSecret that uses the store).
func (c *converter) add(l Line) {
	if c.said[l] {
		return
	}
	if len(c.lines) >= MaxLines {
		c.more++
		c.moreDropped = c.moreDropped || l.Dropped
		return
	}
	c.said[l] = true
	c.lines = append(c.lines, l)
}

// fields returns the mapping n's entries by key, dropping (as unknown)
// keys not in known; a node that is not a mapping is dropped as
// malformed and gives nil.
func (c *converter) fields(r ref, n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		c.drop(r, path, "malformed", "want a mapping")
		return nil
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if !slices.Contains(known, k) {
			c.drop(r, join(path, k), "unknown", "")
			continue
		}
		out[k] = n.Content[i+1]
	}
	return out
}

// scalar returns the scalar f[key] ("" when absent); another shape is
// dropped as malformed.
func (c *converter) scalar(r ref, f map[string]*yaml.Node, key, path string) string {
	n, ok := f[key]
	if !ok {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		c.drop(r, join(path, key), "malformed", "want a single value")
		return ""
	}
	return n.Value
}

// boolean reads the boolean f[key] (false when absent) as kubectl reads
// a manifest, in YAML 1.1: unquoted, true is also True, TRUE, yes, on, y
// and false their opposites. A quoted value is a string, which the API
// refuses for a boolean: dropped as malformed.
func (c *converter) boolean(r ref, f map[string]*yaml.Node, key, path string) bool {
	n, ok := f[key]
	if !ok {
		return false
	}
	var b bool
	plain := n.Style == 0 || (n.Style == yaml.TaggedStyle && n.ShortTag() == "!!bool")
	if n.Kind != yaml.ScalarNode || !plain || n.Decode(&b) != nil {
		c.drop(r, join(path, key), "malformed", "want true or false")
		return false
	}
	return b
}

// stringMap reads a mapping of strings (labels, annotations, template
// data), in sorted order.
func (c *converter) stringMap(r ref, n *yaml.Node, path string) map[string]string {
	if n.Kind != yaml.MappingNode {
		c.drop(r, path, "malformed", "want a mapping of strings")
		return nil
	}
	if !c.within(r, n, path, max(maxData, maxMetadata)) {
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			c.drop(r, join(path, k), "malformed", "want a string")
			continue
		}
		out[k] = v.Value
	}
	return out
}

// list returns the items of the sequence n; another shape is malformed.
func (c *converter) list(r ref, n *yaml.Node, path string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		c.drop(r, path, "malformed", "want a list")
		return nil
	}
	return n.Content
}

func (c *converter) namespaceOf(d *yaml.Node) string {
	if m := field(d, "metadata"); m != nil {
		if ns := scalarField(m, "namespace"); ns != "" {
			return ns
		}
	}
	return c.opts.Namespace
}

func nameOf(d *yaml.Node) string {
	if m := field(d, "metadata"); m != nil {
		return scalarField(m, "name")
	}
	return ""
}

// field returns the value of key in mapping n, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalarField(n *yaml.Node, key string) string {
	if v := field(n, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
