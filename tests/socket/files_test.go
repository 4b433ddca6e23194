package socket_test

import (
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// TestTemplatedFilesAndOptionalObjects: through the real socket, a class
// that writes only a .pgpass rendered from a database secret and an
// optional parameter's file when it exists; rotation rewrites .pgpass,
// adds and removes the optional file; access denied on the optional
// parameter, a template naming a missing alias and an unquoted hyphen
// fail the mount.
func TestTemplatedFilesAndOptionalObjects(t *testing.T) {
	const canary = "CANARY-files-8b1"
	h := newHarness(t)
	h.fake.PutSecretString(primary, "prod/db", `{"host":"db.internal","port":5432,"username":"app","password":"`+canary+`-1","api-key":"`+canary+`-k"}`)
	params := map[string]string{
		"objects": `
- {objectName: prod/db, objectType: secretsmanager, objectAlias: db, writeFile: false, jmesPath: [{path: '"api-key"', objectAlias: api-key}]}
- {objectName: /app/flags, objectType: ssmparameter, objectAlias: flags, optional: true}
`,
		"files": `
- path: .pgpass
  filePermission: "0600"
  template: |
    {{ with fromJson .db }}{{ .host }}:{{ .port }}:*:{{ .username }}:{{ .password }}{{ end }}
`,
	}
	h.fake.ResetCalls()
	first, err := h.mount(t, params)
	if err != nil {
		t.Fatal(err)
	}
	got, versions := files(first)
	if paths := sorted(keys(got)); strings.Join(paths, " ") != ".pgpass api-key" {
		t.Fatalf("files %v, want .pgpass and api-key (db has writeFile: false, flags is missing)", paths)
	}
	if pg := got[".pgpass"]; string(pg.Contents) != "db.internal:5432:*:app:"+canary+"-1\n" || pg.Mode != 0o600 {
		t.Errorf(".pgpass = %q mode %o", pg.Contents, pg.Mode)
	}
	if string(got["api-key"].Contents) != canary+"-k" {
		t.Errorf("api-key = %q", got["api-key"].Contents)
	}
	for id, v := range versions {
		if strings.Contains(v, canary) {
			t.Errorf("version of %s shows a value: %q", id, v)
		}
	}
	// One call per service, as for any two objects.
	if sm, ssm := h.fake.Count(fakeaws.ServiceSecretsManager, "GetSecretValue"), h.fake.Count(fakeaws.ServiceSSM, "GetParameters"); sm != 1 || ssm != 1 {
		t.Errorf("AWS calls: %d GetSecretValue, %d GetParameters; want 1 each", sm, ssm)
	}
	if n := sample(t, h.metrics, "coffer_optional_skips_total", map[string]string{"reason": "object_not_found"}); n != 1 {
		t.Errorf("coffer_optional_skips_total{reason=object_not_found} = %v, want 1", n)
	}
	if !strings.Contains(h.logs.String(), "optional object left out of the mount") {
		t.Errorf("the skip is not logged:\n%s", h.logs.String())
	}

	// Rotation: the secret changes and the parameter appears.
	h.fake.PutSecretString(primary, "prod/db", `{"host":"db.internal","port":5432,"username":"app","password":"`+canary+`-2","api-key":"`+canary+`-k"}`)
	h.fake.PutParameter(primary, "/app/flags", "on", "String")
	second, err := h.mount(t, params, first.ObjectVersion...)
	if err != nil {
		t.Fatal(err)
	}
	got2, versions2 := files(second)
	if string(got2[".pgpass"].Contents) != "db.internal:5432:*:app:"+canary+"-2\n" || versions2[".pgpass"] == versions[".pgpass"] {
		t.Errorf("after rotation .pgpass = %q, version %q (was %q)", got2[".pgpass"].Contents, versions2[".pgpass"], versions[".pgpass"])
	}
	if string(got2["flags"].GetContents()) != "on" {
		t.Errorf("the optional parameter's file did not appear: %v", keys(got2))
	}
	h.fake.DeleteParameter(primary, "/app/flags")
	third, err := h.mount(t, params, second.ObjectVersion...)
	if err != nil {
		t.Fatal(err)
	}
	if got3, _ := files(third); got3["flags"] != nil || len(got3) != 2 {
		t.Errorf("the optional parameter's file did not go: %v", keys(got3))
	}

	t.Run("access denied to an optional object fails the mount", func(t *testing.T) {
		h.fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSSM, Kind: fakeaws.FaultError, Code: "AccessDeniedException", Message: "not authorized to perform ssm:GetParameters"})
		defer h.fake.ClearFaults()
		resp, err := h.mount(t, params)
		if status.Code(err) != codes.PermissionDenied || resp != nil || !strings.Contains(err.Error(), "objects[1] (/app/flags)") {
			t.Errorf("mount = %v, %v; want PermissionDenied naming the optional object", resp, err)
		}
	})
	t.Run("a template naming a missing alias", func(t *testing.T) {
		bad := map[string]string{"objects": params["objects"], "files": "[{path: .pgpass, template: '{{ .dbb }}'}]"}
		_, err := h.mount(t, bad)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `files[0] (.pgpass): field "template": names "dbb", which is not a value of this SecretProviderClass; did you mean "db"?`) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a template that fails on the values", func(t *testing.T) {
		bad := map[string]string{"objects": params["objects"], "files": "[{path: .pgpass, template: '{{ (fromJson .db).password | b64dec }}'}]"}
		resp, err := h.mount(t, bad)
		if status.Code(err) != codes.FailedPrecondition || resp != nil || !strings.Contains(err.Error(), `files[0] (.pgpass): line 1, column 29 ({{ b64dec }}): not valid base64`) || strings.Contains(err.Error(), canary) {
			t.Errorf("mount = %v, %v; want FailedPrecondition naming the file and line, no value", resp, err)
		}
	})
	t.Run("a path with a hyphen", func(t *testing.T) {
		bad := map[string]string{"objects": "- {objectName: prod/db, objectType: secretsmanager, jmesPath: [{path: api-key, objectAlias: k}]}"}
		_, err := h.mount(t, bad)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `objects[0] (prod/db).jmesPath[0]: field "path"`) || !strings.Contains(err.Error(), `path: '"api-key"'`) {
			t.Errorf("err = %v", err)
		}
	})
	if strings.Contains(h.logs.String(), canary) {
		t.Errorf("the log holds a value")
	}
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}
