package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
// tmpl.WorkFactor times that, and ctx's deadline. The templates run
// through ev (in this process when nil), in one job.
func templates(ctx context.Context, ev Evaluator, tenant string, list []*spc.FileTemplate, files []File, left int) ([]File, error) {
	byPath := make(map[string]*File, len(files))
	for i := range files {
		byPath[files[i].Path] = &files[i]
	}
	job := &TemplateJob{Wording: templateWording, OutputLimit: left, Left: left}
	errs := make([]error, len(list))
	versions := make([][][2]string, len(list))
	var sent []int // the index in list of each job item
	for i, ft := range list {
		values := make(map[string]string, len(ft.Inputs))
		for _, in := range ft.Inputs {
			f, ok := byPath[inputPath(in)]
			if !ok {
				errs[i] = fmt.Errorf("its input %q has no value (%s was not fetched)", in.Key, in.Object.Describe())
				break
			}
			values[in.Key] = string(f.Data)
			versions[i] = append(versions[i], [2]string{in.Key, f.Version})
		}
		if errs[i] == nil {
			job.Inputs = append(job.Inputs, values)
			job.Items = append(job.Items, TemplateItem{Text: ft.Text, Input: len(job.Inputs) - 1, parsed: ft.Template})
			sent = append(sent, i)
		}
	}
	datas := make([][]byte, len(list))
	if len(sent) > 0 {
		res, err := Evaluate(ctx, ev, tenant, &Job{Templates: job})
		if err == nil && len(res.Templates) != len(sent) {
			err = errors.New("the evaluator gave no answer")
		}
		for k, i := range sent {
			switch {
			case err != nil && len(sent) > 1:
				errs[i] = fmt.Errorf("rendering it and the other %d templated files %w", len(sent)-1, err)
			case err != nil:
				errs[i] = fmt.Errorf("rendering it %w", err)
			case res.Templates[k].Err != "":
				errs[i] = errors.New(res.Templates[k].Err)
			default:
				datas[i] = res.Templates[k].Data
			}
		}
	}
	var out []File
	var failed TemplateErrors
	for i, ft := range list {
		if errs[i] != nil {
			failed = append(failed, &TemplateError{File: ft, Err: errs[i]})
			continue
		}
		out = append(out, File{Path: ft.Path, Mode: ft.Mode, Data: datas[i], Version: templateVersion(ft, versions[i]), Template: ft})
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
