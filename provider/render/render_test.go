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

func parse(t testing.TB, objects string) *spc.Config {
	t.Helper()
	cfg, err := spc.Parse(map[string]string{"objects": objects, "region": "us-east-1"}, spc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestJMESPathRendering(t *testing.T) {
	cfg := parse(t, `
- objectName: db
  objectType: secretsmanager
  jmesPath:
    - {path: user, objectAlias: user}
    - {path: port, objectAlias: port}
    - {path: big, objectAlias: big}
    - {path: ratio, objectAlias: ratio}
    - {path: on, objectAlias: on}
    - {path: nested, objectAlias: nested}
    - {path: "list[?n > `+"`1`"+`].v | [0]", objectAlias: filtered}
`)
	data := `{"user":"app","port":5432,"big":12345678901234567890,"ratio":0.25,"on":false,"nested":{"a":[1,2]},"list":[{"n":1,"v":"x"},{"n":2,"v":"y"}]}`
	files, err := render.Files(context.Background(), []fetch.Value{{Object: cfg.Objects[0], Data: []byte(data), Version: "v1"}}, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"db": data, "user": "app", "port": "5432", "big": "12345678901234567890", "ratio": "0.25", "on": "false", "nested": `{"a":[1,2]}`, "filtered": "y"}
	for _, f := range files {
		if f.Version != "v1" {
			t.Errorf("%s: version %q, want the object's", f.Path, f.Version)
		}
		if w, ok := want[f.Path]; !ok || string(f.Data) != w {
			t.Errorf("%s = %q, want %q", f.Path, f.Data, w)
		}
		delete(want, f.Path)
	}
	if len(want) != 0 {
		t.Errorf("missing files: %v", want)
	}
}

func TestJMESPathErrorsNeverEchoTheValue(t *testing.T) {
	const canary = "CANARY-render-91c"
	tests := map[string]struct {
		data, path, want string
	}{
		"not JSON":      {canary + " {", "a", "not valid JSON (syntax error at byte 1)"},
		"trailing data": {`{"a":"` + canary + `"} x`, "a", "extra data after the JSON value"},
		"missing key":   {`{"a":"` + canary + `"}`, "b", `path "b" matched nothing`},
		"null value":    {`{"a":null,"b":"` + canary + `"}`, "a", "matched nothing"},
		"empty":         {``, "a", "empty or truncated"},
		// The JMESPath library's own type errors print the value.
		"abs":           {`{"a":"` + canary + `"}`, "abs(a)", "function abs() needs number as argument 1, not a string"},
		"sum":           {`{"a":["` + canary + `"]}`, "sum(a)", "function sum() needs array[number] as argument 1, not an array"},
		"keys":          {`{"a":"` + canary + `"}`, "keys(a)", "function keys() needs object as argument 1, not a string"},
		"starts_with":   {`{"a":"` + canary + `","n":1}`, "starts_with(n, a)", "function starts_with() needs string as argument 1, not a number"},
		"pad width":     {`{"a":"` + canary + `"}`, "pad_left(a, a)", "function pad_left() needs number as argument 2, not a string"},
		"pad negative":  {`{"a":"` + canary + `"}`, "pad_left(a, `-1`)", "function pad_left() failed on this value"},
		"pad char":      {`{"a":"` + canary + `"}`, "pad_left('x', `3`, a)", "function pad_left() failed on this value"},
		"sort_by mixed": {`{"a":[{"k":"` + canary + `"},{"k":1}]}`, "sort_by(a, &k)", "failed on this value"},
		"join":          {`{"a":["` + canary + `",1]}`, "join(',', a)", "function join() needs array[string] as argument 2, not an array"},
		"to_number":     {`{"a":"` + canary + `"}`, "to_number(a)", "matched nothing"},
		"map":           {`{"a":["` + canary + `"]}`, "map(&abs(@), a)", "function abs() needs number"},
		"merge":         {`{"a":"` + canary + `"}`, "merge(a)", "function merge() needs object as argument 1, not a string"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := parse(t, "- {objectName: s, objectType: secretsmanager, jmesPath: [{path: \""+tc.path+"\", objectAlias: x}]}")
			_, err := render.Files(context.Background(), []fetch.Value{{Object: cfg.Objects[0], Data: []byte(tc.data), Version: "v"}}, render.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error echoes the value: %v", err)
			}
		})
	}
}

func BenchmarkRender(b *testing.B) {
	var objects strings.Builder
	var values []fetch.Value
	for i := range 20 {
		fmt.Fprintf(&objects, "- {objectName: s%02d, objectType: secretsmanager, jmesPath: [{path: username, objectAlias: u%02d}, {path: password, objectAlias: p%02d}]}\n", i, i, i)
	}
	cfg := parse(b, objects.String())
	for _, o := range cfg.Objects {
		values = append(values, fetch.Value{Object: o, Data: []byte(`{"username":"app","password":"pw","port":5432}`), Version: "v1"})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := render.Files(context.Background(), values, render.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNamesFromAWSQuotedAsWritten: a member or key name from AWS that makes
// an invalid file is reported as AWS has it, then as the file path it
// became, so that the user can find it in AWS.
func TestNamesFromAWSQuotedAsWritten(t *testing.T) {
	tests := map[string]struct {
		objects, translation string
		value                fetch.Value
		want                 string
	}{
		"member of a path, translated": {
			objects: "- {path: /app/prod, objectType: ssmparameter, objectAlias: prod}",
			value:   fetch.Value{Members: []fetch.Member{{Name: "ok", Data: []byte("v")}, {Name: "../x", Data: []byte("v")}}},
			want:    `member "../x" becomes the file path ".._x", which has an element starting with ".."`,
		},
		"member of a path, nested": {
			objects: "- {path: /app/prod, objectType: ssmparameter, objectAlias: prod}", translation: "False",
			value: fetch.Value{Members: []fetch.Member{{Name: "a/../../x", Data: []byte("v")}}},
			want:  `member "a/../../x" has a ".." element`,
		},
		"expandJSON key": {
			objects: "- {objectName: db, objectType: secretsmanager, objectAlias: db, expandJSON: true}",
			value:   fetch.Value{Data: []byte(`{"user":"u","..data/x":"v"}`)},
			want:    `key "..data/x" becomes the file path "..data_x", which has an element starting with ".."`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			params := map[string]string{"objects": tc.objects, "region": "us-east-1"}
			if tc.translation != "" {
				params["pathTranslation"] = tc.translation
			}
			cfg, err := spc.Parse(params, spc.Options{})
			if err != nil {
				t.Fatal(err)
			}
			tc.value.Object = cfg.Objects[0]
			_, err = render.Files(context.Background(), []fetch.Value{tc.value}, render.Options{Translation: cfg.PathTranslation})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

// TestTemplateClashWithNamesFromAWS: a templated path is checked against
// the class's names when it is parsed; one that a name from AWS (an
// expanded key) makes clash fails the mount, naming both.
func TestTemplateClashWithNamesFromAWS(t *testing.T) {
	cfg, err := spc.Parse(map[string]string{"region": "us-east-1",
		"objects": "- {objectName: db, objectType: secretsmanager, expandJSON: true}\n- {objectName: s, objectType: secretsmanager}",
		"files":   "[{path: db/host, template: '{{ .s }}'}, {path: db/port/x, template: '{{ .s }}'}]"}, spc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	values := []fetch.Value{{Object: cfg.Objects[0], Data: []byte(`{"host":"h","port":"1"}`), Version: "v"}, {Object: cfg.Objects[1], Data: []byte("x"), Version: "w"}}
	_, err = render.Files(context.Background(), values, render.Options{Templates: cfg.Files})
	for _, want := range []string{`objects[0] (db): writes file "db/host", which files[0] (db/host) also writes`, `objects[0] (db): writes "db/port" as a file, and files[1] (db/port/x) writes "db/port/x" inside it`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

// TestTemplateDeadline: rendering a templated file stops when the mount's
// deadline passes, naming the file.
func TestTemplateDeadline(t *testing.T) {
	cfg, err := spc.Parse(map[string]string{"region": "us-east-1",
		"objects": "- {objectName: s, objectType: secretsmanager}",
		"files":   `[{path: out, template: '{{ range fromJson "[1,2,3]" }}{{ $.s }}{{ end }}'}]`}, spc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = render.Files(ctx, []fetch.Value{{Object: cfg.Objects[0], Data: []byte("x"), Version: "v"}}, render.Options{Templates: cfg.Files})
	if err == nil || !strings.Contains(err.Error(), `files[0] (out): `) || !strings.Contains(err.Error(), "ran out of time") {
		t.Fatalf("err = %v, want the deadline", err)
	}
}
