package socket_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

func TestParameterStorePath(t *testing.T) {
	h := newHarness(t)
	for i := range 23 {
		h.fake.PutParameter(primary, fmt.Sprintf("/app/prod/p%02d", i), fmt.Sprintf("v%02d", i), "String")
	}
	h.fake.PutParameter(primary, "/app/prod/db/host", "db.internal", "SecureString")
	h.fake.PutParameter(primary, "/app/other/x", "not selected", "String")

	t.Run("direct children, paginated", func(t *testing.T) {
		h.fake.ResetCalls()
		resp, err := h.mount(t, map[string]string{"objects": "- {path: /app/prod/, objectAlias: prod}"})
		if err != nil {
			t.Fatal(err)
		}
		got, versions := files(resp)
		if len(got) != 23 {
			t.Errorf("files = %d, want the 23 direct children: %v", len(got), keys(got))
		}
		if string(got["prod/p07"].Contents) != "v07" || versions["prod/p07"] != "1" {
			t.Errorf("prod/p07 = %q version %q", got["prod/p07"].Contents, versions["prod/p07"])
		}
		if n := h.fake.Count(fakeaws.ServiceSSM, "GetParametersByPath"); n != 3 {
			t.Errorf("GetParametersByPath calls = %d, want 3 (10 a page)", n)
		}
	})
	t.Run("recursive, names translated", func(t *testing.T) {
		resp, err := h.mount(t, map[string]string{"objects": "- {path: /app/prod, recursive: true, objectAlias: prod}"})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := files(resp)
		if string(got["prod/db_host"].Contents) != "db.internal" || len(got) != 24 {
			t.Errorf("recursive: %d files, prod/db_host = %q", len(got), got["prod/db_host"].GetContents())
		}
		resp, err = h.mount(t, map[string]string{"objects": "- {path: /app/prod, recursive: true, objectAlias: prod}", "pathTranslation": "False"})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := files(resp); string(got["prod/db/host"].Contents) != "db.internal" {
			t.Errorf("without translation: %v", keys(got))
		}
	})
	t.Run("bounded", func(t *testing.T) {
		_, err := h.mount(t, map[string]string{"objects": "- {path: /app/prod/, objectAlias: prod, maxMembers: 5}"})
		if err == nil || !strings.Contains(err.Error(), "selects more than maxMembers (5) entries") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("matching nothing is an error", func(t *testing.T) {
		_, err := h.mount(t, map[string]string{"objects": "- {path: /app/prdo/, objectAlias: prod}"})
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `path "/app/prdo/" matched no parameters`) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("rotation adds and removes members", func(t *testing.T) {
		params := map[string]string{"objects": "- {path: /rot/, objectAlias: rot}"}
		h.fake.PutParameter(primary, "/rot/a", "1", "String")
		h.fake.PutParameter(primary, "/rot/b", "1", "String")
		first, err := h.mount(t, params)
		if err != nil {
			t.Fatal(err)
		}
		h.fake.DeleteParameter(primary, "/rot/a")
		h.fake.PutParameter(primary, "/rot/c", "1", "String")
		h.fake.PutParameter(primary, "/rot/b", "2", "String")
		second, err := h.mount(t, params, first.ObjectVersion...)
		if err != nil {
			t.Fatal(err)
		}
		got, versions := files(second)
		if _, ok := got["rot/a"]; ok || got["rot/c"] == nil || string(got["rot/b"].Contents) != "2" || versions["rot/b"] != "2" {
			t.Errorf("after rotation: files %v versions %v", keys(got), versions)
		}
	})
}

func TestSecretsManagerFilters(t *testing.T) {
	h := newHarness(t)
	for i := range 25 {
		h.fake.PutSecretString(primary, fmt.Sprintf("svc/payments/s%02d", i), fmt.Sprintf("v%02d", i))
	}
	h.fake.PutSecretString(primary, "svc/other/x", "not selected")
	if err := h.fake.TagSecret(primary, "svc/payments/s03", map[string]string{"tier": "gold"}); err != nil {
		t.Fatal(err)
	}
	h.fake.ResetCalls()
	resp, err := h.mount(t, map[string]string{"objects": `
- objectAlias: payments
  filters:
    - {key: name, values: [svc/payments/]}
`})
	if err != nil {
		t.Fatal(err)
	}
	got, versions := files(resp)
	if len(got) != 25 || string(got["payments/svc_payments_s07"].Contents) != "v07" || versions["payments/svc_payments_s07"] == "" {
		t.Errorf("files %v", keys(got))
	}
	if n := h.fake.Count(fakeaws.ServiceSecretsManager, "BatchGetSecretValue"); n != 2 {
		t.Errorf("BatchGetSecretValue calls = %d, want 2 (20 a page)", n)
	}
	resp, err = h.mount(t, map[string]string{"objects": "- {objectAlias: gold, objectType: secretsmanager, filters: [{key: tag-key, values: [tier]}, {key: tag-value, values: [gold]}]}"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := files(resp); len(got) != 1 || got["gold/svc_payments_s03"] == nil {
		t.Errorf("tag filter: %v", keys(got))
	}
}

func TestSecretsManagerFiltersNeedListSecrets(t *testing.T) {
	h := newHarness(t)
	h.fake.PutSecretString(primary, "svc/a", "v")
	h.fake.AddIdentity(fakeaws.Identity{
		AccessKeyID: testKey, SecretAccessKey: testPass, ARN: "arn:aws:iam::123456789012:role/app",
		Actions: []string{"secretsmanager:GetSecretValue"}, Resources: []string{"*"},
		Statements: []fakeaws.Statement{{Actions: []string{"secretsmanager:BatchGetSecretValue"}, Resources: []string{"*"}}},
	})
	_, err := h.mount(t, map[string]string{"objects": "- {objectAlias: a, filters: [{key: name, values: [svc/]}]}"})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "secretsmanager:ListSecrets") {
		t.Errorf("err = %v", err)
	}
}

func TestExpandJSONAndDecoding(t *testing.T) {
	const canary = "CANARY-ext-7d2"
	h := newHarness(t)
	h.fake.PutSecretString(primary, "app/config", `{"user":"app","port":5432,"tls":{"ca":"x"},"blob":"`+base64.StdEncoding.EncodeToString([]byte("raw\x00bytes"))+`","nothing":null}`)
	h.fake.PutSecretString(primary, "app/cert", base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERT-----")))
	h.fake.PutSecretString(primary, "app/urlsafe", base64.RawURLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe}))
	h.fake.PutSecretString(primary, "app/broken", canary+"!!")

	resp, err := h.mount(t, map[string]string{"objects": `
- objectName: app/config
  objectType: secretsmanager
  objectAlias: config
  expandJSON: true
  jmesPath:
    - {path: blob, objectAlias: blob.bin, decoding: base64}
- {objectName: app/cert, objectType: secretsmanager, objectAlias: cert.pem, decoding: base64}
- {objectName: app/urlsafe, objectType: secretsmanager, objectAlias: url.bin, decoding: base64url}
`})
	if err != nil {
		t.Fatal(err)
	}
	got, versions := files(resp)
	want := map[string]string{
		"config/user": "app", "config/port": "5432", "config/tls": `{"ca":"x"}`,
		"blob.bin": "raw\x00bytes", "cert.pem": "-----BEGIN CERT-----", "url.bin": "\xfb\xff\xfe",
	}
	for path, w := range want {
		if f := got[path]; f == nil || string(f.Contents) != w {
			t.Errorf("%s = %q, want %q", path, got[path].GetContents(), w)
		}
	}
	if _, ok := got["config"]; ok {
		t.Error("an expanded object also wrote its whole value")
	}
	if _, ok := got["config/nothing"]; ok {
		t.Error("a null key became a file")
	}
	if versions["config/user"] == "" || versions["config/user"] != versions["config/port"] {
		t.Errorf("expanded keys carry the object's version: %v", versions)
	}

	_, err = h.mount(t, map[string]string{"objects": "- {objectName: app/broken, objectType: secretsmanager, decoding: base64}"})
	if err == nil || !strings.Contains(err.Error(), "objects[0] (app/broken)") || !strings.Contains(err.Error(), "is not valid base64") {
		t.Errorf("invalid encoding: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), canary) {
		t.Errorf("the error echoes the value: %v", err)
	}
	if strings.Contains(h.logs.String(), canary) {
		t.Error("the logs echo the value")
	}
}

func TestExpandedKeysCollideWithOtherFiles(t *testing.T) {
	h := newHarness(t)
	h.fake.PutSecretString(primary, "app/config", `{"user":"app"}`)
	h.fake.PutSecretString(primary, "app/user", "other")
	_, err := h.mount(t, map[string]string{"pathTranslation": "False", "objects": `
- {objectName: app/config, objectType: secretsmanager, objectAlias: config, expandJSON: true}
- {objectName: app/user, objectType: secretsmanager, objectAlias: config/user}
`})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), `writes file "config/user"`) {
		t.Errorf("err = %v", err)
	}
}
