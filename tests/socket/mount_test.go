package socket_test

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/coffer-csi/coffer/internal/version"
	"github.com/coffer-csi/coffer/tests/fakeaws"
	"github.com/coffer-csi/coffer/wiring"
)

func TestMountMixedObjects(t *testing.T) {
	h := newHarness(t)
	_, dbV1 := h.fake.PutSecretString(primary, "prod/db", `{"username":"app","password":"pw-1","port":5432,"tls":true,"nested":{"a":1}}`)
	_, dbV2 := h.fake.PutSecretString(primary, "prod/db", `{"username":"app","password":"pw-2","port":5432,"tls":true,"nested":{"a":1}}`)
	tlsARN, tlsV := h.fake.PutSecretBinary(primary, "prod/tls", []byte{0x00, 0xff, 0x10, 0x80})
	h.fake.PutParameter(primary, "/app/prod/host", "db.internal", "String")
	h.fake.PutParameter(primary, "/app/prod/token", "tok-1", "SecureString")
	h.fake.PutParameter(primary, "/app/prod/token", "tok-2", "SecureString")
	if err := h.fake.LabelParameter(primary, "/app/prod/token", 1, "stable"); err != nil {
		t.Fatal(err)
	}

	resp, err := h.mount(t, map[string]string{"objects": `
- objectName: prod/db
  objectType: secretsmanager
  jmesPath:
    - {path: username, objectAlias: db-user}
    - {path: password, objectAlias: db-pass, filePermission: "0600"}
    - {path: port, objectAlias: db-port}
    - {path: tls, objectAlias: db-tls}
    - {path: nested, objectAlias: db-nested}
- objectName: prod/db
  objectType: secretsmanager
  objectAlias: db-previous
  objectVersionLabel: AWSPREVIOUS
- objectName: prod/db
  objectType: secretsmanager
  objectAlias: db-pinned
  objectVersion: "` + dbV1 + `"
- objectName: "` + tlsARN + `"
  objectAlias: tls.bin
  filePermission: "0640"
- objectName: /app/prod/host
  objectType: ssmparameter
- objectName: /app/prod/token
  objectType: ssmparameter
  objectAlias: token-v1
  objectVersion: "1"
- objectName: /app/prod/token
  objectType: ssmparameter
  objectAlias: token-stable
  objectVersionLabel: stable
- objectName: /app/prod/token
  objectType: ssmparameter
  objectAlias: token-latest
`})
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	got, versions := files(resp)
	want := []struct {
		path, content, version string
		mode                   int32
	}{
		{"prod_db", `{"username":"app","password":"pw-2","port":5432,"tls":true,"nested":{"a":1}}`, dbV2, 0o644},
		{"db-user", "app", dbV2, 0o644},
		{"db-pass", "pw-2", dbV2, 0o600},
		{"db-port", "5432", dbV2, 0o644},
		{"db-tls", "true", dbV2, 0o644},
		{"db-nested", `{"a":1}`, dbV2, 0o644},
		{"db-previous", `{"username":"app","password":"pw-1","port":5432,"tls":true,"nested":{"a":1}}`, dbV1, 0o644},
		{"db-pinned", `{"username":"app","password":"pw-1","port":5432,"tls":true,"nested":{"a":1}}`, dbV1, 0o644},
		{"tls.bin", "\x00\xff\x10\x80", tlsV, 0o640},
		{"_app_prod_host", "db.internal", "1", 0o644},
		{"token-v1", "tok-1", "1", 0o644},
		{"token-stable", "tok-1", "1", 0o644},
		{"token-latest", "tok-2", "2", 0o644},
	}
	if len(got) != len(want) {
		t.Errorf("got %d files, want %d: %v", len(got), len(want), keys(got))
	}
	for _, w := range want {
		f, ok := got[w.path]
		if !ok {
			t.Errorf("missing file %q", w.path)
			continue
		}
		if string(f.Contents) != w.content {
			t.Errorf("%s: content %q, want %q", w.path, f.Contents, w.content)
		}
		if f.Mode != w.mode {
			t.Errorf("%s: mode %o, want %o", w.path, f.Mode, w.mode)
		}
		if versions[w.path] != w.version {
			t.Errorf("%s: version %q, want %q", w.path, versions[w.path], w.version)
		}
	}
	// Eight SSM objects fit one batch: one GetParameters call for four.
	if n := h.fake.Count(fakeaws.ServiceSSM, "GetParameters"); n != 1 {
		t.Errorf("GetParameters calls = %d, want 1", n)
	}
}

