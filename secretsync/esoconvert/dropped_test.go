package esoconvert

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

// esoInput is a SecretStore (its spec.provider.aws fields after the
// service, region and JWT auth given here) and an ExternalSecret (its
// spec after the store reference), in namespace team-a.
func esoInput(aws, spec string) string {
	return fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: aws, namespace: team-a}
spec:
  provider:
    aws:
      service: SecretsManager
      region: us-east-1
%s
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: es, namespace: team-a}
spec:
  secretStoreRef: {name: aws}
%s
`, indent(aws, 6), indent(spec, 2))
}

func indent(s string, n int) string {
	if s == "" {
		return ""
	}
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}

const (
	jwtAuth = "auth: {jwt: {serviceAccountRef: {name: app}}}"
	oneKey  = "data: [{secretKey: k, remoteRef: {key: app/k}}]"
)

// TestDroppedFields: every field coffer convert does not carry over gives
// one DROPPED line naming the manifest, the field's path and its table
// row's reason; what converts is still printed and passes coffer
// validate. Every row of Table that drops a field has a case here.
func TestDroppedFields(t *testing.T) {
	cases := []struct {
		name, input string
		opts        Options
		// want is the line's start: DROPPED kind/name field: (the row's
		// reason follows).
		want, row string
		// classes is how many classes still convert.
		classes int
	}{
		{"v1alpha1", strings.Replace(esoInput(jwtAuth, oneKey), "external-secrets.io/v1\nkind: ExternalSecret", "external-secrets.io/v1alpha1\nkind: ExternalSecret", 1), Options{}, "ExternalSecret/es apiVersion", "apiVersion-other", 0},
		{"ClusterExternalSecret", "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: ces}\nspec: {}\n", Options{}, "ClusterExternalSecret/ces kind", "kind-cluster", 0},
		{"owner references", strings.Replace(esoInput(jwtAuth, oneKey), "metadata: {name: es, namespace: team-a}", "metadata: {name: es, namespace: team-a, ownerReferences: []}", 1), Options{}, "ExternalSecret/es metadata.ownerReferences", "metadata.other", 1},
		{"malformed data", esoInput(jwtAuth, oneKey+"\ndataFrom: {extract: {key: x}}"), Options{}, "ExternalSecret/es spec.dataFrom", "malformed", 1},
		{"invalid name", esoInput(jwtAuth, "data: [{secretKey: k, remoteRef: {key: 'bad name'}}]"), Options{}, "ExternalSecret/es spec", "invalid", 0},
		{"unknown field", esoInput(jwtAuth, oneKey+"\nfutureField: 1"), Options{}, "ExternalSecret/es spec.futureField", "unknown", 1},
		{"store missing", strings.Replace(esoInput(jwtAuth, oneKey), "secretStoreRef: {name: aws}", "secretStoreRef: {name: other}", 1), Options{}, "ExternalSecret/es spec.secretStoreRef", "store-missing", 1},
		{"refresh under 1s", esoInput(jwtAuth, oneKey+"\nrefreshInterval: 500ms"), Options{}, "ExternalSecret/es spec.refreshInterval", "spec.refreshInterval-short", 1},
		{"created once", esoInput(jwtAuth, oneKey+"\nrefreshPolicy: CreatedOnce"), Options{}, "ExternalSecret/es spec.refreshPolicy", "spec.refreshPolicy-once", 1},
		{"sync windows", esoInput(jwtAuth, oneKey+"\nsyncWindows: {kind: allow, windows: []}"), Options{}, "ExternalSecret/es spec.syncWindows", "spec.syncWindows", 1},
		{"creation None", esoInput(jwtAuth, oneKey+"\ntarget: {creationPolicy: None}"), Options{}, "ExternalSecret/es spec.target.creationPolicy", "creationPolicy-none", 1},
		{"creation CreateOrMerge", esoInput(jwtAuth, oneKey+"\ntarget: {creationPolicy: CreateOrMerge}"), Options{}, "ExternalSecret/es spec.target.creationPolicy", "creationPolicy-none", 1},
		{"deletion Merge", esoInput(jwtAuth, oneKey+"\ntarget: {deletionPolicy: Merge}"), Options{}, "ExternalSecret/es spec.target.deletionPolicy", "deletionPolicy-merge", 1},
		{"Delete with Merge", esoInput(jwtAuth, oneKey+"\ntarget: {creationPolicy: Merge, deletionPolicy: Delete}"), Options{}, "ExternalSecret/es spec.target.deletionPolicy", "deletionPolicy-merge", 1},
		{"immutable Merge", esoInput(jwtAuth, oneKey+"\ntarget: {creationPolicy: Merge, immutable: true}"), Options{}, "ExternalSecret/es spec.target.immutable", "immutable-merge", 1},
		{"manifest target", esoInput(jwtAuth, oneKey+"\ntarget: {manifest: {apiVersion: v1, kind: ConfigMap}}"), Options{}, "ExternalSecret/es spec.target.manifest", "spec.target.manifest", 0},
		{"template finalizers", esoInput(jwtAuth, oneKey+"\ntarget: {template: {metadata: {finalizers: [x]}}}"), Options{}, "ExternalSecret/es spec.target.template.metadata.finalizers", "template.finalizers", 1},
		{"template function", esoInput(jwtAuth, oneKey+"\ntarget: {template: {data: {a: '{{ .k | filterPEM \"CERTIFICATE\" }}', b: '{{ .k }}'}}}"), Options{}, "ExternalSecret/es spec.target.template.data.a", "template.data-function", 1},
		{"engine v1", esoInput(jwtAuth, oneKey+"\ntarget: {template: {engineVersion: v1, data: {a: '{{ .k | toString }}'}}}"), Options{}, "ExternalSecret/es spec.target.template.engineVersion", "template.engineVersion-v1", 1},
		{"templateFrom", esoInput(jwtAuth, oneKey+"\ntarget: {template: {templateFrom: [{configMap: {name: t, items: [{key: k}]}}]}}"), Options{}, "ExternalSecret/es spec.target.template.templateFrom", "template.templateFrom", 1},
		{"gjson query", esoInput(jwtAuth, "data: [{secretKey: k, remoteRef: {key: app/k, property: 'friends.#.first'}}, {secretKey: j, remoteRef: {key: app/j}}]"), Options{}, "ExternalSecret/es spec.data[0].remoteRef.property", "remoteRef.property-syntax", 1},
		{"decoding Auto", esoInput(jwtAuth, "data: [{secretKey: k, remoteRef: {key: app/k, decodingStrategy: Auto}}]"), Options{}, "ExternalSecret/es spec.data[0].remoteRef.decodingStrategy", "decodingStrategy-auto", 1},
		{"conversion Unicode", esoInput(jwtAuth, "data: [{secretKey: k, remoteRef: {key: app/k, conversionStrategy: Unicode}}]"), Options{}, "ExternalSecret/es spec.data[0].remoteRef.conversionStrategy", "conversionStrategy-unicode", 1},
		{"tags", esoInput(jwtAuth, "data:\n- {secretKey: k, remoteRef: {key: app/k}}\n- {secretKey: tags, remoteRef: {key: app/k, metadataPolicy: Fetch}}"), Options{}, "ExternalSecret/es spec.data[1].remoteRef.metadataPolicy", "metadataPolicy-fetch", 1},
		{"null bytes Fail", esoInput(jwtAuth, "data: [{secretKey: k, remoteRef: {key: app/k, nullBytePolicy: Fail}}]"), Options{}, "ExternalSecret/es spec.data[0].remoteRef.nullBytePolicy", "nullBytePolicy-fail", 1},
		{"sourceRef", esoInput(jwtAuth, oneKey+"\ndataFrom: [{sourceRef: {generatorRef: {kind: Password, name: p}}}]"), Options{}, "ExternalSecret/es spec.dataFrom[0].sourceRef", "data.sourceRef", 1},
		{"find", esoInput(jwtAuth, oneKey+"\ndataFrom: [{find: {path: app/}}]"), Options{}, "ExternalSecret/es spec.dataFrom[0].find", "dataFrom.find", 1},
		{"rewrite", esoInput(jwtAuth, "dataFrom: [{extract: {key: app/all}, rewrite: [{regexp: {source: a, target: b}}]}]"), Options{}, "ExternalSecret/es spec.dataFrom[0].rewrite", "dataFrom.rewrite", 1},
		{"other provider", strings.Replace(esoInput("", oneKey), "    aws:\n      service: SecretsManager\n      region: us-east-1\n", "    vault: {server: x}\n", 1), Options{}, "SecretStore/aws spec.provider", "store.provider-other", 0},
		{"Certificate Manager", strings.Replace(esoInput(jwtAuth, oneKey), "service: SecretsManager", "service: CertificateManager", 1), Options{}, "SecretStore/aws spec.provider.aws.service", "store.service-acm", 0},
		{"role name", esoInput(jwtAuth+"\nrole: team-b", oneKey), Options{}, "SecretStore/aws spec.provider.aws.role", "store.role-name", 1},
		{"additional roles", esoInput(jwtAuth+"\nrole: arn:aws:iam::123456789012:role/b\nadditionalRoles: [arn:aws:iam::123456789012:role/hop]", oneKey), Options{}, "SecretStore/aws spec.provider.aws.additionalRoles", "store.additionalRoles", 1},
		{"ServiceAccount elsewhere", strings.Replace(strings.Replace(esoInput("auth: {jwt: {serviceAccountRef: {name: eso, namespace: external-secrets}}}", oneKey), "kind: SecretStore\nmetadata: {name: aws, namespace: team-a}", "kind: ClusterSecretStore\nmetadata: {name: aws}", 1), "secretStoreRef: {name: aws}", "secretStoreRef: {name: aws, kind: ClusterSecretStore}", 1), Options{}, "ClusterSecretStore/aws spec.provider.aws.auth.jwt.serviceAccountRef.namespace", "store.jwt-namespace", 1},
		{"audiences", esoInput("auth: {jwt: {serviceAccountRef: {name: app, audiences: [x]}}}", oneKey), Options{}, "SecretStore/aws spec.provider.aws.auth.jwt.serviceAccountRef.audiences", "store.jwt-audiences", 1},
		{"static keys", esoInput("auth: {secretRef: {accessKeyIDSecretRef: {name: k, key: id}}}", oneKey), Options{}, "SecretStore/aws spec.provider.aws.auth.secretRef", "store.secretRef", 1},
		{"no auth", esoInput("", oneKey), Options{}, "SecretStore/aws spec.provider.aws.auth", "store.no-auth-missing", 1},
		{"session tags", esoInput(jwtAuth+"\nsessionTagsPolicy: Simple", oneKey), Options{}, "SecretStore/aws spec.provider.aws.sessionTagsPolicy", "store.sessionTags", 1},
		{"PushSecret options", esoInput(jwtAuth+"\nsecretsManager: {forceDeleteWithoutRecovery: true}", oneKey), Options{}, "SecretStore/aws spec.provider.aws.secretsManager", "store.secretsManager", 1},
		{"store retries", strings.Replace(esoInput(jwtAuth, oneKey), "spec:\n  provider:", "spec:\n  retrySettings: {maxRetries: 3}\n  provider:", 1), Options{}, "SecretStore/aws spec.retrySettings", "store.other", 1},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Convert([]byte(c.input), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := "DROPPED " + c.want + ": " + reason(c.row)
			found := false
			for _, l := range res.Lines {
				if strings.HasPrefix(l.String(), want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no line %q; lines:\n%s", want, joinLines(res.Lines))
			}
			if !res.Dropped() {
				t.Error("Dropped() is false")
			}
			if res.Classes != c.classes {
				t.Errorf("%d classes, want %d", res.Classes, c.classes)
			}
			validateOutput(t, res.YAML)
		})
		covered[c.row] = true
	}
	for _, r := range Table {
		if r.Dropped && !covered[r.Key] {
			t.Errorf("no case drops a field for row %q", r.Key)
		}
	}
}

// TestCarriedFields: fields that convert give no DROPPED line, with the
// value coffer reads.
func TestCarriedFields(t *testing.T) {
	cases := []struct {
		name, input string
		opts        Options
		want        []string
	}{
		{"property and versions", esoInput(jwtAuth, `data:
