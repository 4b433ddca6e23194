// Package render turns fetched values into the files and object versions of
// a Mount response: the object's own file, one file per jmesPath entry, file
// modes, and the response size limit.
package render

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/coffer-csi/coffer/internal/jmes"
	"github.com/coffer-csi/coffer/internal/work"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/spc"
)

// DriverMaxResponseBytes is the driver's default gRPC receive limit
// (--max-call-recv-msg-size); a larger response never reaches it.
const DriverMaxResponseBytes = 4 << 20

// File is one file of a Mount response.
type File struct {
	Path string
	Mode fs.FileMode
	Data []byte
	// Version is the object version reported for this file: stable while
	// the content is unchanged, different when it changes, never secret.
	Version string
	// Object is the object the file comes from; nil for a templated file,
	// whose Template is set instead.
	Object   *spc.Object
	Template *spc.FileTemplate
	// Unwritten marks the file of an object or jmesPath entry with
	// writeFile: false: it serves templates and Secret sync, and a mount
	// leaves it out of its response (Written).
	Unwritten bool
}

// source names what wrote the file, for messages.
func (f *File) source() string {
	if f.Template != nil {
		return f.Template.Describe()
	}
	return f.Object.Describe()
}

// Written returns the files a mount writes: all but the Unwritten.
func Written(files []File) []File {
	out := make([]File, 0, len(files))
	for _, f := range files {
		if !f.Unwritten {
			out = append(out, f)
		}
	}
	return out
}

// Options bound the response.
type Options struct {
	// Translation is the class's path translation character, applied to
	// names that come from AWS (expanded keys, path and filter members).
	Translation string
	// MaxResponseBytes bounds the total file contents (default
	// DriverMaxResponseBytes).
	MaxResponseBytes int
	// MaxValueBytes bounds each value fetched (0: no bound of its own).
	MaxValueBytes int
	// Templates are rendered after the objects, over their values (a
	// mount's templated files; none for Secret sync).
	Templates []*spc.FileTemplate
	// Evaluator runs jmesPath extraction and templates (nil: in this
	// process); Tenant is the class's namespace, for its fairness.
	Evaluator Evaluator
	Tenant    string
}

// Files renders values (one per object, in object order) into files, then
// the templates over them. It fails as a whole, listing every object that
// could not be rendered, or every template.
//
// Files of objects and entries with writeFile: false are returned marked
// Unwritten, and do not count against the response limit.
//
// jmesPath results are bounded while they are computed: each expression
// may build (in all its intermediate values) no more than a fixed multiple
// of what remains of the response limit plus its document's size, and its
// result must fit in what remains. Evaluation stops when ctx ends.
//
// All the evaluations of one call (every entry, written or not, and every
// template) also draw from one shared budget (see MountWork): the one ctx
// carries (work.NewContext), so that a caller rendering in several calls
// (Secret sync, one object at a time) shares one, or else a new one.
func Files(ctx context.Context, values []fetch.Value, opts Options) ([]File, error) {
	limit := opts.MaxResponseBytes
	if limit <= 0 {
		limit = DriverMaxResponseBytes
	}
	if opts.Evaluator != nil {
		opts.Evaluator = &firstFailure{ev: opts.Evaluator}
	}
	if work.FromContext(ctx) == nil {
		docs, decoding := 0, 0
		for _, v := range values {
			if len(v.Object.JMESPath) > 0 {
				docs += len(v.Data)
				decoding += decodeCost(v.Data)
			}
		}
		ctx = work.NewContext(ctx, work.New(min(MountWork(limit, docs)+decoding, MaxWork)))
	}
	var files []File
	var failed fetch.Errors
	used := 0
	for _, v := range values {
		if err := checkValueSize(v, opts.MaxValueBytes); err != nil {
			failed = append(failed, err)
			continue
		}
		own, errs := objectFiles(v, opts.Translation)
		failed = append(failed, errs...)
		if v.Object.NoFile && !v.Object.WritesDirectory() {
			markUnwritten(own)
		}
		files = append(files, own...)
		used += dataSize(Written(own))
		if len(v.Object.JMESPath) == 0 {
			continue
		}
		extracted, err := extractWith(ctx, opts.Evaluator, opts.Tenant, v, limit, used)
		for i := range extracted {
			extracted[i].Unwritten = v.Object.JMESPath[entryOf(v.Object, extracted[i].Path)].NoFile
		}
		used += dataSize(Written(extracted))
		failed = append(failed, err...)
		files = append(files, extracted...)
	}
	if len(failed) > 0 {
		return nil, failed
	}
	if len(opts.Templates) > 0 {
		rendered, err := templates(ctx, opts.Evaluator, opts.Tenant, opts.Templates, files, max(0, limit-used))
		if err != nil {
			return nil, err
		}
		files = append(files, rendered...)
	}
	// Paths from the AWS side (expanded keys, path and filter members) are
	// only known now; names given in the class were checked when parsed.
	if err := checkCollisions(files); err != nil {
		return nil, err
	}
	if err := checkSize(files, limit); err != nil {
		return nil, err
	}
	return files, nil
}

