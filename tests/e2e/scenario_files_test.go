package e2e

import (
	"strings"
	"testing"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// 12. Files the way applications need them, through the real driver: a
// .pgpass rendered from a database secret that writes no file of its own,
// a hyphenated key by its quoted path, and an optional parameter whose
// file appears and goes with rotation. A template naming a missing alias,
// an optional object the role may not read and an unquoted hyphen fail the
// mount, each with a message naming the fix.
func TestTemplatedFiles(t *testing.T) {
	const ns, region = "e2e-files", "us-east-1"
	ctx := setup(t, ns)
	createSecret(ctx, t, region, "files/db", `{"host":"canary-files-db.internal","port":5432,"username":"app","password":"canary-files-pw-1","api-key":"canary-files-key"}`)
	putParameter(ctx, t, region, "/files/host", "canary-files-host", ssmtypes.ParameterTypeString)

	objects := `
- {objectName: files/db, objectType: secretsmanager, objectAlias: db, writeFile: false, jmesPath: [{path: '"api-key"', objectAlias: api-key}]}
- {objectName: /files/host, objectType: ssmparameter, objectAlias: host}
- {objectName: /files/flags, objectType: ssmparameter, objectAlias: flags, optional: true}
`
	pgpass := `
- path: .pgpass
  filePermission: "0600"
  template: '{{ with fromJson .db }}{{ .host }}:{{ .port }}:*:{{ .username }}:{{ .password }}{{ end }}'
`
	createServiceAccount(ctx, t, ns, "app", roleARN("files-app"))
	createSPC(ctx, t, ns, spcSpec{name: "files", params: map[string]string{"region": region, "objects": objects, "files": pgpass}})
	pod := createPod(ctx, t, ns, "app-0", "app", "files")
	pod.mount(ctx)
	pod.checkFiles(map[string]wantFile{
		".pgpass": {"canary-files-db.internal:5432:*:app:canary-files-pw-1", 0o600},
		"api-key": {"canary-files-key", 0o644},
		"host":    {"canary-files-host", 0o644},
	})
	before, err := pod.podStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := before[".pgpass"]; !strings.HasPrefix(v, "tmpl-") || strings.Contains(v, canaryPrefix) {
		t.Errorf(".pgpass version in the pod status: %q", v)
	}

	// Rotation: the password changes and the optional parameter appears,
	// then goes.
	putSecretString(ctx, t, region, "files/db", `{"host":"canary-files-db.internal","port":5432,"username":"app","password":"canary-files-pw-2","api-key":"canary-files-key"}`)
	putParameter(ctx, t, region, "/files/flags", "canary-files-flags", ssmtypes.ParameterTypeString)
	pod.republish(ctx)
	pod.checkFiles(map[string]wantFile{
		".pgpass": {"canary-files-db.internal:5432:*:app:canary-files-pw-2", 0o600},
		"api-key": {"canary-files-key", 0o644},
		"host":    {"canary-files-host", 0o644},
		"flags":   {"canary-files-flags", 0o644},
	})
	after, err := pod.podStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after[".pgpass"] == before[".pgpass"] || after["host"] != before["host"] {
		t.Errorf("versions after rotation: %v, before: %v; want .pgpass changed, host not", after, before)
	}
	deleteParameter(ctx, t, region, "/files/flags")
	pod.republish(ctx)
	pod.checkFiles(map[string]wantFile{
		".pgpass": {"canary-files-db.internal:5432:*:app:canary-files-pw-2", 0o600},
		"api-key": {"canary-files-key", 0o644},
		"host":    {"canary-files-host", 0o644},
	})

	bad := map[string]struct {
		params map[string]string
		want   []string
	}{
		"missing-alias": {map[string]string{"region": region, "objects": objects, "files": "[{path: .pgpass, template: '{{ .dbb }}'}]"},
			[]string{`files[0] (.pgpass): field "template": names "dbb", which is not a value of this SecretProviderClass; did you mean "db"?`}},
		"denied": {map[string]string{"region": region, "objects": objects + "- {objectName: elsewhere/x, objectType: secretsmanager, optional: true}\n"},
			[]string{"objects[3] (elsewhere/x)", "access denied"}},
		"hyphen": {map[string]string{"region": region, "objects": "- {objectName: files/db, objectType: secretsmanager, jmesPath: [{path: api-key, objectAlias: k}]}"},
			[]string{`objects[0] (files/db).jmesPath[0]: field "path"`, "not standard JMESPath", `path: '"api-key"'`}},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			createSPC(ctx, t, ns, spcSpec{name: name, params: tc.params})
			msg := createPod(ctx, t, ns, name, "app", name).mountFails(ctx)
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not mention %q:\n%s", want, msg)
				}
			}
		})
	}
}