- {secretKey: user, remoteRef: {key: db, property: username}}
- {secretKey: pw, remoteRef: {key: db, property: password, version: AWSPREVIOUS}}
- {secretKey: host, remoteRef: {key: db, property: 'conn\.host'}}
- {secretKey: raw, remoteRef: {key: db, version: uuid/123e4567-e89b-12d3-a456-426614174000, decodingStrategy: Base64URL}}`), Options{},
			[]string{"path: username", "objectVersionLabel: AWSPREVIOUS", "path: '\"conn.host\"'", "objectVersion: 123e4567-e89b-12d3-a456-426614174000", "decoding: base64url"}},
		{"Parameter Store", strings.Replace(esoInput(jwtAuth+"\nprefix: /team-a/", `data:
- {secretKey: a, remoteRef: {key: db/url, version: "3"}}
- {secretKey: b, remoteRef: {key: db/url, version: stable}}`), "SecretsManager", "ParameterStore", 1), Options{},
			[]string{"objectName: /team-a/db/url", "objectType: ssmparameter", "objectVersion: \"3\"", "objectVersionLabel: stable"}},
		{"target and template", esoInput(jwtAuth+"\nrole: arn:aws:iam::123456789012:role/b\nexternalID: ext-1", `refreshPolicy: OnChange
