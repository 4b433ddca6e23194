package secretsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/coffer-csi/coffer/internal/jmes"
	"github.com/coffer-csi/coffer/internal/tmpl"
	"github.com/coffer-csi/coffer/internal/work"
	"github.com/coffer-csi/coffer/provider/render"
)

// MaxSecretBytes is the apiserver's limit on a Secret's data.
const MaxSecretBytes = corev1.MaxSecretSize

// Build computes the Secret's data from the files its sources produce (by
// path): dataFrom first (a key in two dataFrom entries is an error), then
// data (which wins over dataFrom, as in ExternalSecret), then the template.
// Errors name keys and files, never values.
//
// Templates are bounded while they run (output, work and steps: see
// tmpl.Execution) and stop when ctx ends.
func (s *Secret) Build(ctx context.Context, files map[string]render.File) (map[string][]byte, error) {
	return s.BuildWith(ctx, files, nil, "")
}

// BuildWith is Build with the template run by ev (in this process when
// nil) as tenant.
func (s *Secret) BuildWith(ctx context.Context, files map[string]render.File, ev render.Evaluator, tenant string) (map[string][]byte, error) {
	values := map[string][]byte{}
	from := map[string]int{}
	shared := work.FromContext(ctx)
	for j, e := range s.DataFrom {
		w := fmt.Sprintf("dataFrom[%d]", j)
		// Decoding a JSON object, and writing its values out again, is
		// charged to the sync's shared budget before it runs: every
		// dataFrom entry decodes its source anew.
		if f, ok := files[e.Source.Path]; ok && !e.Source.Dir && shared != nil && !shared.Spend(jmes.DecodeCost(f.Data)+4*len(f.Data)) {
			return nil, fmt.Errorf("%s: %w", w, work.ErrExhausted)
		}
		kv, err := extractSource(e, files)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", w, err)
		}
		for _, k := range slices.Sorted(maps.Keys(kv)) {
			if msg := checkSecretKey(k); msg != "" {
				return nil, fmt.Errorf("%s: %q (%s) gives key %q, which %s; rename it in AWS, or map the values you need with data", w, e.Source.Ref, e.Source.Object.Describe(), k, msg)
			}
			if prev, dup := from[k]; dup {
				return nil, fmt.Errorf("%s: key %q is also extracted by dataFrom[%d]; a key must come from one place: drop one extract, or name the keys you need with data", w, k, prev)
			}
			from[k] = j
			values[k] = kv[k]
		}
	}
	for j, d := range s.Data {
		f, ok := files[d.Source.Path]
		if !ok {
			return nil, fmt.Errorf("data[%d] (key %q): %s was not written; check the name against the entries in AWS", j, d.Key, d.Source.describe())
		}
		v, err := decode(f.Data, d.Decoding)
		if err != nil {
			return nil, fmt.Errorf("data[%d] (key %q): %s is %v; fix the value in AWS or the decoding", j, d.Key, d.Source.describe(), err)
		}
		values[d.Key] = v
	}
	if t := s.Template; t != nil {
		tctx := make(map[string]string, len(values))
		for k, v := range values {
			tctx[k] = string(v)
		}
		out := map[string][]byte{}
		left := MaxSecretBytes
		if t.MergePolicy == MergeData {
			out = values
			for _, v := range values {
				left -= len(v)
			}
		}
		job := &render.TemplateJob{Wording: templateWording, OutputLimit: MaxSecretBytes, Left: left, Inputs: []map[string]string{tctx}, StopAtFirst: true}
		for _, k := range t.Keys {
			// A template replaces a merged key.
			job.Items = append(job.Items, render.TemplateItem{Text: t.texts[k], Credit: len(out[k])})
		}
		res, err := render.Evaluate(ctx, ev, tenant, &render.Job{Templates: job})
		if err == nil && len(res.Templates) != len(t.Keys) {
			err = fmt.Errorf("the evaluator gave no answer")
		}
		if err != nil {
			return nil, fmt.Errorf("template.data: running the templates %v", err)
		}
		for i, k := range t.Keys {
			if msg := res.Templates[i].Err; msg != "" {
				return nil, fmt.Errorf("template.data[%s]: %s", k, msg)
			}
			out[k] = res.Templates[i].Data
		}
		values = out
	}
	if err := checkContent(s.Type, values); err != nil {
		return nil, err
	}
	return values, nil
}

// checkContent checks what the apiserver would reject, with coffer's
// messages: the type's required keys, valid JSON where the type wants it,
// and the size limit.
func checkContent(t corev1.SecretType, values map[string][]byte) error {
	keys := map[string]bool{}
	total := 0
	for k, v := range values {
		keys[k] = true
		total += len(v)
	}
	if missing := missingKeys(t, keys); missing != "" {
		return fmt.Errorf("a %s Secret needs %s; the declaration produced %s", t, missing, strings.Join(slices.Sorted(maps.Keys(keys)), ", "))
	}
	for _, k := range jsonKeys[t] {
		if _, err := decodeJSON(values[k]); err != nil {
			return fmt.Errorf("key %q of a %s Secret must be JSON, and is %v", k, t, err)
		}
	}
	if total > MaxSecretBytes {
		return fmt.Errorf("the Secret would hold %d bytes, over Kubernetes' limit of %d; split it into several Secrets", total, MaxSecretBytes)
	}
	if len(values) == 0 {
		return fmt.Errorf("the declaration produced no keys (an empty JSON object extracted?); coffer does not write an empty Secret")
	}
	return nil
}

