package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/coffer-csi/coffer/internal/tmpl"
	"github.com/coffer-csi/coffer/provider/spc"
)

// templateWording is how template messages name a mount's limit and keys.
var templateWording = tmpl.Wording{
	Limit:      "what remains of the response limit (--max-response-bytes)",
	MissingKey: "reads a key that is missing: a key of a JSON value, or an input the template does not name as {{ .alias }}, {{ $.alias }} or {{ index . \"alias\" }} (only those are its inputs)",
}

// TemplateError is a templated file that could not be rendered. It names
// the file and the template's line and action, never a value.
type TemplateError struct {
	File *spc.FileTemplate
	Err  error
}

func (e *TemplateError) Error() string {
	return fmt.Sprintf("%s: %v (fix the template in the SecretProviderClass's files parameter, or the values it reads)", e.File.Describe(), e.Err)
}

func (e *TemplateError) Unwrap() error { return e.Err }

// TemplateErrors are every templated file that failed, in order.
type TemplateErrors []*TemplateError

func (es TemplateErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

func (es TemplateErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// templates renders each templated file over the files rendered so far,
// all within one budget: output at most left bytes in total, work
// tmpl.WorkFactor times that, and ctx's deadline.
func templates(ctx context.Context, list []*spc.FileTemplate, files []File, left int) ([]File, error) {
	byPath := make(map[string]*File, len(files))
	for i := range files {
		byPath[files[i].Path] = &files[i]
	}
	x := tmpl.NewExecution(ctx, left, templateWording)
	var out []File
	var failed TemplateErrors
	for _, ft := range list {
		values := make(map[string]string, len(ft.Inputs))
		versions := make([][2]string, 0, len(ft.Inputs))
		var err error
		for _, in := range ft.Inputs {
			f, ok := byPath[inputPath(in)]
			if !ok {
				err = fmt.Errorf("its input %q has no value (%s was not fetched)", in.Key, in.Object.Describe())
				break
			}
			values[in.Key] = string(f.Data)
			versions = append(versions, [2]string{in.Key, f.Version})
		}
		var data []byte
		if err == nil {
			data, err = x.Execute(ft.Template, values, left)
		}
		if err != nil {
			failed = append(failed, &TemplateError{File: ft, Err: err})
			continue
		}
		left -= len(data)
		out = append(out, File{Path: ft.Path, Mode: ft.Mode, Data: data, Version: templateVersion(ft, versions), Template: ft})
	}
	if len(failed) > 0 {
		return nil, failed
	}
	return out, nil
}

// inputPath is the file that holds an input's value.
func inputPath(in spc.Input) string {
	if in.Entry >= 0 {
		return in.Object.JMESPath[in.Entry].Path
	}
	return in.Object.Path
}

// templateVersion identifies a templated file's content without revealing
// anything of it: a digest of the template's text and of the AWS version
// of every input (VersionIds and version numbers, never derived from
// values). It changes exactly when the template or one of its inputs does.
func templateVersion(ft *spc.FileTemplate, versions [][2]string) string {
	b, err := json.Marshal(struct {
		Text     string
		Versions [][2]string
	}{ft.Text, versions})
	if err != nil {
		panic(err) // strings always encode
	}
	sum := sha256.Sum256(b)
	return "tmpl-" + hex.EncodeToString(sum[:16])
}