// checkValueSize refuses a value (or member) over the bound before any
// parsing: a huge value must not cost memory and CPU in JSON decoding.
func checkValueSize(v fetch.Value, limit int) *fetch.ObjectError {
	if limit <= 0 {
		return nil
	}
	largest := len(v.Data)
	for _, m := range v.Members {
		largest = max(largest, len(m.Data))
	}
	if largest <= limit {
		return nil
	}
	return &fetch.ObjectError{Object: v.Object, Entry: -1, Kind: fetch.KindInvalid,
		Detail: fmt.Sprintf("a value is %d bytes, over the limit of %d (--max-value-bytes)", largest, limit),
		Hint:   "store smaller values, or raise --max-value-bytes"}
}

// objectFiles renders an object's own content: its value as one file, or
// one file per top-level key (expandJSON), or one per member (path or
// filters), decoded as the object says.
func objectFiles(v fetch.Value, translation string) ([]File, fetch.Errors) {
	o := v.Object
	fail := func(detail, hint string) fetch.Errors {
		return fetch.Errors{{Object: o, Entry: -1, Kind: fetch.KindInvalid, Detail: detail, Hint: hint}}
	}
	switch {
	case o.Bulk():
		files := make([]File, 0, len(v.Members))
		for _, m := range v.Members {
			data, err := decode(o.Decoding, m.Data)
			if err != nil {
				return nil, fail(fmt.Sprintf("member %q is not valid %s (%v)", m.Name, o.Decoding, err), "store it encoded, or remove decoding")
			}
			name, err := spc.FilePath(m.Name, translation)
			if err != nil {
				return nil, fail(fmt.Sprintf("member %v", err), "rename it in AWS, or choose the members with filters")
			}
			files = append(files, File{Path: o.Path + "/" + name, Mode: o.Mode, Data: data, Version: m.Version, Object: o})
		}
		return files, nil
	case o.ExpandJSON:
		doc, err := jmes.DecodeJSON(v.Data, true)
		if err != nil {
			return nil, fail(fmt.Sprintf("expandJSON needs a JSON object, but the value is not valid JSON (%v)", err), "store the secret as a JSON object, or remove expandJSON")
		}
		fields, ok := doc.(map[string]any)
		if !ok {
			return nil, fail("expandJSON needs a JSON object, but the value is a JSON "+jsonKind(doc), "store the secret as a JSON object, or remove expandJSON")
		}
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		files := make([]File, 0, len(keys))
		for _, k := range keys {
			text, err := scalarText(fields[k])
			if err != nil {
				continue // a null value has no file, as a missing key would not
			}
			data, err := decode(o.Decoding, text)
			if err != nil {
				return nil, fail(fmt.Sprintf("key %q is not valid %s (%v)", k, o.Decoding, err), "store it encoded, or remove decoding")
			}
			name, err := spc.FilePath(k, translation)
			if err != nil {
				return nil, fail(fmt.Sprintf("key %v", err), "rename the key in the secret, or remove expandJSON and select keys with jmesPath")
			}
			files = append(files, File{Path: o.Path + "/" + name, Mode: o.Mode, Data: data, Version: v.Version, Object: o})
		}
		return files, nil
	default:
		data, err := decode(o.Decoding, v.Data)
		if err != nil {
			return nil, fail(fmt.Sprintf("the value is not valid %s (%v)", o.Decoding, err), "store it encoded, or remove decoding")
		}
		return []File{{Path: o.Path, Mode: o.Mode, Data: data, Version: v.Version, Object: o}}, nil
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "boolean"
	}
	return "null"
}

