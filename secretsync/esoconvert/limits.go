package esoconvert

import "fmt"

// Limits of the input, checked before it is parsed (size, flow nesting)
// or while its documents are read (their count). ESO's published AWS
// examples are a few hundred bytes, one to three documents, nesting four
// levels of flow at most; a file of every ExternalSecret of a cluster
// fits too. Past them coffer convert refuses the input whole, naming the
// limit: the input is a file its user can split.
const (
	// MaxInputBytes bounds the whole input: the sum of every file.
	MaxInputBytes = 8 << 20
	// MaxDocuments bounds the YAML documents of the input.
	MaxDocuments = 4096
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
