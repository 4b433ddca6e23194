// Package render turns fetched values into the files and object versions of
// a Mount response: the object's own file, one file per jmesPath entry, file
// modes, and the response size limit.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

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
	Object  *spc.Object
}

// Options bound the response.
type Options struct {
	// MaxResponseBytes bounds the total file contents (default
	// DriverMaxResponseBytes).
	MaxResponseBytes int
}

// Files renders values (one per object, in object order) into files. It
// fails as a whole, listing every object that could not be rendered.
func Files(values []fetch.Value, opts Options) ([]File, error) {
	var files []File
	var failed fetch.Errors
	for _, v := range values {
		o := v.Object
		files = append(files, File{Path: o.Path, Mode: o.Mode, Data: v.Data, Version: v.Version, Object: o})
		if len(o.JMESPath) == 0 {
			continue
		}
		extracted, err := extract(v)
		if err != nil {
			failed = append(failed, err...)
			continue
		}
		files = append(files, extracted...)
	}
	if len(failed) > 0 {
		return nil, failed
	}
	if err := checkSize(files, opts.MaxResponseBytes); err != nil {
		return nil, err
	}
	return files, nil
}

// extract applies an object's jmesPath entries. A jmesPath file's version is
// its object's version: the extracted content can only change when the
// object's content does.
func extract(v fetch.Value) ([]File, fetch.Errors) {
	o := v.Object
	doc, err := decodeJSON(v.Data, false)
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
	exact, _ := decodeJSON(v.Data, true)
	var files []File
	var errs fetch.Errors
	for j, e := range o.JMESPath {
		fail := func(detail, hint string) {
			errs = append(errs, &fetch.ObjectError{Object: o, Entry: j, Kind: fetch.KindInvalid, Detail: detail, Hint: hint})
		}
		result, err := e.Compiled.Search(doc)
		if err != nil {
			fail(fmt.Sprintf("evaluating path %q failed: %v", e.Expression, err), "check the expression against the secret's JSON structure")
			continue
		}
		if _, isNumber := result.(float64); isNumber {
			if n, err := e.Compiled.Search(exact); err == nil {
				if num, ok := n.(json.Number); ok {
					result = num
				}
			}
		}
		data, err := scalarText(result)
		if err != nil {
			fail(fmt.Sprintf("path %q %v", e.Expression, err), "check the key names in the expression; they are case-sensitive")
			continue
		}
		files = append(files, File{Path: e.Path, Mode: e.Mode, Data: data, Version: v.Version, Object: o})
	}
	return files, errs
}

// decodeJSON parses a JSON document keeping numbers as written. Its error
// gives only the byte offset: encoding/json messages quote the offending
// character, which is part of a secret.
func decodeJSON(data []byte, exactNumbers bool) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if exactNumbers {
		dec.UseNumber()
	}
	var doc any
	if err := dec.Decode(&doc); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("syntax error at byte %d", syn.Offset)
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return nil, fmt.Errorf("unexpected JSON type at byte %d", typ.Offset)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("the value is empty or truncated")
		}
		return nil, errors.New("the value cannot be decoded")
	}
	if dec.More() {
		return nil, fmt.Errorf("extra data after the JSON value at byte %d", dec.InputOffset())
	}
	return doc, nil
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
	if limit <= 0 {
		limit = DriverMaxResponseBytes
	}
	total := 0
	perObject := map[*spc.Object]int{}
	for _, f := range files {
		total += len(f.Data)
		perObject[f.Object] += len(f.Data)
	}
	if total <= limit {
		return nil
	}
	type sized struct {
		o *spc.Object
		n int
	}
	var list []sized
	for o, n := range perObject {
		list = append(list, sized{o, n})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].n != list[j].n {
			return list[i].n > list[j].n
		}
		return list[i].o.Index < list[j].o.Index
	})
	var largest []string
	for _, s := range list[:min(3, len(list))] {
		largest = append(largest, fmt.Sprintf("%s %d bytes", s.o.Describe(), s.n))
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