// decode undoes a value's stored encoding. Its errors give byte offsets
// only, never content.
func decode(decoding string, data []byte) ([]byte, error) {
	var enc *base64.Encoding
	switch decoding {
	case spc.DecodingNone:
		return data, nil
	case spc.DecodingBase64:
		enc = base64.StdEncoding
	case spc.DecodingBase64URL:
		enc = base64.URLEncoding
	}
	trimmed := bytes.TrimSpace(data)
	// Accept padded and unpadded input alike: both are common.
	if len(trimmed)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	out := make([]byte, enc.DecodedLen(len(trimmed)))
	n, err := enc.Decode(out, trimmed)
	if err != nil {
		var corrupt base64.CorruptInputError
		if errors.As(err, &corrupt) {
			return nil, fmt.Errorf("illegal character or length at byte %d", int64(corrupt))
		}
		return nil, errors.New("cannot be decoded")
	}
	return out[:n], nil
}

// checkCollisions fails when two files share a path, when a file is also a
// directory of another, or when a name from AWS is not a valid file name.
func checkCollisions(files []File) error {
	owner := make(map[string]*File, len(files))
	var failed fetch.Errors
	for i := range files {
		f := &files[i]
		if err := spc.CheckFilePath(f.Path); err != nil {
			failed = append(failed, &fetch.ObjectError{Object: f.Object, Entry: -1, Kind: fetch.KindInvalid,
				Detail: fmt.Sprintf("a name from AWS makes an invalid file: %v", err), Hint: "rename the key or entry in AWS, or give the object a shorter objectAlias"})
			continue
		}
		if prev, dup := owner[f.Path]; dup {
			subject, other := f.Object, prev
			if subject == nil { // a templated path, checked against the class's names when parsed: the clash is with a name from AWS
				subject, other = prev.Object, f
			}
			failed = append(failed, &fetch.ObjectError{Object: subject, Entry: -1, Kind: fetch.KindInvalid,
				Detail: fmt.Sprintf("writes file %q, which %s also writes", f.Path, other.source()), Hint: "give one of them a different objectAlias or path"})
			continue
		}
		owner[f.Path] = f
	}
	for i := range files {
		f := &files[i]
		for dir := parentOf(f.Path); dir != ""; dir = parentOf(dir) {
			if other, clash := owner[dir]; clash {
				detail := fmt.Sprintf("writes %q inside %q, which %s writes as a file", f.Path, dir, other.source())
				subject := f.Object
				if subject == nil {
					subject = other.Object
					detail = fmt.Sprintf("writes %q as a file, and %s writes %q inside it", dir, f.source(), f.Path)
				}
				failed = append(failed, &fetch.ObjectError{Object: subject, Entry: -1, Kind: fetch.KindInvalid, Detail: detail, Hint: "give one of them a different objectAlias or path"})
				break
			}
		}
	}
	if len(failed) > 0 {
		return failed
	}
	return nil
}

func markUnwritten(files []File) {
	for i := range files {
		files[i].Unwritten = true
	}
}

// entryOf finds the jmesPath entry of o that writes path.
func entryOf(o *spc.Object, path string) int {
	for j, e := range o.JMESPath {
		if e.Path == path {
			return j
		}
	}
	return 0 // extract writes only its entries' paths
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return ""
}

func dataSize(files []File) int {
	n := 0
	for _, f := range files {
		n += len(f.Data)
	}
	return n
}

