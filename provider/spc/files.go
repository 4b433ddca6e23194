package spc

import (
	"fmt"
	"io/fs"
	"sort"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/internal/tmpl"
	"github.com/coffer-csi/coffer/internal/yamlcheck"
)

// KeyFiles declares templated files (coffer extension): each is rendered
// with the template language of syncSecrets over the values of the class's
// objects and jmesPath entries.
const KeyFiles = "files"

// Keys of a files entry and of the object fields this file adds.
var fileKeys = []string{"path", "template", "filePermission"}

const (
	keyOptional  = "optional"
	keyWriteFile = "writeFile"
)

// FileTemplate is one validated entry of the files parameter.
type FileTemplate struct {
	// Index is the entry's position in the files list.
	Index int
	// Path is the file's path in the mount, as written (never translated).
	Path     string
	Mode     fs.FileMode
	Template *tmpl.Template
	// Text is the template as written: it decides the content as much as
	// the inputs do, so the file's version covers it.
	Text string
	// Inputs are the values the template names, sorted by key.
	Inputs []Input
}

// Input is a value a template reads: an object's own value (Entry -1) or
// a jmesPath entry's, by the key the template names it with.
type Input struct {
	Key    string
	Object *Object
	Entry  int
}

// Describe names the file in messages.
func (f *FileTemplate) Describe() string {
	return fmt.Sprintf("files[%d] (%s)", f.Index, yamlcheck.Name(f.Path))
}

// TemplateKey is the key a template reads an object's value by: its
// objectAlias, or the file name it writes when it has none (prod/db:
// prod_db).
func (o *Object) TemplateKey() string {
	if o.Alias != "" {
		return o.Alias
	}
	return o.Path
}

// templateKeys are the keys templates may read, each with its input, and
// the keys of objects that have no single value (path, filters and
// expandJSON objects).
func templateKeys(objects []*Object) (map[string]Input, map[string]*Object) {
	keys := map[string]Input{}
	many := map[string]*Object{}
	for _, o := range objects {
		if o.WritesDirectory() {
			many[o.TemplateKey()] = o
		} else {
			keys[o.TemplateKey()] = Input{Key: o.TemplateKey(), Object: o, Entry: -1}
		}
		for j, e := range o.JMESPath {
			keys[e.Alias] = Input{Key: e.Alias, Object: o, Entry: j}
		}
	}
	return keys, many
}

// parseFiles reads the files parameter: a YAML list of {path, template,
// filePermission?}. Every template must parse and name only values the
// class's objects give.
func parseFiles(raw string, objects []*Object, defaultMode fs.FileMode, ps *yamlcheck.Checker) []*FileTemplate {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
		ps.Add("parameters", KeyFiles, "is not valid YAML: %v", err)
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		ps.Add("parameters", KeyFiles, "must be a YAML list of {path, template} entries, found a %s at line %d", yamlcheck.KindName(list), list.Line)
		return nil
	}
	if !ps.Within(list, "parameters", KeyFiles, MaxFiles, "write several values into one file, or split the files across several SecretProviderClasses") {
		return nil
	}
	keys, many := templateKeys(objects)
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	op := objectParser{ps: ps}
	var files []*FileTemplate
	for i, item := range list.Content {
		where := fmt.Sprintf("files[%d]", i)
		if item.Kind != yaml.MappingNode {
			ps.Add(where, "", "must be a mapping with path and template, found a %s at line %d", yamlcheck.KindName(item), item.Line)
			continue
		}
		before := len(ps.Problems)
		f := ps.Fields(item, fileKeys, where)
		ft := &FileTemplate{Index: i, Path: ps.Scalar(f, "path", where)}
		if ft.Path == "" {
			ps.Add(where, "path", "is required: the file's path in the mount, such as .pgpass or conf/app.properties")
		} else {
			where = ft.Describe()
			if err := CheckFilePath(ft.Path); err != nil {
				ps.Add(where, "path", "%v; use a plain relative file name", err)
			}
		}
		ft.Mode = op.mode(ps.Scalar(f, "filePermission", where), defaultMode, where, "filePermission")
		tn, ok := f["template"]
		switch {
		case !ok:
			ps.Add(where, "template", "is required: a Go template over the objects' values, such as \"{{ .db_user }}:{{ .db_password }}\"")
			continue
		case tn.Kind != yaml.ScalarNode:
			ps.Add(where, "template", "must be a template string, found a %s at line %d", yamlcheck.KindName(tn), tn.Line)
			continue
		}
		// As written: a template's whitespace (a final newline) is content.
		ft.Text = tn.Value
		t, err := tmpl.Parse(ft.Text)
		if err != nil {
			ps.Add(where, "template", "is not a valid template: %v", err)
			continue
		}
		ft.Template = t
		for _, ref := range t.References() {
			in, ok := keys[ref]
			switch {
			case ok:
				ft.Inputs = append(ft.Inputs, in)
			case many[ref] != nil:
				ps.Add(where, "template", "names %s, which writes a directory of files and has no single value; name an object with one value, or a jmesPath entry's objectAlias", strconv.Quote(ref))
			default:
				hint := "name an object's objectAlias (or, without one, the file it writes) or a jmesPath entry's objectAlias"
				if s := ps.Suggest(ref, names); s != "" && yamlcheck.Distance(ref, s) <= 3 {
					hint = fmt.Sprintf("did you mean %q?", s)
				}
				ps.Add(where, "template", "names %s, which is not a value of this SecretProviderClass; %s", strconv.Quote(ref), hint)
			}
		}
		if len(ps.Problems) == before {
			files = append(files, ft)
		}
	}
	return files
}
