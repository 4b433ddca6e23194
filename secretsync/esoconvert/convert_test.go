package esoconvert

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/secretsync"
)

var update = flag.Bool("update", false, "rewrite the golden outputs in testdata/golden")

// seedOutput is what the seed-shaped ExternalSecret becomes, as
// docs/migrating-from-eso.md shows it.
const seedOutput = `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: slack-url
  namespace: team-a
spec:
  provider: aws
  parameters:
    region: us-east-1
    objects: |
      - objectName: dev/slackurl
        objectType: secretsmanager
    syncSecrets: |
      - secretName: slack-url
        creationPolicy: Owner
        deletionPolicy: Delete
        refreshInterval: 1h
        serviceAccountName: notifier
        data:
          - {key: address, objectName: dev/slackurl}
`

// TestSeedExternalSecret: ExternalSecret slack-url (dev/slackurl as the
// key address, refreshInterval 1h, Owner, Delete, read as the store's
// ServiceAccount notifier), in external-secrets.io/v1 and in v1beta1,
// becomes exactly seedOutput, with no line, and the class syncs the same
// Secret.
func TestSeedExternalSecret(t *testing.T) {
	seed, err := os.ReadFile("testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range []string{"v1", "v1beta1"} {
		t.Run(version, func(t *testing.T) {
			in := bytes.ReplaceAll(seed, []byte("apiVersion: external-secrets.io/v1\n"), []byte("apiVersion: external-secrets.io/"+version+"\n"))
			if n := bytes.Count(in, []byte("apiVersion: external-secrets.io/"+version+"\n")); n != 2 {
				t.Fatalf("%d manifests of %s, want the store and the ExternalSecret", n, version)
			}
			testSeed(t, in)
		})
	}
}

func testSeed(t *testing.T, in []byte) {
	t.Helper()
	res, err := Convert(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.YAML); got != seedOutput {
		t.Errorf("output:\n%s\nwant:\n%s", got, seedOutput)
	}
	if len(res.Lines) != 0 {
		t.Errorf("lines: %v", res.Lines)
	}
	secrets := validateOutput(t, res.YAML)
	if len(secrets) != 1 {
		t.Fatalf("%d Secrets", len(secrets))
	}
	s := secrets[0]
	if s.Name != "slack-url" || s.CreationPolicy != secretsync.Owner || s.DeletionPolicy != secretsync.Delete ||
		s.RefreshInterval.String() != "1h0m0s" || s.ServiceAccountName != "notifier" ||
		len(s.Data) != 1 || s.Data[0].Key != "address" || s.Data[0].Source.Object.Name != "dev/slackurl" {
		t.Errorf("the class declares %+v", s)
	}
}

// validateOutput checks every class of out as coffer validate does, and
// returns the Secrets they declare.
func validateOutput(t *testing.T, out []byte) []*secretsync.Secret {
	t.Helper()
	manifests, err := spc.ReadManifests(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("reading the output: %v", err)
	}
	var all []*secretsync.Secret
	for _, m := range manifests {
		cfg, err := m.Check(spc.Options{})
		if err != nil {
			t.Errorf("%s: %v", m.Describe(), err)
			continue
		}
		secrets, err := secretsync.Parse(m.Parameters[spc.KeySyncSecrets], cfg)
		if err != nil {
			t.Errorf("%s: %v", m.Describe(), err)
			continue
		}
		all = append(all, secrets...)
	}
	return all
}

// jinja are the lines mkdocs reads ({% raw %}), not YAML.
var jinja = regexp.MustCompile(`(?m)^\s*\{%-?\s*(end)?raw\s*-?%\}\s*$`)

func readInputs(t *testing.T, paths ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw[:bytes.IndexByte(raw, '\n')+1], []byte("From github.com/external-secrets/external-secrets ")) && !strings.Contains(p, "seed") {
			t.Errorf("%s: the first line does not name its source", p)
		}
		b.WriteString("---\n")
		b.Write(jinja.ReplaceAll(raw, nil))
		b.WriteString("\n")
	}
	return b.Bytes()
}

// stores are ESO's published stores that the ExternalSecret examples name.
var stores = []string{"testdata/eso/aws-sm-store.yaml", "testdata/eso/aws-parameter-store.yaml", "testdata/eso/aws-acm-store.yaml"}

// minimalExternalSecret, in namespace %s, reads one key through the
// SecretStore %s.
const minimalExternalSecret = `apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: app, namespace: "%s"}
spec:
  secretStoreRef: {name: %s, kind: SecretStore}
  data:
    - {secretKey: password, remoteRef: {key: /app/password}}
`