func TestMountBatchesParametersByTen(t *testing.T) {
	h := newHarness(t)
	var objects strings.Builder
	for i := range 23 {
		name := "/batch/p" + string(rune('a'+i))
		h.fake.PutParameter(primary, name, "v", "String")
		objects.WriteString("- {objectName: " + name + ", objectType: ssmparameter}\n")
	}
	resp, err := h.mount(t, map[string]string{"objects": objects.String()})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Files) != 23 {
		t.Errorf("files = %d, want 23", len(resp.Files))
	}
	if n := h.fake.Count(fakeaws.ServiceSSM, "GetParameters"); n != 3 {
		t.Errorf("GetParameters calls = %d, want 3 (batches of 10)", n)
	}
}

func TestMountPathTranslation(t *testing.T) {
	h := newHarness(t)
	h.fake.PutSecretString(primary, "team/app/db", "x")
	tests := map[string]struct {
		translation, want string
	}{
		"default underscore": {"", "team_app_db"},
		"custom character":   {"-", "team-app-db"},
		"off keeps dirs":     {"False", "team/app/db"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			params := map[string]string{"objects": "- {objectName: team/app/db, objectType: secretsmanager}"}
			if tc.translation != "" {
				params["pathTranslation"] = tc.translation
			}
			resp, err := h.mount(t, params)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Files[0].Path; got != tc.want {
				t.Errorf("path = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMountFailsWholeAndListsEveryFailure(t *testing.T) {
	h := newHarness(t)
	h.fake.PutSecretString(primary, "ok", "fine")
	h.fake.AddIdentity(fakeaws.AllowAll(testKey, testPass)) // unchanged identity
	resp, err := h.mount(t, map[string]string{"objects": `
- {objectName: ok, objectType: secretsmanager}
- {objectName: missing-secret, objectType: secretsmanager}
- {objectName: /missing/param, objectType: ssmparameter}
- {objectName: ok, objectType: secretsmanager, objectAlias: ok-json, jmesPath: [{path: a, objectAlias: a}]}
`})
	if err == nil {
		t.Fatalf("Mount succeeded with %d files; want failure", len(resp.GetFiles()))
	}
	if resp != nil {
		t.Errorf("a failed mount returned a response: %v", resp)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{"3 objects failed", "objects[1] (missing-secret)", "secretsmanager:GetSecretValue in us-east-1", "not found",
		"objects[2] (/missing/param)", "objects[3] (ok)", "not valid JSON"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "fine") {
		t.Errorf("error leaks a secret value: %q", msg)
	}
	if code := status.Code(err); code != codes.NotFound {
		t.Errorf("code = %v, want NotFound", code)
	}
}

func TestMountAccessDenied(t *testing.T) {
	h := newHarness(t)
	h.fake.PutSecretString(primary, "team-a/db", "a")
	h.fake.PutSecretString(primary, "team-b/db", "b")
	h.fake.AddIdentity(fakeaws.Identity{
		AccessKeyID: testKey, SecretAccessKey: testPass,
		ARN:       "arn:aws:iam::123456789012:user/team-a",
		Actions:   []string{"secretsmanager:GetSecretValue"},
		Resources: []string{"arn:aws:secretsmanager:*:*:secret:team-a/*"},
	})
	if _, err := h.mount(t, map[string]string{"objects": "- {objectName: team-a/db, objectType: secretsmanager}"}); err != nil {
		t.Fatalf("allowed secret: %v", err)
	}
	_, err := h.mount(t, map[string]string{"objects": "- {objectName: team-b/db, objectType: secretsmanager}"})
	if code := status.Code(err); code != codes.PermissionDenied {
		t.Fatalf("code = %v (%v), want PermissionDenied", code, err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{"objects[0] (team-b/db)", "access denied", "secretsmanager:GetSecretValue"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}

func TestMountFailover(t *testing.T) {
	objects := `
- objectName: prod/db
  objectType: secretsmanager
  objectAlias: db
- objectName: /app/host
  objectType: ssmparameter
  objectAlias: host
  failoverObject: {objectName: /app/host-dr}
`
	seed := func(h *harness) {
		h.fake.PutSecretString(primary, "prod/db", "primary-db")
		h.fake.PutSecretString(failover, "prod/db", "replica-db")
		h.fake.PutParameter(primary, "/app/host", "primary-host", "String")
		h.fake.PutParameter(failover, "/app/host-dr", "dr-host", "String")
	}
	params := map[string]string{"objects": objects, "failoverRegion": failover}
	countRegion := func(h *harness, region string) int {
		return h.fake.CountCalls(func(c fakeaws.Call) bool { return c.Region == region })
	}

	t.Run("primary answers: failover region never called", func(t *testing.T) {
		h := newHarness(t)
		seed(h)
		resp, err := h.mount(t, params)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := files(resp)
		if string(got["db"].Contents) != "primary-db" || string(got["host"].Contents) != "primary-host" {
			t.Errorf("got %q, %q; want the primary's values", got["db"].Contents, got["host"].Contents)
		}
		if n := countRegion(h, failover); n != 0 {
			t.Errorf("%d calls to the failover region; want 0", n)
		}
	})
	t.Run("primary region down: failover used", func(t *testing.T) {
		h := newHarness(t)
		seed(h)
		h.fake.SetRegionDown(primary, true)
		resp, err := h.mount(t, params)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := files(resp)
		if string(got["db"].Contents) != "replica-db" || string(got["host"].Contents) != "dr-host" {
			t.Errorf("got %q, %q; want the failover region's values", got["db"].Contents, got["host"].Contents)
		}
	})
	t.Run("primary throttles: failover used", func(t *testing.T) {
		// With the node's quota, a throttled call is sent again while the
		// primary's share of the deadline (half) leaves room for the
		// backoff, and only then fails over: up to 15 s of serve's 30 s
		// mount timeout (12 s in one run), up to 2 s of this one.
		h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Server.MountTimeout = 4 * time.Second }})
		seed(h)
		h.fake.InjectFault(fakeaws.Fault{Region: primary, Kind: fakeaws.FaultThrottle})
		resp, err := h.mount(t, params)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := files(resp); string(got["db"].Contents) != "replica-db" {
			t.Errorf("got %q; want the failover region's value", got["db"].Contents)
		}
	})
	t.Run("primary hangs: failover used within the deadline", func(t *testing.T) {
		h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Server.MountTimeout = 2 * time.Second }})
		seed(h)
		h.fake.InjectFault(fakeaws.Fault{Region: primary, Kind: fakeaws.FaultHang})
		if _, err := h.mount(t, params); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("not found in primary: no failover", func(t *testing.T) {
		h := newHarness(t)
		h.fake.PutSecretString(failover, "prod/db", "replica-db")
		h.fake.PutParameter(primary, "/app/host", "primary-host", "String")
		_, err := h.mount(t, params)
		if status.Code(err) != codes.NotFound {
			t.Fatalf("err = %v, want NotFound", err)
		}
		if n := countRegion(h, failover); n != 0 {
			t.Errorf("%d calls to the failover region; want 0", n)
		}
	})
	t.Run("scheduled for deletion in primary: the mount fails as for a missing secret, no failover", func(t *testing.T) {
		// As ASCP, which fails the mount on any error: counting such a
		// secret as not found (for sync's deletionPolicy) never lets a
		// mount succeed without it.
		h := newHarness(t)
		seed(h)
		sm := secretsmanager.NewFromConfig(fakeaws.AWSConfig(h.url, primary, testKey, testPass, ""))
		if _, err := sm.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: aws.String("prod/db")}); err != nil {
			t.Fatal(err)
		}
		resp, err := h.mount(t, params)
		if status.Code(err) != codes.NotFound || resp != nil || !strings.Contains(err.Error(), `secret "prod/db" is scheduled for deletion`) {
			t.Fatalf("err = %v, want NotFound naming the deletion", err)
		}
		if n := countRegion(h, failover); n != 0 {
			t.Errorf("%d calls to the failover region; want 0", n)
		}
	})
	t.Run("both regions down: both reported", func(t *testing.T) {
		h := newHarness(t)
		seed(h)
		h.fake.SetRegionDown(primary, true)
		h.fake.SetRegionDown(failover, true)
		_, err := h.mount(t, params)
		msg := status.Convert(err).Message()
		if err == nil || !strings.Contains(msg, "in us-east-1") || !strings.Contains(msg, "failover: secretsmanager:GetSecretValue in us-west-2") {
			t.Errorf("err = %v; want both regions' failures", err)
		}
	})
}

func TestMountRotation(t *testing.T) {
	h := newHarness(t)
	h.fake.PutSecretString(primary, "rot/a", "a1")
	h.fake.PutSecretString(primary, "rot/b", "b1")
	h.fake.PutParameter(primary, "/rot/c", "c1", "String")
	params := map[string]string{"objects": `
- {objectName: rot/a, objectType: secretsmanager, objectAlias: a}
- {objectName: rot/b, objectType: secretsmanager, objectAlias: b}
- {objectName: /rot/c, objectType: ssmparameter, objectAlias: c}
`}
	first, err := h.mount(t, params)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.mount(t, params, first.ObjectVersion...)
	if err != nil {
		t.Fatal(err)
	}
	_, v1 := files(first)
	_, v2 := files(again)
	for id, v := range v1 {
		if v2[id] != v {
			t.Errorf("unchanged %s: version %q then %q; versions must be stable", id, v, v2[id])
		}
	}

	h.fake.PutSecretString(primary, "rot/a", "a2")
	h.fake.PutParameter(primary, "/rot/c", "c2", "String")
	rotated, err := h.mount(t, params, again.ObjectVersion...)
	if err != nil {
		t.Fatal(err)
	}
	got, v3 := files(rotated)
	if len(got) != 3 {
		t.Fatalf("rotation returned %d files; the driver needs the full set (3)", len(got))
	}
	if v3["a"] == v2["a"] || v3["c"] == v2["c"] {
		t.Errorf("changed objects kept their versions: %v -> %v", v2, v3)
	}
	if v3["b"] != v2["b"] {
		t.Errorf("unchanged b changed version: %q -> %q", v2["b"], v3["b"])
	}
	if string(got["a"].Contents) != "a2" || string(got["c"].Contents) != "c2" {
		t.Errorf("rotated contents = %q, %q", got["a"].Contents, got["c"].Contents)
	}
	if !strings.Contains(h.logs.String(), "changed=2") {
		t.Errorf("the mount log does not count 2 changed files:\n%s", h.logs)
	}

	// A failed rotation returns an error, never a partial or empty set, so
	// the driver keeps the previous files.
	h.fake.SetRegionDown(primary, true)
	if resp, err := h.mount(t, params, rotated.ObjectVersion...); err == nil {
		t.Fatalf("rotation during an outage succeeded with %d files", len(resp.Files))
	}
}

func TestMountInvalidSecretProviderClass(t *testing.T) {
	h := newHarness(t)
	_, err := h.mount(t, map[string]string{"objects": `
- {objectName: a, objectTyp: secretsmanager}
- {objectName: b, objectType: ssm}
- {objectName: ../../etc/passwd, objectType: secretsmanager, objectAlias: ../../etc/passwd}
`, "pathTranslation": "False"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
	msg := status.Convert(err).Message()
	for _, want := range []string{`did you mean "objectType"`, `"ssm" is not a valid objectType`, "objects[2]", `".."`, `SecretProviderClass "app-secrets"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if n := len(h.fake.Calls()); n != 0 {
		t.Errorf("an invalid class made %d AWS calls", n)
	}
}

func TestMountResponseTooLarge(t *testing.T) {
	h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Limits.MaxResponseBytes = 1000 }})
	h.fake.PutSecretString(primary, "big", strings.Repeat("x", 800))
	h.fake.PutSecretString(primary, "small", "y")
	h.fake.PutSecretString(primary, "big2", strings.Repeat("z", 600))
	_, err := h.mount(t, map[string]string{"objects": `
- {objectName: big, objectType: secretsmanager}
- {objectName: small, objectType: secretsmanager}
- {objectName: big2, objectType: secretsmanager}
`})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("err = %v, want ResourceExhausted", err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "objects[0] (big) 800 bytes, objects[2] (big2) 600 bytes") {
		t.Errorf("error %q does not name the largest objects", msg)
	}
}

func TestMountConcurrent(t *testing.T) {
	h := newHarness(t)
	for i := range 5 {
		h.fake.PutSecretString(primary, "c/"+string(rune('a'+i)), "v"+string(rune('a'+i)))
		h.fake.PutParameter(primary, "/c/"+string(rune('a'+i)), "p"+string(rune('a'+i)), "String")
	}
	params := map[string]string{"objects": `
- {objectName: c/a, objectType: secretsmanager}
- {objectName: c/b, objectType: secretsmanager}
- {objectName: c/c, objectType: secretsmanager}
- {objectName: c/d, objectType: secretsmanager}
- {objectName: c/e, objectType: secretsmanager}
- {objectName: /c/a, objectType: ssmparameter}
- {objectName: /c/b, objectType: ssmparameter}
`}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			resp, err := h.mount(t, params)
			if err == nil && len(resp.Files) != 7 {
				err = status.Errorf(codes.Internal, "got %d files", len(resp.Files))
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestVersion(t *testing.T) {
	h := newHarness(t)
	v, err := h.client.Version(context.Background(), &v1alpha1.VersionRequest{Version: "v1alpha1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != "v1alpha1" || v.RuntimeName != "coffer" || v.RuntimeVersion != version.Version {
		t.Errorf("Version = %+v", v)
	}
}

// TestCanaryNeverLeaks mounts a canary value through success and every
// failure path and checks it never appears in an error or a log line.
func TestCanaryNeverLeaks(t *testing.T) {
	const canary = "CANARY-7f3d9a-do-not-log"
	h := newHarness(t)
	h.fake.PutSecretString(primary, "canary/json", `{"user":"`+canary+`","n":1}`)
	h.fake.PutSecretString(primary, "canary/plain", canary+"{not json")
	h.fake.PutSecretBinary(primary, "canary/bin", []byte(canary))
	h.fake.PutParameter(primary, "/canary/p", canary, "SecureString")
	cases := []string{
		// success
		`- {objectName: canary/json, objectType: secretsmanager, jmesPath: [{path: user, objectAlias: u}]}
- {objectName: canary/bin, objectType: secretsmanager}
- {objectName: /canary/p, objectType: ssmparameter}`,
		// jmesPath on a non-JSON value
		`- {objectName: canary/plain, objectType: secretsmanager, jmesPath: [{path: user, objectAlias: u}]}`,
		// jmesPath to a missing key, next to a good value
		`- {objectName: canary/json, objectType: secretsmanager, jmesPath: [{path: missing, objectAlias: m}]}
- {objectName: /canary/p, objectType: ssmparameter}`,
		// a failing object next to successful ones
		`- {objectName: canary/json, objectType: secretsmanager}
- {objectName: nope, objectType: secretsmanager}`,
		// JMESPath functions that reject the value's type (the library's
		// message prints it)
		`- {objectName: canary/json, objectType: secretsmanager, jmesPath: [{path: abs(user), objectAlias: a}, {path: "keys(user)", objectAlias: k}, {path: "join(',', [user, n])", objectAlias: j}]}`,
		// an expression that multiplies the value
		`- {objectName: canary/json, objectType: secretsmanager, jmesPath: [{path: "` + strings.Repeat("[@,@]|", 22) + `[@,@]", objectAlias: d}]}`,
	}
	var errs []string
	for _, objects := range cases {
		if _, err := h.mount(t, map[string]string{"objects": objects}); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) != 5 {
		t.Errorf("got %d errors, want 5: %v", len(errs), errs)
	}
	for _, e := range errs {
		if strings.Contains(e, canary) || strings.Contains(e, base64.StdEncoding.EncodeToString([]byte(canary))) {
			t.Errorf("error leaks the canary: %s", e)
		}
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "mounted") || !strings.Contains(logs, "mount failed") {
		t.Fatalf("expected mount log lines, got:\n%s", logs)
	}
	if strings.Contains(logs, canary) {
		t.Errorf("logs leak the canary:\n%s", logs)
	}
	assertLabelsFree(t, h.metrics, canary)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