// Work budget of one jmesPath evaluation: workPerResponseByte per byte left
// of the response limit, workPerDocumentByte per byte of the document (a
// filter may rebuild most of it), plus a floor for small documents. Costs
// are counted as jmes.Cost counts them (about the memory the values take),
// so memory is bounded by a fixed multiple of the response limit and the
// document, never by what an expression asks for.
const (
	workPerResponseByte = 4
	workPerDocumentByte = 32
	workFloor           = 64 << 10
)

// MaxWork caps the work budget one mount, or one class's sync as one
// ServiceAccount, shares across all its evaluations. Charges are at least
// half of what evaluation really allocates (internal/jmes and
// internal/tmpl test it for every function and verb), so one request
// allocates at most about 64 MiB however many entries and templates it
// repeats; an ordinary class (fields selected from a few KiB of JSON, a
// template that formats a connection string) spends a few KiB of it.
const MaxWork = 32 << 20

// decodeCost is what extract's two decodings of a document allocate.
func decodeCost(data []byte) int { return 2 * jmes.DecodeCost(data) }

// MountWork is the budget shared by the evaluations of a request whose
// response limit is limit, over documents of docs bytes in total: what one
// evaluation may build, capped at MaxWork. Files adds what decoding the
// documents costs (within the same cap).
func MountWork(limit, docs int) int {
	return min(workPerResponseByte*limit+workPerDocumentByte*docs+workFloor, MaxWork)
}

// extract applies an object's jmesPath entries. A jmesPath file's version is
// its object's version: the extracted content can only change when the
// object's content does. used is the response size rendered so far, limit
// the response limit.
func extract(ctx context.Context, v fetch.Value, limit, used int) ([]File, fetch.Errors) {
	o := v.Object
	// Decoding (twice: see below) is charged to the shared budget first: a
	// document of small values ([0,0,...]) decodes to forty times its size.
	if shared := work.FromContext(ctx); !shared.Spend(decodeCost(v.Data)) {
		return nil, fetch.Errors{{Object: o, Entry: -1, Kind: fetch.KindInvalid,
			Detail: fmt.Sprintf("decoding the value for jmesPath exceeds the work budget of %d bytes that all the paths and templates of one mount share", shared.Total()),
			Hint:   sharedBudgetHint}}
	}
	doc, err := jmes.DecodeJSON(v.Data, false)
	if err != nil {
		return nil, fetch.Errors{{
			Object: o, Entry: -1, Kind: fetch.KindInvalid,
			Detail: fmt.Sprintf("jmesPath needs a JSON value, but the value is not valid JSON (%v)", err),
			Hint:   "store the secret as a JSON object, or remove jmesPath",
		}}
	}
	// Expressions run on a document with float64 numbers, which JMESPath
	// functions and comparisons understand; a number result is then written
	// as the JSON text the secret holds (exact beyond 2^53), taken from a
	// second decoding that keeps numbers as written.
	exact, _ := jmes.DecodeJSON(v.Data, true)
	var files []File
	var errs fetch.Errors
	for j, e := range o.JMESPath {
		fail := func(detail, hint string) {
			errs = append(errs, &fetch.ObjectError{Object: o, Entry: j, Kind: fetch.KindInvalid, Detail: detail, Hint: hint})
		}
		left := max(0, limit-used)
		allowance := workPerResponseByte*left + workPerDocumentByte*len(v.Data) + workFloor
		result, err := e.Compiled.Search(ctx, doc, allowance)
		if err != nil {
			if errors.Is(err, work.ErrExhausted) {
				fail(sharedBudgetDetail(ctx, e.Expression), sharedBudgetHint)
				continue
			}
			if errors.Is(err, jmes.ErrBudget) {
				fail(fmt.Sprintf("evaluating path %q builds more than %d bytes of data (what remains of the %d-byte response limit, --max-response-bytes, sets the budget)", e.Expression, allowance, limit),
					"simplify the expression; it should select from the secret's JSON, not multiply it")
				continue
			}
			fail(fmt.Sprintf("evaluating path %q failed: %v", e.Expression, err), "check the expression against the secret's JSON structure")
			continue
		}
		if _, isNumber := result.(float64); isNumber {
			if n, err := e.Compiled.Search(ctx, exact, allowance); err == nil {
				if num, ok := n.(json.Number); ok {
					result = num
				}
			}
		}
		// The text is built (twice, with decoding) and kept whether the
		// entry is written or not: it is spent from the shared budget, or
		// a class repeating unwritten entries of the whole document would
		// hold that many copies of it.
		shared := work.FromContext(ctx)
		if !shared.Spend(jmes.TextCost(result, shared.Left())) {
			fail(sharedBudgetDetail(ctx, e.Expression), sharedBudgetHint)
			continue
		}
		data, err := scalarText(result)
		if err != nil {
			fail(fmt.Sprintf("path %q %v", e.Expression, err), "check the key names in the expression; they are case-sensitive")
			continue
		}
		if data, err = decode(e.Decoding, data); err != nil {
			fail(fmt.Sprintf("the value at %q is not valid %s (%v)", e.Expression, e.Decoding, err), "store it encoded, or remove decoding")
			continue
		}
		if len(data) > left {
			fail(fmt.Sprintf("path %q gives %d bytes, more than the %d that remain of the response limit of %d (--max-response-bytes)", e.Expression, len(data), left, limit),
				"select less, split the objects across several SecretProviderClasses, or raise --max-response-bytes")
			continue
		}
		used += len(data)
		files = append(files, File{Path: e.Path, Mode: e.Mode, Data: data, Version: v.Version, Object: o})
	}
	return files, errs
}