target:
  name: out
  creationPolicy: Orphan
  immutable: true
  template:
    type: kubernetes.io/basic-auth
    mergePolicy: Merge
    metadata: {labels: {team: a}, annotations: {note: x}}
    data: {password: '{{ .k | upper }}'}
dataFrom: [{extract: {key: app/all, decodingStrategy: Base64}}]
`+oneKey), Options{},
			[]string{"assumeRoleArn: arn:aws:iam::123456789012:role/b", "assumeRoleExternalId: ext-1", "secretName: out", "creationPolicy: Orphan", "immutable: true", "type: kubernetes.io/basic-auth", "team: a", "note: x", "refreshInterval: \"0\"", "mergePolicy: Merge", "- {extract: app/all, decoding: base64}"}},
		{"an ARN's own service", esoInput(jwtAuth, "data: [{secretKey: k, remoteRef: {key: 'arn:aws:ssm:us-east-1:123456789012:parameter/app/k', version: '2'}}]"), Options{},
			[]string{"objectType: ssmparameter", "objectVersion: \"2\""}},
		{"service account flag", esoInput("", oneKey), Options{ServiceAccount: "app"}, []string{"serviceAccountName: app"}},
		{"SecretStore's ServiceAccount namespace", esoInput("auth: {jwt: {serviceAccountRef: {name: app, namespace: elsewhere}}}", oneKey), Options{}, []string{"serviceAccountName: app"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Convert([]byte(c.input), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Dropped() {
				t.Errorf("dropped:\n%s", joinLines(res.Lines))
			}
			for _, w := range c.want {
				if !strings.Contains(string(res.YAML), w) {
					t.Errorf("output lacks %q:\n%s", w, res.YAML)
				}
			}
			validateOutput(t, res.YAML)
		})
	}
}

func joinLines(lines []Line) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.String() + "\n")
	}
	return b.String()
}

// TestImmutableAsKubectlReadsIt: spec.target.immutable is read as kubectl
// reads a YAML boolean (YAML 1.1, unquoted); a quoted value or a number,
// which the API would refuse, is dropped as malformed.
func TestImmutableAsKubectlReadsIt(t *testing.T) {
	for _, c := range []struct {
		value     string
		immutable bool
		malformed bool
	}{
		{"true", true, false}, {"True", true, false}, {"TRUE", true, false}, {"yes", true, false}, {"on", true, false}, {"y", true, false}, {"!!bool true", true, false},
		{"false", false, false}, {"no", false, false}, {"off", false, false}, {"n", false, false},
		{`"true"`, false, true}, {"'yes'", false, true}, {"1", false, true}, {"[true]", false, true}, {"!!str true", false, true},
	} {
		t.Run(c.value, func(t *testing.T) {
			res, err := Convert([]byte(esoInput(jwtAuth, oneKey+"\ntarget: {immutable: "+c.value+"}")), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(res.YAML), "immutable: true"); got != c.immutable {
				t.Errorf("immutable in the class: %t, want %t:\n%s", got, c.immutable, res.YAML)
			}
			want := "DROPPED ExternalSecret/es spec.target.immutable: " + reason("malformed")
			if got := strings.Contains(joinLines(res.Lines), want); got != c.malformed {
				t.Errorf("dropped as malformed: %t, want %t; lines:\n%s", got, c.malformed, joinLines(res.Lines))
			}
			if res.Classes != 1 {
				t.Errorf("%d classes", res.Classes)
			}
		})
	}
}

// TestDroppedPastMaxLines: a field dropped after MaxLines lines is not
// printed, but still counted and still makes coffer convert exit 2.
func TestDroppedPastMaxLines(t *testing.T) {
	// The store, then ExternalSecrets whose every entry gives a NOTE line
	// (a numeric property step), then one that drops a field.
	store, _, _ := strings.Cut(esoInput(jwtAuth, oneKey), "---\n")
	var b strings.Builder
	b.WriteString(store)
	for i, notes := 0, 0; notes <= MaxLines; i++ {
		fmt.Fprintf(&b, "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es%d, namespace: team-a}\nspec:\n  secretStoreRef: {name: aws}\n  data:\n", i)
		for j := 0; j < 100; j++ {
			fmt.Fprintf(&b, "  - {secretKey: k%d, remoteRef: {key: app/k%d, property: a.1}}\n", j, j)
			notes++
		}
	}
	b.WriteString("---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: last, namespace: team-a}\nspec:\n  secretStoreRef: {name: aws}\n  syncWindows: []\n  " + oneKey + "\n")
	res, err := Convert([]byte(b.String()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Lines) != MaxLines || res.MoreLines == 0 {
		t.Fatalf("%d lines and %d more, want %d and some more", len(res.Lines), res.MoreLines, MaxLines)
	}
	for _, l := range res.Lines {
		if l.Dropped {
			t.Fatalf("a printed line drops a field, so this test checks nothing: %s", l)
		}
	}
	if !res.Dropped() {
		t.Error("Dropped() is false, though ExternalSecret/last's spec.syncWindows, past the printed lines, was dropped")
	}
}

// TestExternalSecretMetadataOnTheSecret: without spec.target.template ESO
// copies the ExternalSecret's labels and annotations onto the Secret, and
// so does the class's entry, but for the label coffer sets itself (a NOTE
// line, nothing dropped); with a template, the Secret has the template's
// only. The class keeps the ExternalSecret's either way.
func TestExternalSecretMetadataOnTheSecret(t *testing.T) {
	meta := "metadata:\n  name: es\n  namespace: team-a\n  labels: {app: web, app.kubernetes.io/managed-by: Helm}\n  annotations: {reloader.stakater.com/match: \"true\", kubectl.kubernetes.io/last-applied-configuration: '{}'}\n"
	in := func(spec string) []byte {
		return []byte(strings.Replace(esoInput(jwtAuth, spec), "metadata: {name: es, namespace: team-a}\n", meta, 1))
	}
	for _, c := range []struct {
		name, spec          string
		labels, annotations map[string]string
		managedByNote       bool
	}{
		{"no template", oneKey, map[string]string{"app": "web"}, map[string]string{"reloader.stakater.com/match": "true"}, true},
		{"no template, a target", oneKey + "\ntarget: {name: out}", map[string]string{"app": "web"}, map[string]string{"reloader.stakater.com/match": "true"}, true},
		{"a template", oneKey + "\ntarget: {template: {metadata: {labels: {tier: db}}}}", map[string]string{"tier": "db"}, nil, false},
		{"an empty template", oneKey + "\ntarget: {template: {}}", nil, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := Convert(in(c.spec), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Dropped() {
				t.Errorf("dropped:\n%s", joinLines(res.Lines))
			}
			note := "NOTE ExternalSecret/es metadata.labels.app.kubernetes.io/managed-by: " + reason("metadata.meta-coffer")
			if got := strings.Contains(joinLines(res.Lines), note); got != c.managedByNote {
				t.Errorf("the managed-by NOTE printed: %t, want %t; lines:\n%s", got, c.managedByNote, joinLines(res.Lines))
			}
			secrets := validateOutput(t, res.YAML)
			if len(secrets) != 1 {
				t.Fatalf("%d Secrets:\n%s", len(secrets), res.YAML)
			}
			s := secrets[0]
			if !maps.Equal(s.Labels, c.labels) || !maps.Equal(s.Annotations, c.annotations) {
				t.Errorf("the Secret's labels %v and annotations %v, want %v and %v", s.Labels, s.Annotations, c.labels, c.annotations)
			}
			if !strings.Contains(string(res.YAML), "\n  labels:\n    app: web\n    app.kubernetes.io/managed-by: Helm\n") {
				t.Errorf("the class lost the ExternalSecret's labels:\n%s", res.YAML)
			}
		})
	}
}
