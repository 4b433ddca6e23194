package provider_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// templatedClass reads a database secret only for its templates (no file
// of its own), a hyphenated key by its quoted path, and a parameter.
var templatedClass = map[string]string{
	spc.KeyObjects: `
- objectName: app/db
  objectType: secretsmanager
  objectAlias: db
  writeFile: false
  jmesPath:
    - {path: '"api-key"', objectAlias: apikey, writeFile: false}
- {objectName: /team/host, objectType: ssmparameter, objectAlias: host}
`,
	spc.KeyFiles: `
- path: .pgpass
  filePermission: "0600"
  template: '{{ with fromJson .db }}{{ .host }}:{{ .port }}:*:{{ .username }}:{{ .password }}{{ end }}'
- path: conf/app.env
  template: "HOST={{ .host }}\nAPI_KEY={{ .apikey }}\n"
`,
}

func dbSecret(password string) string {
	b, _ := json.Marshal(map[string]any{"host": "db.internal", "port": 5432, "username": "app", "password": password, "api-key": password + "-key"})
	return string(b)
}

func mountClass(t *testing.T, m *provider.Mounter, class map[string]string, current map[string]string) (*provider.Result, error) {
	t.Helper()
	return m.Mount(context.Background(), provider.Request{Attributes: attributes(t, func(a map[string]string) {
		for k, v := range class {
			a[k] = v
		}
	}), Permission: "420", CurrentVersions: current})
}

func byPath(files []render.File) map[string]render.File {
	out := map[string]render.File{}
	for _, f := range files {
		out[f.Path] = f
	}
	return out
}

// TestTemplatedFiles: a mount writes the templated files (and not the
// sources marked writeFile: false), and a file's version changes exactly
// when one of its inputs does, never showing a value.
func TestTemplatedFiles(t *testing.T) {
	m, fake := nodeMounter(t)
	fake.PutSecretString(region, "app/db", dbSecret(canary+"-pw1"))
	var synced []render.File
	m.AfterMount = func(_ context.Context, mounted provider.Mounted) { synced = mounted.Files }
	res, err := mountClass(t, m, templatedClass, nil)
	if err != nil {
		t.Fatal(err)
	}
	files := byPath(res.Files)
	if len(files) != 3 || files["db"].Path != "" || files["apikey"].Path != "" {
		t.Fatalf("files %v, want host, .pgpass and conf/app.env only", keys(files))
	}
	pg, env := files[".pgpass"], files["conf/app.env"]
	if string(pg.Data) != "db.internal:5432:*:app:"+canary+"-pw1" || pg.Mode != 0o600 {
		t.Errorf(".pgpass = %q, mode %o", pg.Data, pg.Mode)
	}
	if string(env.Data) != "HOST="+canary+"-host\nAPI_KEY="+canary+"-pw1-key\n" || env.Mode != 0o644 {
		t.Errorf("app.env = %q, mode %o", env.Data, env.Mode)
	}
	// Secret sync still sees the sources.
	if s := byPath(synced); s["db"].Path == "" || s["apikey"].Path == "" || !s["db"].Unwritten {
		t.Errorf("AfterMount files %v, want the unwritten sources too", keys(s))
	}
	versions := func(r *provider.Result) map[string]string {
		v := map[string]string{}
		for _, f := range r.Files {
			if strings.Contains(f.Version, canary) || strings.Contains(f.Version, "pw") {
				t.Errorf("version of %s shows a value: %q", f.Path, f.Version)
			}
			v[f.Path] = f.Version
		}
		return v
	}
	v1 := versions(res)
	again, err := mountClass(t, m, templatedClass, v1)
	if err != nil || again.Changed != 0 {
		t.Fatalf("remount unchanged: %v, %d changed", err, again.Changed)
	}
	fake.PutParameter(region, "/team/host", canary+"-host2", "String")
	r3, err := mountClass(t, m, templatedClass, v1)
	if err != nil {
		t.Fatal(err)
	}
	v3 := versions(r3)
	if v3[".pgpass"] != v1[".pgpass"] || v3["conf/app.env"] == v1["conf/app.env"] || r3.Changed != 2 {
		t.Errorf("after the host changed: %v -> %v (%d changed), want host and app.env changed", v1, v3, r3.Changed)
	}
	fake.PutSecretString(region, "app/db", dbSecret(canary+"-pw2"))
	r4, err := mountClass(t, m, templatedClass, v3)
	if err != nil {
		t.Fatal(err)
	}
	v4 := versions(r4)
	if v4[".pgpass"] == v3[".pgpass"] || v4["conf/app.env"] == v3["conf/app.env"] || v4["host"] != v3["host"] || r4.Changed != 2 {
		t.Errorf("after the secret changed: %v -> %v, want both templated files changed", v3, v4)
	}
	if got := string(byPath(r4.Files)[".pgpass"].Data); !strings.HasSuffix(got, canary+"-pw2") {
		t.Errorf(".pgpass after rotation = %q", got)
	}
}

