package secretsync

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// fileIndex resolves references to the files a SecretProviderClass's
// objects produce.
type fileIndex struct {
	byPath map[string]Source
	// dirs are the directories of objects whose file names come from AWS
	// (path, filters, expandJSON).
	dirs map[string]Source
	// byName holds objectAlias, jmesPath objectAlias and objectName as
	// written, which may differ from file names (pathTranslation).
	byName map[string][]Source
	paths  []string
	// candidates are the names a "did you mean" compares a reference
	// with, and suggest compares them (the parser's Checker.Suggest, which
	// bounds the work; nil: no suggestions).
	candidates []string
	suggest    func(key string, candidates []string) string
}

func indexFiles(cfg *spc.Config) *fileIndex {
	x := &fileIndex{byPath: map[string]Source{}, dirs: map[string]Source{}, byName: map[string][]Source{}}
	if cfg == nil {
		return x
	}
	for _, o := range cfg.Objects {
		own := Source{Path: o.Path, Object: o}
		if o.WritesDirectory() {
			own.Dir = true
			x.dirs[o.Path] = own
		} else {
			x.byPath[o.Path] = own
		}
		if o.Alias != "" {
			x.byName[o.Alias] = append(x.byName[o.Alias], own)
		}
		if !o.Bulk() {
			x.byName[o.Name] = append(x.byName[o.Name], own)
		}
		for _, e := range o.JMESPath {
			src := Source{Path: e.Path, Object: o}
			x.byPath[e.Path] = src
			x.byName[e.Alias] = append(x.byName[e.Alias], src)
		}
	}
	x.paths = slices.Sorted(maps.Keys(x.byPath))
	for _, d := range slices.Sorted(maps.Keys(x.dirs)) {
		x.paths = append(x.paths, d+"/<name>")
	}
	x.candidates = append(slices.Sorted(maps.Keys(x.byName)), x.paths...)
	return x
}

// resolve finds what ref names: a file or directory name first, then a file
// inside a directory whose names come from AWS, then an alias or object name
// as written. The message says why it cannot ("" if it can).
func (x *fileIndex) resolve(ref string) (Source, string) {
	if s, ok := x.byPath[ref]; ok {
		s.Ref = ref
		return s, ""
	}
	if s, ok := x.dirs[ref]; ok {
		s.Ref = ref
		return s, ""
	}
	for dir, s := range x.dirs {
		if strings.HasPrefix(ref, dir+"/") && spc.CheckFilePath(ref) == nil {
			// Known only once AWS answers: checked when the Secret is built.
			return Source{Ref: ref, Path: ref, Object: s.Object}, ""
		}
	}
	found := map[string]Source{}
	for _, s := range x.byName[ref] {
		found[s.Path] = s
	}
	switch len(found) {
	case 1:
		for _, s := range found {
			s.Ref = ref
			return s, ""
		}
	case 0:
		if len(x.paths) == 0 {
			return Source{}, fmt.Sprintf("%q is not a file of this SecretProviderClass, which has no valid objects", ref)
		}
		list := x.paths
		more := ""
		if len(list) > 20 {
			list, more = list[:20], fmt.Sprintf(" (and %d more)", len(x.paths)-20)
		}
		guess := ""
		if s := x.nearest(ref); s != "" {
			guess = fmt.Sprintf("did you mean %q? ", s)
		}
		return Source{}, fmt.Sprintf("%q is not a file this SecretProviderClass writes; %suse one of: %s%s", ref, guess, strings.Join(list, ", "), more)
	}
	return Source{}, fmt.Sprintf("%q names several files (%s); use the file name", ref, strings.Join(slices.Sorted(maps.Keys(found)), ", "))
}

// nearest is the name ref most likely meant, or "".
func (x *fileIndex) nearest(ref string) string {
	if x.suggest == nil {
		return ""
	}
	return x.suggest(ref, x.candidates)
}

// covered returns the files a source stands for: the file, or every file
// under the directory (sorted by path).
func (s Source) covered(files map[string]render.File) []render.File {
	if !s.Dir {
		if f, ok := files[s.Path]; ok {
			return []render.File{f}
		}
		return nil
	}
	var out []render.File
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if strings.HasPrefix(p, s.Path+"/") {
			out = append(out, files[p])
		}
	}
	return out
}
