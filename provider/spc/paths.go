package spc

import (
	"fmt"
	"path"
	"strings"
	"unicode"

	"github.com/coffer-csi/coffer/internal/yamlcheck"
)

// The driver's limits on each returned path (pkg/util/fileutil in the driver).
const (
	maxPathLength     = 4096
	maxFileNameLength = 255
)

// TranslatePath turns an object name or alias into the file path the driver
// writes, as the AWS provider does: with a translation character every "/"
// becomes that character (one flat file); without one, the leading "/" is
// dropped and the rest stays a nested path.
func TranslatePath(name, translation string) string {
	if translation != "" {
		return strings.ReplaceAll(name, "/", translation)
	}
	return strings.TrimLeft(name, "/")
}

// FilePath translates name, as the class or AWS wrote it, into the file
// path the driver writes (TranslatePath) and checks that path. Its error
// quotes name first, as the user knows it, and the translated path second
// when translation changed it.
func FilePath(name, translation string) (string, error) {
	p := TranslatePath(name, translation)
	problem := pathProblem(p)
	switch {
	case problem == "":
		return p, nil
	case p == name:
		return p, fmt.Errorf("%s %s", quoteName(name), problem)
	default:
		return p, fmt.Errorf("%s becomes the file path %s, which %s", quoteName(name), quoteName(p), problem)
	}
}

// CheckFilePath reports why p cannot be a file path in a driver response, or
// nil when the driver will accept it. Use FilePath for a name the user or
// AWS wrote, so that the message quotes that name.
func CheckFilePath(p string) error {
	if problem := pathProblem(p); problem != "" {
		return fmt.Errorf("file path %s %s", quoteName(p), problem)
	}
	return nil
}

// pathProblem says what is wrong with p as a file path in a driver response
// ("" when nothing): it must be relative, canonical, with no ".." element
// and no element starting with ".." (the driver's atomic writer owns
// "..data"), and within the driver's length limits. The message follows
// the quoted path: "has ...", "is ...".
func pathProblem(p string) string {
	switch {
	case p == "":
		return "is empty"
	case p == ".":
		return "names the mount itself, not a file in it"
	case strings.HasPrefix(p, "/"):
		return "is absolute; it must be relative to the mount"
	case len(p) > maxPathLength:
		return fmt.Sprintf("is %d bytes long; the driver allows at most %d", len(p), maxPathLength)
	}
	// ".." before canonical form: Clean would suggest a path that climbs out.
	for _, elem := range strings.Split(p, "/") {
		switch {
		case elem == "..":
			return `has a ".." element (a file must stay inside the mount)`
		case strings.HasPrefix(elem, ".."):
			return `has an element starting with ".." (the driver reserves those for its own files)`
		case len(elem) > maxFileNameLength:
			return fmt.Sprintf("has an element of %d bytes; the driver allows at most %d", len(elem), maxFileNameLength)
		}
		for _, r := range elem {
			if r == 0 || unicode.IsControl(r) {
				return "contains a control character"
			}
		}
	}
	if c := path.Clean(p); c != p {
		return fmt.Sprintf("is not canonical (empty, \".\" or trailing path elements); write it as %q", c)
	}
	return ""
}

// quoteName quotes a name for a message, cut short when it is long (the
// length problem says how long).
func quoteName(s string) string { return yamlcheck.Quote(s) }

// parsePathTranslation reads the pathTranslation parameter: empty means the
// default "_", "false" in any case turns translation off, otherwise a single
// character that is valid in a file name.
func parsePathTranslation(v string) (string, error) {
	switch {
	case v == "":
		return "_", nil
	case strings.EqualFold(v, "false"):
		return "", nil
	}
	r := []rune(v)
	if len(r) != 1 {
		return "", fmt.Errorf("%q must be a single character (default \"_\") or \"False\" to keep \"/\" as directories", v)
	}
	if r[0] == '/' || r[0] == 0 || unicode.IsControl(r[0]) {
		return "", fmt.Errorf("%q cannot replace \"/\" in file names; use a character such as \"_\" or \"-\", or \"False\"", v)
	}
	return v, nil
}
