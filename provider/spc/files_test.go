package spc_test

import (
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/spc"
)

const filesObjects = `
- {objectName: prod/db, objectType: secretsmanager, objectAlias: db, writeFile: false,
   jmesPath: [{path: '"api-key"', objectAlias: apikey, writeFile: false}]}
- {objectName: /app/host, objectType: ssmparameter, optional: true}
- {path: /app/all/, objectAlias: all}
`

func parseFiles(t *testing.T, files string) (*spc.Config, error) {
	t.Helper()
	return spc.Parse(map[string]string{"region": "us-east-1", "objects": filesObjects, "files": files}, spc.Options{})
}

// TestFiles: templated files, optional objects and writeFile as parsed.
func TestFiles(t *testing.T) {
	cfg, err := parseFiles(t, `
- path: .pgpass
  filePermission: "0600"
  template: '{{ with fromJson .db }}{{ .host }}:{{ .port }}:*:{{ .username }}:{{ .password }}{{ end }}'
- path: conf/app.env
  template: "HOST={{ ._app_host }}\nKEY={{ $.apikey }}\n"
`)
	if err != nil {
		t.Fatal(err)
	}
	db, host := cfg.Objects[0], cfg.Objects[1]
	if !db.NoFile || !db.JMESPath[0].NoFile || db.Optional || !host.Optional || host.NoFile {
		t.Errorf("objects: %+v %+v", db, host)
	}
	if len(cfg.Files) != 2 {
		t.Fatalf("files: %+v", cfg.Files)
	}
	pg, env := cfg.Files[0], cfg.Files[1]
	if pg.Path != ".pgpass" || pg.Mode != 0o600 || len(pg.Inputs) != 1 || pg.Inputs[0] != (spc.Input{Key: "db", Object: db, Entry: -1}) {
		t.Errorf(".pgpass: %+v", pg)
	}
	if env.Path != "conf/app.env" || env.Mode != 0o644 || len(env.Inputs) != 2 ||
		env.Inputs[0] != (spc.Input{Key: "_app_host", Object: host, Entry: -1}) || env.Inputs[1] != (spc.Input{Key: "apikey", Object: db, Entry: 0}) {
		t.Errorf("app.env: %+v", env.Inputs)
	}
	// db and apikey write no file; the host parameter and the directory do.
	if got := cfg.FileCount(); got != 4 {
		t.Errorf("FileCount() = %d, want 4", got)
	}
}

// TestFilesRefused: every problem of templated files, found offline, each
// naming the entry, the field and the fix.
func TestFilesRefused(t *testing.T) {
	tests := map[string]struct{ files, want string }{
		"missing alias":          {`[{path: a, template: '{{ .dbb }}'}]`, `files[0] (a): field "template": names "dbb", which is not a value of this SecretProviderClass; did you mean "db"?`},
		"missing alias index":    {`[{path: a, template: '{{ index . "nope" }}'}]`, `names "nope", which is not a value`},
		"syntax error":           {`[{path: a, template: '{{ .db '}]`, `files[0] (a): field "template": is not a valid template: line 1: unclosed action`},
		"unknown function":       {`[{path: a, template: '{{ .db | nope }}'}]`, `function "nope" not defined`},
		"directory":              {`[{path: a, template: '{{ .all }}'}]`, `names "all", which writes a directory of files and has no single value`},
		"collides with object":   {`[{path: _app_host, template: x}]`, `files[0] (_app_host): field "path": is also written by objects[1] (/app/host)`},
		"collides with jmesPath": {`[{path: apikey, template: x}]`, `is also written by objects[0] (prod/db).jmesPath[0]`},
		"two files":              {`[{path: a, template: x}, {path: a, template: y}]`, `files[1] (a): field "path": is also written by files[0] (a)`},
		"inside a file":          {`[{path: _app_host/x, template: x}]`, `inside "_app_host"`},
		"in a directory":         {`[{path: all, template: x}]`, `writes its files into "all", which files[0] (all) writes as a file`},
		"climbs out":             {`[{path: ../x, template: x}]`, `field "path": file path "../x" has a ".." element`},
		"no path":                {`[{template: x}]`, `files[0]: field "path": is required`},
		"no template":            {`[{path: a}]`, `field "template": is required`},
		"unknown key":            {`[{path: a, template: x, mode: "0600"}]`, `unknown`},
		"bad permission":         {`[{path: a, template: x, filePermission: "999"}]`, `field "filePermission"`},
		"required a value":       {`[{path: a, template: '{{ "" | required .db }}'}]`, `required's message must be a quoted string`},
		"not a list":             {`{path: a}`, `field "files": must be a YAML list`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parseFiles(t, tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
	for name, obj := range map[string]string{
		"optional":  "- {objectName: a, objectType: secretsmanager, optional: maybe}",
		"writeFile": "- {objectName: a, objectType: secretsmanager, writeFile: no-thanks}",
		"jmesPath":  "- {objectName: a, objectType: secretsmanager, jmesPath: [{path: x, objectAlias: y, writeFile: 2}]}",
	} {
		_, err := spc.Parse(map[string]string{"region": "us-east-1", "objects": obj}, spc.Options{})
		if err == nil || !strings.Contains(err.Error(), "is not a boolean") {
			t.Errorf("%s: err = %v, want the boolean refused", name, err)
		}
	}
}

// TestHyphenatedJMESPath: an unquoted hyphen is refused when the class is
// read, naming the object, the field and the quoted form.
func TestHyphenatedJMESPath(t *testing.T) {
	_, err := spc.Parse(map[string]string{"region": "us-east-1", "objects": "- {objectName: prod/db, objectType: secretsmanager, jmesPath: [{path: db.api-key, objectAlias: k}]}"}, spc.Options{})
	want := `objects[0] (prod/db).jmesPath[0]: field "path": "db.api-key" is not a valid JMESPath expression: it is not standard JMESPath`
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `path: 'db."api-key"'`) {
		t.Fatalf("err = %v", err)
	}
}