// TestTemplatedFileErrors: a template that fails on the values fails the
// mount with no files, naming the file and the line, never the value.
func TestTemplatedFileErrors(t *testing.T) {
	tests := map[string]struct{ template, want string }{
		"missing JSON key": {`{{ (fromJson .db).nope.deeper }}`, `files[0] (out): line 1, column 13 ({{ .db }}): reads a key that is missing`},
		"not JSON":         {`{{ fromJson .host }}`, `files[0] (out): line 1, column 3 ({{ fromJson .host }}): fromJson: the value is not valid JSON`},
		"required":         {`{{ "" | required "db must be set" }}`, "required: db must be set"},
		"too large":        {`{{ range $i := fromJson "[1,2,3,4,5,6,7,8]" }}{{ $.db }}{{ $.db }}{{ end }}`, "the output exceeds"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m, fake := nodeMounter(t)
			m.MaxResponseBytes = 1024
			fake.PutSecretString(region, "app/db", dbSecret(canary))
			class := map[string]string{spc.KeyObjects: templatedClass[spc.KeyObjects], spc.KeyFiles: "[{path: out, template: '" + strings.ReplaceAll(tc.template, "'", "''") + "'}]"}
			res, err := mountClass(t, m, class, nil)
			if res != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("mount = %v, %v; want no files and %q", res, err, tc.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error shows a value: %v", err)
			}
			if c := provider.ErrorClass(err); c != string(fetch.KindInvalid) {
				t.Errorf("class %q", c)
			}
		})
	}
}

// TestOptionalObjects: a missing optional object leaves its files (and the
// templated files that read it) out; it appears and goes with rotation;
// any other failure of it still fails the mount.
func TestOptionalObjects(t *testing.T) {
	class := map[string]string{
		spc.KeyObjects: `
- {objectName: /team/host, objectType: ssmparameter, objectAlias: host}
- {objectName: app/extra, objectType: secretsmanager, objectAlias: extra, optional: true, jmesPath: [{path: a, objectAlias: extra-a}]}
- {objectName: /team/pinned, objectType: ssmparameter, objectVersion: "7", optional: true}
- {path: /team/none/, objectAlias: none, optional: true}
`,
		spc.KeyFiles: `[{path: uses-extra, template: '{{ .extra }}'}, {path: uses-host, template: '{{ .host }}'}]`,
	}
	m, fake := nodeMounter(t)
	reg := prometheus.NewRegistry()
	m.Metrics = metrics.New(reg, metrics.Options{})
	res, err := mountClass(t, m, class, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(byPath(res.Files)); got != "host uses-host" {
		t.Errorf("files %s, want host and uses-host", got)
	}
	want := map[string]float64{metrics.SkipObjectNotFound: 2, metrics.SkipEmptySelection: 1, metrics.SkipInputSkipped: 1}
	if got := skips(t, reg); len(got) != len(want) || got[metrics.SkipObjectNotFound] != 2 || got[metrics.SkipEmptySelection] != 1 || got[metrics.SkipInputSkipped] != 1 {
		t.Errorf("coffer_optional_skips_total = %v, want %v", got, want)
	}

	// It appears with the next rotation, and goes again.
	fake.PutSecretString(region, "app/extra", `{"a":"`+canary+`-a"}`)
	res, err = mountClass(t, m, class, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(byPath(res.Files)); got != "extra extra-a host uses-extra uses-host" {
		t.Errorf("after it appeared: %s", got)
	}
	fake.DeleteSecret(region, "app/extra")
	res, err = mountClass(t, m, class, nil)
	if err != nil || keys(byPath(res.Files)) != "host uses-host" {
		t.Errorf("after it went: %v %v", res, err)
	}

	// Every other failure still fails the whole mount.
	for name, code := range map[string]string{"access denied": "AccessDeniedException", "throttled": "ThrottlingException", "invalid": "InvalidParameterException", "KMS": "KMSAccessDeniedException"} {
		t.Run(name, func(t *testing.T) {
			fake.ClearFaults()
			defer fake.ClearFaults()
			fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultError, Code: code, Message: "refused"})
			res, err := mountClass(t, m, class, nil)
			if res != nil || err == nil || !strings.Contains(err.Error(), "objects[1] (app/extra)") {
				t.Errorf("mount = %v, %v; want it failed on the optional object", res, err)
			}
		})
	}
	// A missing object that is not optional fails, as before.
	fake.DeleteParameter(region, "/team/host")
	if res, err := mountClass(t, m, class, nil); res != nil || provider.ErrorClass(err) != string(fetch.KindNotFound) {
		t.Errorf("without its required parameter: %v, %v", res, err)
	}
}

func keys(files map[string]render.File) string {
	var out []string
	for k := range files {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func skips(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "coffer_optional_skips_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestHyphenatedPathMount: with numeric api and key fields, the unquoted
// api-key once wrote their difference; now the mount is refused before
// any AWS call, with the quoted form as the fix, and the quoted form reads
// the key.
func TestHyphenatedPathMount(t *testing.T) {
	m, fake := nodeMounter(t)
	fake.PutSecretString(region, "app/keys", `{"api":5,"key":2,"api-key":"`+canary+`"}`)
	class := func(path string) map[string]string {
		return map[string]string{spc.KeyObjects: "- {objectName: app/keys, objectType: secretsmanager, jmesPath: [{path: '" + path + "', objectAlias: k}]}"}
	}
	fake.ResetCalls()
	res, err := mountClass(t, m, class("api-key"), nil)
	if res != nil || !provider.IsInputError(err) || !strings.Contains(err.Error(), `objects[0] (app/keys).jmesPath[0]: field "path"`) || !strings.Contains(err.Error(), `path: '"api-key"'`) {
		t.Fatalf("mount = %v, %v; want it refused with the quoted form", res, err)
	}
	if n := len(fake.Calls()); n != 0 {
		t.Errorf("%d AWS calls for a refused class", n)
	}
	res, err = mountClass(t, m, class(`"api-key"`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(byPath(res.Files)["k"].Data); got != canary {
		t.Errorf(`"api-key" = %q`, got)
	}
}
