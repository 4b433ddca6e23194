package esoconvert

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/secretsync"
)

// Limits of the input, checked before it is parsed (size, flow nesting)
// or while its documents are read (their count). ESO's published AWS
// examples are a few hundred bytes, one to three documents, nesting four
// levels of flow at most; a file of every ExternalSecret of a namespace
// fits too. Past them coffer convert refuses the input whole, naming the
// limit: the input is a file its user can split.
const (
	// MaxInputBytes bounds the whole input: the sum of every file.
	// TestHostileInput holds a conversion of inputs at the limits (the
	// most nodes, data entries, unknown fields or ExternalSecrets, small
	// or large) to a heap growing by under 256 MiB, and under 2 GiB
	// allocated in all: each class is written and parsed again, as
	// coffer validate would, so allocation grows with the entries (about
	// 1.2 KiB per byte of input at most); the time is logged.
	MaxInputBytes = 1 << 20
	// MaxDocuments bounds the YAML documents of the input, so the
	// classes one run writes (each parsed and checked).
	MaxDocuments = 1024
	// MaxLines bounds the DROPPED and NOTE lines one conversion prints;
	// past it they are counted (Result.MoreLines).
	MaxLines = 1000
	// MaxNesting bounds flow collections ([ and {) open at once.
	// gopkg.in/yaml.v3 stops at 10,000; a manifest needs a handful.
	MaxNesting = 64
)

// checkNesting refuses input whose flow collections nest deeper than
// MaxNesting, before the YAML parser recurses into them. It counts
// brackets outside comments, inside quotes too: a template's "{{" and
// "}}" close what they open, and a manifest that opens 64 more brackets
// than it closes is not one anybody wrote.
func checkNesting(input []byte) error {
	depth, line, comment := 0, 1, false
	for i, b := range input {
		switch {
		case b == '\n':
			line++
			comment = false
		case comment:
		case b == '#' && (i == 0 || input[i-1] == ' ' || input[i-1] == '\n' || input[i-1] == '\t'):
			comment = true
		case b == '[' || b == '{':
			if depth++; depth > MaxNesting {
				return fmt.Errorf("line %d: more than %d brackets ([ or {) open at once; ESO manifests nest a few", line, MaxNesting)
			}
		case (b == ']' || b == '}') && depth > 0:
			depth--
		}
	}
	return nil
}

// within reports whether the list or mapping n at path holds at most
// limit entries, the limit coffer's parser puts on what n becomes;
// otherwise the ExternalSecret is not converted (its entries are not
// read).
func (c *converter) within(r ref, n *yaml.Node, path string, limit int) bool {
	count := len(n.Content)
	if n.Kind == yaml.MappingNode {
		count /= 2
	}
	if count <= limit {
		return true
	}
	c.drop(r, path, "invalid", fmt.Sprintf("%d entries, over coffer's limit of %d", count, limit))
	return false
}

// Limits of what one ExternalSecret becomes, as secretsync.Parse checks
// them.
const (
	maxData     = secretsync.MaxDataEntries
	maxDataFrom = secretsync.MaxDataFrom
	maxMetadata = secretsync.MaxMetadataEntries
)