// TestPublishedExamples: ESO's published AWS ExternalSecrets (with the
// stores they name) and stores (with a minimal ExternalSecret) convert
// to their golden outputs: classes that coffer validate accepts, and a
// DROPPED line for every field not carried over.
func TestPublishedExamples(t *testing.T) {
	type tc struct {
		name  string
		input []byte
	}
	var cases []tc
	examples, err := filepath.Glob("../testdata/eso-examples/*aws-*.yaml")
	if err != nil || len(examples) < 9 {
		t.Fatalf("%d examples: %v", len(examples), err)
	}
	for _, e := range examples {
		cases = append(cases, tc{strings.TrimSuffix(filepath.Base(e), ".yaml"), readInputs(t, append([]string{e}, stores...)...)})
	}
	storeFiles, err := filepath.Glob("testdata/eso/*.yaml")
	if err != nil || len(storeFiles) < 5 {
		t.Fatalf("%d stores: %v", len(storeFiles), err)
	}
	for _, f := range storeFiles {
		raw := readInputs(t, f)
		for i, doc := range bytes.Split(raw, []byte("\n---\n")) {
			name := regexp.MustCompile(`(?m)^  name: (\S+)`).FindSubmatch(doc)
			if name == nil {
				continue
			}
			var ns []byte
			if m := regexp.MustCompile(`(?m)^  namespace: (\S+)`).FindSubmatch(doc); m != nil {
				ns = m[1]
			}
			es := fmt.Sprintf(minimalExternalSecret, ns, name[1])
			cases = append(cases, tc{fmt.Sprintf("store-%s-%d", strings.TrimSuffix(filepath.Base(f), ".yaml"), i), append(append(doc, "\n---\n"...), es...)})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Convert(c.input, Options{})
			if err != nil {
				t.Fatal(err)
			}
			validateOutput(t, res.YAML)
			got := golden(res)
			path := filepath.Join("testdata/golden", c.name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

// golden writes a result as its golden file holds it: the classes, then
// the lines coffer convert prints on stderr and its exit code.
func golden(res *Result) string {
	var b strings.Builder
	b.Write(res.YAML)
	b.WriteString("# stderr:\n")
	for _, l := range res.Lines {
		b.WriteString("# " + l.String() + "\n")
	}
	exit := 0
	if res.Dropped() {
		exit = 2
	}
	fmt.Fprintf(&b, "# exit: %d\n", exit)
	return b.String()
}

// TestKubectlList: what kubectl get -o yaml prints for several objects, a
// v1 List with the server's fields, converts as the manifests would.
func TestKubectlList(t *testing.T) {
	list := `apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
- apiVersion: external-secrets.io/v1
  kind: ExternalSecret
  metadata:
    name: slack-url
    namespace: team-a
    uid: 0b9a3c1e-5f1e-4a53-9d52-7a1f0c1d2e3f
    resourceVersion: "4242"
    generation: 2
    creationTimestamp: "2026-11-27T18:54:40Z"
    managedFields: [{manager: kubectl, operation: Apply}]
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: '{}'
  spec:
    refreshInterval: 1h
    secretStoreRef: {name: aws, kind: SecretStore}
    target: {name: slack-url, creationPolicy: Owner, deletionPolicy: Delete}
    data:
    - secretKey: address
      remoteRef: {key: dev/slackurl}
  status:
    conditions: [{type: Ready, status: "True", reason: SecretSynced}]
    refreshTime: "2026-11-27T18:54:40Z"
- apiVersion: external-secrets.io/v1
  kind: SecretStore
  metadata: {name: aws, namespace: team-a, uid: 1c2d}
  spec:
    provider:
      aws:
        service: SecretsManager
        region: us-east-1
        auth: {jwt: {serviceAccountRef: {name: notifier}}}
  status: {capabilities: ReadWrite}
`
	res, err := Convert([]byte(list), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.YAML) != seedOutput || len(res.Lines) != 0 {
		t.Errorf("output:\n%s\nlines: %v\nwant:\n%s", res.YAML, res.Lines, seedOutput)
	}
}

// TestUnreadableInput: input that is not YAML, over a limit or without an
// ExternalSecret fails whole, naming why.
func TestUnreadableInput(t *testing.T) {
	for _, c := range []struct {
		name, input, want string
	}{
		{"no ExternalSecret", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "no ExternalSecret"},
		{"not YAML", "a: [b\n", "reading YAML document 1"},
		{"too large", strings.Repeat("#", MaxInputBytes+1), "over the limit of"},
		{"too deep", strings.Repeat("[", MaxNesting+1), "brackets"},
		{"too many documents", strings.Repeat("---\na: 1\n", MaxDocuments+1), "more than 1024 YAML documents"},
		{"aliases", "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: &m {name: x}\nspec: {target: *m}\n", "aliases"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Convert([]byte(c.input), Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

// TestTableKeys: every row has a unique key and cells that fit one
// Markdown table row.
func TestTableKeys(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Table {
		if seen[r.Key] {
			t.Errorf("two rows named %q", r.Key)
		}
		seen[r.Key] = true
		for _, cell := range []string{r.ESO, r.Coffer} {
			if strings.Contains(strings.ReplaceAll(cell, `\|`, ""), "|") || strings.Contains(cell, "\n") {
				t.Errorf("row %q: a cell breaks the table: %q", r.Key, cell)
			}
		}
		if r.Dropped && !strings.HasPrefix(r.Coffer, "not converted") {
			t.Errorf("row %q drops the field but does not say so first: %q", r.Key, r.Coffer)
		}
	}
}
