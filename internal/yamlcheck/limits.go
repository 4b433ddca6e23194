package yamlcheck

import (
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Limits of the "did you mean" suggestions. An edit distance costs the
// product of the two lengths: without these, a class of long names and
// many misspelt references took 31 s of CPU before the identity check.
// With them, one suggestion costs at most MaxSuggestCandidates *
// MaxSuggestLen^2 steps (about a million), and one declaration makes at
// most MaxSuggestions of them; past that, problems are still reported,
// without a suggestion.
const (
	// MaxSuggestLen is the longest name compared: a longer key, or a
	// longer candidate, is not a plausible typo of a key.
	MaxSuggestLen = 64
	// MaxSuggestCandidates is how many candidates one suggestion reads.
	MaxSuggestCandidates = 256
	// MaxSuggestions is how many suggestions one declaration computes.
	MaxSuggestions = 32
)

// Suggest is Nearest, within the declaration's MaxSuggestions: "" once
// they are spent. Use it where the candidates come from the class (file
// names, aliases), whose number and length grow with it; against a fixed
// list of short keys, Nearest costs what reading the key costs.
func (c *Checker) Suggest(key string, candidates []string) string {
	if c.suggested >= MaxSuggestions {
		return ""
	}
	c.suggested++
	return Nearest(key, candidates)
}

// Within reports whether the list or mapping n holds at most limit
// entries. Otherwise it records a problem naming the field, the count,
// the limit and fix, so the caller stops before reading any entry.
func (c *Checker) Within(n *yaml.Node, where, field string, limit int, fix string) bool {
	count := len(n.Content)
	if n.Kind == yaml.MappingNode {
		count /= 2
	}
	if count <= limit {
		return true
	}
	c.Add(where, field, "has %d entries, over the limit of %d; %s", count, limit, fix)
	return false
}

// maxQuoted is how much of a name a message quotes.
const maxQuoted = 100

// Quote writes a user-written name for a message: double-quoted with Go
// escapes (a newline is \n, so a message stays one line), cut to its first
// 100 bytes and "..." when longer.
func Quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(strings.ToValidUTF8(s[:maxQuoted], "")) + "..."
	}
	return strconv.Quote(s)
}

// Name writes a user-written name where a message labels what it is
// about ("objects[2] (prod/db)"): as it is when it is short and printable,
// and as Quote writes it otherwise (a control or invisible character, or
// a long name), so a name cannot break a message into lines or hide text.
func Name(s string) string {
	if len(s) <= maxQuoted && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) || r == unicode.ReplacementChar }) {
		return s
	}
	return Quote(s)
}
