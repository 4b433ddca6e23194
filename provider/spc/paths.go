package spc

import (
	"fmt"
	"path"
	"strings"
	"unicode"
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
// TranslatePath applies a class's path translation to a name: with a
// translation character every "/" becomes it, without one the leading "/"
// is dropped.
func TranslatePath(name, translation string) string {
	if translation != "" {
		return strings.ReplaceAll(name, "/", translation)
	}
	return strings.TrimLeft(name, "/")
}

// CheckFilePath reports why p cannot be a file path in a driver response, or
// nil when the driver will accept it: relative, canonical, no ".." element,
// no element starting with ".." (the driver's atomic writer owns "..data"),
// and within the driver's length limits.
func CheckFilePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("the file name is empty")
	case p == ".":
		return fmt.Errorf("file path \".\" names the mount itself, not a file in it")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("file path %q is absolute; it must be relative to the mount", p)
	case len(p) > maxPathLength:
		return fmt.Errorf("file path is %d bytes long; the driver allows at most %d", len(p), maxPathLength)
	case path.Clean(p) != p:
		return fmt.Errorf("file path %q is not canonical (empty, \".\" or trailing path elements); write it as %q", p, path.Clean(p))
	}
	for _, elem := range strings.Split(p, "/") {
		switch {
		case elem == "..":
			return fmt.Errorf("file path %q climbs out of the mount with \"..\"", p)
		case strings.HasPrefix(elem, ".."):
			return fmt.Errorf("file path %q has an element starting with \"..\", which the driver reserves for its own files", p)
		case len(elem) > maxFileNameLength:
			return fmt.Errorf("file path %q has an element of %d bytes; the driver allows at most %d", p, len(elem), maxFileNameLength)
		}
		for _, r := range elem {
			if r == 0 || unicode.IsControl(r) {
				return fmt.Errorf("file path %q contains a control character", p)
			}
		}
	}
	return nil
}

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