const sharedBudgetHint = "select less: paths should select from the secrets' JSON, not multiply it; fewer entries, files or templates, or split the objects across several SecretProviderClasses"

// sharedBudgetDetail says that the request's shared budget ran out at a
// path.
func sharedBudgetDetail(ctx context.Context, expr string) string {
	return fmt.Sprintf("evaluating path %q exceeds the work budget of %d bytes that all the paths and templates of one mount share (written or not)", expr, work.FromContext(ctx).Total())
}

// scalarText renders a JMESPath result as file content: strings as they
// are, numbers and booleans as their JSON text, objects and arrays as
// compact JSON. A missing key (null) is an error, so a typo in a path never
// mounts an empty file.
func scalarText(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, errors.New("matched nothing (the key is missing or null)")
	case string:
		return []byte(x), nil
	case json.Number:
		return []byte(x.String()), nil
	case bool:
		if x {
			return []byte("true"), nil
		}
		return []byte("false"), nil
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, errors.New("produced a value that cannot be written as JSON")
		}
		return b, nil
	}
}

// checkSize fails a response larger than the limit, naming the largest
// objects so the user knows what to split or drop.
func checkSize(files []File, limit int) error {
	total := 0
	type sized struct {
		name  string
		order int // objects first, in object order, then templated files
		n     int
	}
	bySource := map[string]*sized{}
	for i := range files {
		f := &files[i]
		if f.Unwritten {
			continue
		}
		total += len(f.Data)
		name := f.source()
		s, ok := bySource[name]
		if !ok {
			s = &sized{name: name}
			if f.Object != nil {
				s.order = f.Object.Index
			} else {
				s.order = 1<<30 + f.Template.Index
			}
			bySource[name] = s
		}
		s.n += len(f.Data)
	}
	if total <= limit {
		return nil
	}
	var list []*sized
	for _, s := range bySource {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].n != list[j].n {
			return list[i].n > list[j].n
		}
		return list[i].order < list[j].order
	})
	var largest []string
	for _, s := range list[:min(3, len(list))] {
		largest = append(largest, fmt.Sprintf("%s %d bytes", s.name, s.n))
	}
	return &SizeError{Total: total, Limit: limit, Largest: strings.Join(largest, ", ")}
}

// SizeError reports a response over the size limit.
type SizeError struct {
	Total, Limit int
	Largest      string
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("the mount would return %d bytes, over the limit of %d (the driver rejects responses over --max-call-recv-msg-size); largest: %s; split the objects across several SecretProviderClasses or drop large ones",
		e.Total, e.Limit, e.Largest)
}
