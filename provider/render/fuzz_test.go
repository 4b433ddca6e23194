package render_test

import (
	"context"
	"fmt"
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
