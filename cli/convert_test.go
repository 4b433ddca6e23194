package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConvert: coffer convert prints classes that coffer validate
// accepts, a DROPPED line on stderr per field it did not carry over, and
// exits 0 when it dropped nothing, 2 when it dropped anything, 1 when the
// input cannot be read.
func TestConvert(t *testing.T) {
	seed := filepath.Join("..", "secretsync", "esoconvert", "testdata", "seed.yaml")
	withStaticKeys := writeFile(t, "eso.yaml", `apiVersion: external-secrets.io/v1beta1
kind: ClusterSecretStore
metadata: {name: aws}
spec:
  provider:
    aws:
      service: ParameterStore
      region: eu-west-1
      auth:
        secretRef:
          accessKeyIDSecretRef: {name: keys, key: id}
          secretAccessKeySecretRef: {name: keys, key: secret}
---
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata: {name: db}
spec:
  secretStoreRef: {name: aws, kind: ClusterSecretStore}
  target: {creationPolicy: None}
  data:
    - {secretKey: password, remoteRef: {key: /prod/db/password, decodingStrategy: Base64}}
`)
	for _, c := range []struct {
		name       string
		args       []string
		code       int
		stdout     []string
		stderr     []string
		validClass bool
	}{
		{name: "seed", args: []string{"-f", seed}, code: 0, stdout: []string{"name: slack-url", "{key: address, objectName: dev/slackurl}"}, validClass: true},
		{
			name: "dropped", args: []string{"-f", withStaticKeys, "--namespace", "team-a", "--service-account", "app"}, code: 2,
			stdout: []string{"namespace: team-a", "objectType: ssmparameter", "serviceAccountName: app", "decoding: base64"},
			stderr: []string{
				"DROPPED ClusterSecretStore/aws spec.provider.aws.auth.secretRef: not converted: coffer never reads static keys",
				"DROPPED ExternalSecret/db spec.target.creationPolicy: not converted: coffer creates (Owner, Orphan)",
				"coffer convert: fields not carried over (the DROPPED lines); 1 SecretProviderClass(es) written",
			},
			validClass: true,
		},
		{name: "no file", args: nil, code: 2, stderr: []string{"name the manifests with -f FILE"}},
		{name: "missing file", args: []string{"-f", filepath.Join(t.TempDir(), "none.yaml")}, code: 1, stderr: []string{"no such file"}},
		{name: "no ExternalSecret", args: []string{"-f", writeFile(t, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\n")}, code: 1, stderr: []string{"no ExternalSecret"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"convert"}, c.args...)...)
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			for _, w := range c.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if c.validClass {
				if code, out, _ := run(t, "validate", writeFile(t, "spc.yaml", stdout)); code != 0 {
					t.Errorf("coffer validate refuses the output (exit %d):\n%s", code, out)
				}
			}
		})
	}
}

// TestConvertOutputFile: -o writes the classes to a file, and stdin is
// read with -f -.
func TestConvertOutputFile(t *testing.T) {
	seed, err := os.ReadFile(filepath.Join("..", "secretsync", "esoconvert", "testdata", "seed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "spc.yaml")
	root := newRootCommand(os.Stdout, os.Stderr)
	root.SetIn(strings.NewReader(string(seed)))
	root.SetArgs([]string{"convert", "-f", "-", "-o", out})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "serviceAccountName: notifier") {
		t.Errorf("the file holds:\n%s", got)
	}
}
