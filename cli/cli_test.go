package cli

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// runController runs coffer-controller with args, without its election
// and recorder (tests of it stop before it connects to Kubernetes).
func runController(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = RunController(context.Background(), args, &out, &errOut, ControllerParts{})
	return code, out.String(), errOut.String()
}

// runBinary runs the binary that has the command args name: sync is
// coffer-controller's, the others coffer's.
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if len(args) > 0 && args[0] == "sync" {
		return runController(t, args...)
	}
	return run(t, args...)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodSPC = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: app
  namespace: team
spec:
  provider: aws
  parameters:
    region: us-east-1
    objects: |
      - objectName: "prod/db"
        objectType: "secretsmanager"
        jmesPath:
          - {path: password, objectAlias: password, filePermission: "0600"}
      - objectName: "/app/host"
        objectType: "ssmparameter"
  secretObjects:
    - secretName: db
      type: Opaque
      data:
        - {objectName: password, key: password}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ignored
`

func TestValidate(t *testing.T) {
	tests := map[string]struct {
		content  string
		wantCode int
		want     []string
	}{
		"valid manifest next to other kinds": {goodSPC, 0, []string{"SecretProviderClass team/app", "ok, 2 objects, 3 files"}},
		"bare parameters file":               {"region: us-east-1\nobjects: |\n  - {objectName: a, objectType: secretsmanager}\n", 0, []string{"parameters (line 1): ok"}},
		"every problem listed": {
			strings.Replace(strings.Replace(goodSPC, `objectType: "secretsmanager"`, `objectTpye: "secretsmanager"`, 1), `filePermission: "0600"`, `filePermission: "999"`, 1),
			1, []string{"3 problem(s)", `did you mean "objectType"`, `"999" is not a file permission`, "objectType\": is required"}},
		"secretObjects naming a file the class does not write": {
			strings.Replace(goodSPC, "{objectName: password, key: password}", "{objectName: pasword, key: password}", 1),
			1, []string{`secretObjects[0] (db).data[0]: field "objectName": "pasword" is not a file this SecretProviderClass writes`}},
		"no SecretProviderClass": {"apiVersion: v1\nkind: ConfigMap\n", 1, []string{"no SecretProviderClass or parameters found"}},
		"broken YAML":            {"objects: [\n", 1, []string{"reading YAML"}},
		"other provider noted":   {strings.Replace(goodSPC, "provider: aws", "provider: vault", 1), 0, []string{`spec.provider is "vault"`}},
		"templated files checked offline": {
			strings.Replace(goodSPC, "  secretObjects:", `    files: |
      - {path: .pgpass, template: '{{ .passwrd }}'}
      - {path: b, template: '{{ .password '}
      - {path: _app_host, template: x}
  secretObjects:`, 1),
			1, []string{"3 problem(s)", `files[0] (.pgpass): field "template": names "passwrd", which is not a value of this SecretProviderClass; did you mean "password"?`,
				`files[1] (b): field "template": is not a valid template: line 1: unclosed action`,
				`files[2] (_app_host): field "path": is also written by objects[1] (/app/host)`}},
		"templated file and writeFile: false": {
			strings.Replace(strings.Replace(goodSPC, "  secretObjects:", "    files: |\n      - {path: .pgpass, template: '{{ .password }}'}\n  secretObjects:", 1),
				`{path: password, objectAlias: password, filePermission: "0600"}`, `{path: password, objectAlias: password, writeFile: false}`, 1),
			1, []string{`secretObjects[0] (db).data[0]: field "objectName": "password" is not a file this SecretProviderClass writes; use one of: .pgpass, _app_host, prod_db`}},
		"jmesPath with a hyphen": {
			strings.Replace(goodSPC, "{path: password, objectAlias: password", "{path: api-key, objectAlias: password", 1),
			1, []string{`field "path": "api-key" is not a valid JMESPath expression: it is not standard JMESPath`, `path: '"api-key"'`}},
		"syncSecrets checked": {
			strings.Replace(goodSPC, "  secretObjects:", "    syncSecrets: |\n      - secretNam: db\n        data: [{key: pw, objectName: pasword}]\n  secretObjects:", 1),
			1, []string{"secretNam", `did you mean "secretName"`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, out, _ := run(t, "validate", writeFile(t, "spc.yaml", tc.content))
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestValidateUsage(t *testing.T) {
	if code, _, _ := run(t, "validate"); code != 2 {
		t.Errorf("validate without files: exit %d, want 2", code)
	}
	if code, _, _ := run(t, "validate", "/does/not/exist.yaml"); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
	if code, _, errOut := run(t, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut)
	}
}

func TestMountWritesFilesAndNoValues(t *testing.T) {
	const canary = "CANARY-cli-5b1e"
	fake, ts := fakeaws.NewTestServer(t)
	fake.AddIdentity(fakeaws.AllowAll("AKIDCLI", "cli-secret"))
	fake.PutSecretString("us-east-1", "prod/db", `{"password":"`+canary+`"}`)
	fake.PutParameter("us-east-1", "/app/host", canary+"-host", "String")
	t.Setenv("AWS_ENDPOINT_URL", ts.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDCLI")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "cli-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	out := filepath.Join(t.TempDir(), "mnt")
	code, stdout, stderr := run(t, "mount", "--spc", writeFile(t, "spc.yaml", goodSPC), "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := map[string]fs.FileMode{"prod_db": 0o644, "password": 0o600, "_app_host": 0o644}
	for name, mode := range want {
		info, err := os.Stat(filepath.Join(out, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o", name, info.Mode().Perm(), mode)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "password")); string(b) != canary {
		t.Errorf("password file = %q", b)
	}
	for _, w := range []string{"OBJECT", "prod/db", "password", "_app_host", "3 files written"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, stdout)
		}
	}
	if strings.Contains(stdout+stderr, canary) {
		t.Errorf("mount printed a secret value:\n%s%s", stdout, stderr)
	}

	// A failing mount writes nothing and says why.
	failOut := filepath.Join(t.TempDir(), "fail")
	code, _, stderr = run(t, "mount", "--spc", writeFile(t, "spc.yaml", goodSPC), "--out", failOut, "--set", "region=eu-west-1")
	if code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("mount in the wrong region: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(failOut); !os.IsNotExist(err) {
		t.Errorf("a failed mount created %s", failOut)
	}
}

func TestServeNeedsKubernetesForWorkloadIdentity(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	code, _, stderr := run(t, "serve", "--provider-dir", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "connecting to the Kubernetes API") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := run(t, "serve", "--provider-name", "bad name!"); code != 1 || !strings.Contains(stderr, "--provider-name") {
		t.Errorf("bad provider name: exit %d, stderr %q", code, stderr)
	}
}

func TestServeFreshnessFlags(t *testing.T) {
	// The documented defaults: a 5 s freshness bound, the longer reuse
	// window and serving through outages opt-in.
	_, help, _ := run(t, "serve", "--help")
	for _, want := range []string{"-max-staleness duration", "(default 5s)", "-cache-ttl duration", "-serve-stale-on-outage duration"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve -h lacks %q", want)
		}
	}
	for _, flag := range []string{"--max-staleness=-1s", "--cache-ttl=-1s", "--serve-stale-on-outage=-1h"} {
		if code, _, stderr := run(t, "serve", flag); code == 0 || !strings.Contains(stderr, "must not be negative") {
			t.Errorf("%s: exit %d, stderr %q", flag, code, stderr)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeHealthAndMetrics runs the serve command and checks its probes
// and metrics endpoints, then its shutdown.
func TestServeHealthAndMetrics(t *testing.T) {
	dir, err := os.MkdirTemp("", "serve")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	t.Setenv("AWS_REGION", "us-east-1")
	health, metrics := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- Run(ctx, []string{"serve", "--provider-dir", dir, "--insecure-node-credentials",
			"--health-addr", health, "--metrics-addr", metrics}, io.Discard, &stderr)
	}()
	waitFor := func(url string, want int) string {
		for range 200 {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == want {
					return string(b)
				}
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Fatalf("%s never answered %d", url, want)
		return ""
	}
	waitFor("http://"+health+"/readyz", http.StatusOK)
	waitFor("http://"+health+"/healthz", http.StatusOK)
	body := waitFor("http://"+metrics+"/metrics", http.StatusOK)
	for _, want := range []string{"coffer_build_info", "coffer_mounts_in_flight", "coffer_cache_requests_total", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not shut down")
	}
	if _, err := os.Stat(filepath.Join(dir, "aws.sock")); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}