// jsonKeys are keys the apiserver parses as JSON.
var jsonKeys = map[corev1.SecretType][]string{
	corev1.SecretTypeDockerConfigJson: {corev1.DockerConfigJsonKey},
	corev1.SecretTypeDockercfg:        {corev1.DockerConfigKey},
}

// describe names the file a reference resolved to, quoting the reference
// as the declaration wrote it first when the file's path differs from it
// (an objectName "dev/db" writes the file "dev_db").
func (s Source) describe() string {
	if s.Ref != "" && s.Ref != s.Path {
		return fmt.Sprintf("%q (file %q of %s)", s.Ref, s.Path, s.Object.Describe())
	}
	return fmt.Sprintf("file %q (%s)", s.Path, s.Object.Describe())
}

// extractSource reads the keys of a dataFrom source: the files of a
// directory (named by their path in it), or the top-level keys of a JSON
// object.
func extractSource(e ExtractEntry, files map[string]render.File) (map[string][]byte, error) {
	if e.Source.Dir {
		out := map[string][]byte{}
		for _, f := range e.Source.covered(files) {
			v, err := decode(f.Data, e.Decoding)
			if err != nil {
				return nil, fmt.Errorf("file %q (%s) is %v", f.Path, e.Source.Object.Describe(), err)
			}
			out[strings.TrimPrefix(f.Path, e.Source.Path+"/")] = v
		}
		return out, nil
	}
	f, ok := files[e.Source.Path]
	if !ok {
		return nil, fmt.Errorf("%s was not written", e.Source.describe())
	}
	kv, err := extract(f.Data, e.Decoding)
	if err != nil {
		return nil, fmt.Errorf("%s %v; extract needs a JSON object, its top-level keys become Secret keys", e.Source.describe(), err)
	}
	return kv, nil
}

// extract reads the top-level keys of a JSON object: strings as they are,
// other values as their compact JSON text (numbers exactly as written).
func extract(data []byte, d Decoding) (map[string][]byte, error) {
	doc, err := decodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("is %v", err)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("is JSON but not an object")
	}
	out := make(map[string][]byte, len(obj))
	for k, v := range obj {
		var b []byte
		if s, ok := v.(string); ok {
			b = []byte(s)
		} else if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("has key %q whose value cannot be written as JSON", k)
		}
		if b, err = decode(b, d); err != nil {
			return nil, fmt.Errorf("has key %q whose value is %v", k, err)
		}
		out[k] = b
	}
	return out, nil
}

// Hash identifies the content the entry produces from files without
// revealing anything about it: a SHA-256 over the declaration and the AWS
// version of every file it reads (VersionIds and version numbers, which are
// never derived from values). It changes when the declaration or a source
// changes, so it marks a Secret's content as current; unlike a hash of the
// values, it cannot be used to guess a low-entropy value offline.
func (s *Secret) Hash(files map[string]render.File) string {
	type ref struct {
		Key, Path, Decoding string
	}
	doc := struct {
		V              int
		Name, Type     string
		Labels, Annots map[string]string
		Immutable      bool
		Creation       string
		Data           []ref
		From           []ref
		MergePolicy    string
		Templates      map[string]string
		Versions       [][2]string
	}{V: 1, Name: s.Name, Type: string(s.Type), Labels: s.Labels, Annots: s.Annotations, Immutable: s.Immutable, Creation: string(s.CreationPolicy)}
	if !s.TypeSet {
		doc.Type = ""
	}
	versions := map[string]string{}
	cover := func(src Source) {
		for _, f := range src.covered(files) {
			versions[f.Path] = f.Version
		}
	}
	for _, d := range s.Data {
		doc.Data = append(doc.Data, ref{d.Key, d.Source.Path, string(d.Decoding)})
		cover(d.Source)
	}
	for _, d := range s.DataFrom {
		doc.From = append(doc.From, ref{"", d.Source.Path, string(d.Decoding)})
		cover(d.Source)
	}
	if s.Template != nil {
		doc.MergePolicy, doc.Templates = string(s.Template.MergePolicy), s.Template.texts
	}
	for _, p := range slices.Sorted(maps.Keys(versions)) {
		doc.Versions = append(doc.Versions, [2]string{p, versions[p]})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // strings and maps of strings always encode
	}
	sum := sha256.Sum256(b)
	return "v1:" + hex.EncodeToString(sum[:])
}

// changedKeys names the keys whose values differ between two data maps.
func changedKeys(old, new map[string][]byte) []string {
	var out []string
	for k, v := range new {
		if ov, ok := old[k]; !ok || !bytes.Equal(ov, v) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// templateWording is how template messages name a Secret's limit and keys.
var templateWording = tmpl.Wording{
	Limit:      "the Secret's size limit",
	MissingKey: "reads a key the Secret's values do not have (keys are the data and dataFrom keys)",
}

// decodeJSON parses one JSON value. Its errors give only the byte offset:
// encoding/json messages quote the offending character, which is part of
// a secret.
func decodeJSON(data []byte) (any, error) {
	v, err := jmes.DecodeJSON(data, true)
	if err != nil {
		return nil, fmt.Errorf("not valid JSON (%v)", err)
	}
	return v, nil
}

// decode applies a decoding to a value (tmpl.DecodeBase64: padding
// optional, surrounding whitespace ignored, errors give only the offset).
func decode(b []byte, d Decoding) ([]byte, error) {
	switch d {
	case DecodeBase64:
		return tmpl.DecodeBase64(b, false)
	case DecodeBase64URL:
		return tmpl.DecodeBase64(b, true)
	}
	return b, nil
}
