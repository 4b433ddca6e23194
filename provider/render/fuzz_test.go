package render_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

const fuzzCanary = "CANARY-fuzz-4e1b9c"

// FuzzRender: whatever a secret holds and whatever the class asks of it
// (jmesPath, expandJSON, decoding), rendering never panics, never puts the
// value in an error, returns only paths the driver accepts, and allocates
// no more than a fixed multiple of the response limit and the value.
func FuzzRender(f *testing.F) {
	f.Add([]byte(`{"a":"x","b":{"c":1}}`), "a", "", false)
	f.Add([]byte(`{"a":"eA=="}`), "a", "base64", true)
	f.Add([]byte(`not json`), "b.c", "", true)
	f.Add([]byte(`{"../x":"y","":"z"}`), "[0]", "base64url", true)
	f.Add([]byte(`{"a":"x"}`), strings.Repeat("[@,@]|", 22)+"[@,@]", "", false)
	f.Add([]byte(`{"a":"x"}`), "pad_left(a, `1e12`)", "", false)
	f.Fuzz(func(t *testing.T, data []byte, expr, decoding string, expand bool) {
		objects := fmt.Sprintf("- {objectName: s, objectType: secretsmanager, objectAlias: s, expandJSON: %t, decoding: %q, jmesPath: [{path: %q, objectAlias: x, decoding: %q}]}", expand, decoding, expr, decoding)
		cfg, err := spc.Parse(map[string]string{"objects": objects, "region": "us-east-1"}, spc.Options{})
		if err != nil {
			return
		}
		value := append([]byte(fuzzCanary), data...)
		const limit = 16 << 10
		var files []render.File
		got := allocated(func() {
			files, err = render.Files(context.Background(), []fetch.Value{{Object: cfg.Objects[0], Data: value, Version: "v1"}}, render.Options{Translation: cfg.PathTranslation, MaxResponseBytes: limit})
		})
		if bound := uint64(maxAllocPerLimitByte*(limit+len(value)) + allocSlack); got > bound {
			t.Fatalf("allocated %d bytes rendering %d bytes with a %d-byte limit, over %d", got, len(value), limit, bound)
		}
		if err != nil {
			if strings.Contains(err.Error(), fuzzCanary) {
				t.Fatalf("error contains the value: %v", err)
			}
			return
		}
		for _, file := range files {
			if spc.CheckFilePath(file.Path) != nil {
				t.Errorf("rendered an invalid path %q", file.Path)
			}
			if file.Version != "v1" {
				t.Errorf("version %q, want the object's", file.Version)
			}
		}
	})
}

// FuzzTemplateFile: whatever a templated file says, where it goes and
// whatever its inputs hold, parsing and rendering never panic, never put a
// value in an error, write only paths the driver accepts, keep within the
// response limit, and allocate no more than a fixed multiple of it.
func FuzzTemplateFile(f *testing.F) {
	for _, s := range []string{
		`{{ with fromJson .db }}{{ .host }}:{{ .port }}:*:{{ .user }}:{{ .pw }}{{ end }}`,
		`{{ .db | b64enc }}{{ index . "api-key" }}`,
		`{{range fromJson .list}}{{range fromJson $.list}}{{range fromJson $.list}}{{$.db}}{{end}}{{end}}{{end}}`,
		`{{$x := .db}}{{range fromJson .list}}{{$x = printf "%s%s" $x $x}}{{end}}{{$x}}`,
		`{{define "a"}}{{if .}}{{template "a" (slice . 1)}}{{template "a" (slice . 1)}}{{end}}{{end}}{{template "a" .list}}`,
		`{{ printf "%0999999999d" 1 }}`, `{{ range .db }}{{ end }}`, `{{ .nope }}`, `{{ (fromJson .db).x.y }}`,
	} {
		f.Add(s, ".pgpass", `{"host":"h","port":5432,"user":"u","pw":"p"}`, "[0,1,2,3]")
	}
	f.Add("{{ .db }}", "db/x", "x", "[]")
	f.Fuzz(func(t *testing.T, template, path, db, list string) {
		objects := "- {objectName: db, objectType: secretsmanager, jmesPath: [{path: '\"api-key\"', objectAlias: api-key, writeFile: false}]}\n- {objectName: list, objectType: secretsmanager, writeFile: false}"
		files := fmt.Sprintf("[{path: %q, template: %q}]", path, template)
		cfg, err := spc.Parse(map[string]string{"objects": objects, "files": files, "region": "us-east-1"}, spc.Options{})
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		values := []fetch.Value{
			{Object: cfg.Objects[0], Data: []byte(`{"api-key":"` + fuzzCanary + `","v":` + strconv.Quote(fuzzCanary+db) + `}`), Version: "v1"},
			{Object: cfg.Objects[1], Data: []byte(list), Version: "v2"},
		}
		const limit = 16 << 10
		var out []render.File
		got := allocated(func() {
			out, err = render.Files(context.Background(), values, render.Options{MaxResponseBytes: limit, Templates: cfg.Files})
		})
		if bound := uint64(maxAllocPerLimitByte*(limit+len(db)+len(list)) + allocSlack); got > bound {
			t.Fatalf("allocated %d bytes with a %d-byte limit, over %d", got, limit, bound)
		}
		if err != nil {
			if strings.Contains(err.Error(), fuzzCanary) {
				t.Fatalf("error contains a value: %v", err)
			}
			return
		}
		total := 0
		for _, file := range render.Written(out) {
			total += len(file.Data)
			if spc.CheckFilePath(file.Path) != nil {
				t.Errorf("rendered an invalid path %q", file.Path)
			}
			if file.Template != nil && (!strings.HasPrefix(file.Version, "tmpl-") || strings.Contains(file.Version, fuzzCanary)) {
				t.Errorf("templated file version %q", file.Version)
			}
		}
		if total > limit {
			t.Errorf("wrote %d bytes, over the limit of %d", total, limit)
		}
	})
}
