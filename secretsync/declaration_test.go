package secretsync

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/coffer-csi/coffer/internal/tmpl"
	"github.com/coffer-csi/coffer/provider/spc"
)

func TestParseDefaults(t *testing.T) {
	// The seed scenario: an entry dev/slackurl becomes Secret slack-url
	// with key address, refreshed hourly.
	got := parseDecl(t, `
- secretName: slack-url
  refreshInterval: 1h
  data:
    - {key: address, objectName: dev/slackurl}
`)
	if len(got) != 1 {
		t.Fatalf("%d entries", len(got))
	}
	s := got[0]
	if s.Name != "slack-url" || s.Type != corev1.SecretTypeOpaque || s.TypeSet || s.CreationPolicy != Owner || s.DeletionPolicy != Retain ||
		s.Immutable || s.RefreshInterval != time.Hour || s.ServiceAccountName != "" || s.Template != nil {
		t.Errorf("defaults: %+v", s)
	}
	if len(s.Data) != 1 || s.Data[0].Key != "address" || s.Data[0].Source.Path != "dev_slackurl" || s.Data[0].Source.Object.Name != "dev/slackurl" || s.Data[0].Decoding != DecodeNone {
		t.Errorf("data: %+v", s.Data)
	}
	if objs := s.Objects(); len(objs) != 1 || objs[0].Index != 0 {
		t.Errorf("Objects() = %v", objs)
	}
	if got := s.Describe(); got != "syncSecrets[0] (slack-url)" {
		t.Errorf("Describe() = %q", got)
	}
}

func TestParseValid(t *testing.T) {
	tests := map[string]struct {
		decl  string
		check func(t *testing.T, s *Secret)
	}{
		"references by file, alias, jmesPath alias, written name": {
			decl: `
- secretName: s
  data:
    - {key: a, objectName: dev_slackurl}
    - {key: b, objectName: db-user}
    - {key: c, objectName: /app/cert}
    - {key: d, objectName: cert}
    - {key: e, objectName: prod/db}
    - {key: f, objectName: flags/alpha}
`,
			check: func(t *testing.T, s *Secret) {
				want := []string{"dev_slackurl", "db-user", "cert", "cert", "db.json", "flags/alpha"}
				for i, d := range s.Data {
					if d.Source.Path != want[i] {
						t.Errorf("data[%d] %q resolved to %q, want %q", i, d.Source.Ref, d.Source.Path, want[i])
					}
				}
				if n := len(s.Objects()); n != 4 {
					t.Errorf("Objects() has %d objects, want 4 (slackurl, db, cert, by-path)", n)
				}
			},
		},
		"every field": {
			decl: `
- secretName: tls
  type: kubernetes.io/tls
  labels: {app: web, team.example/owner: a}
  annotations: {note.example/why: "for ingress"}
  immutable: "true"
  creationPolicy: orphan
  deletionPolicy: Delete
  refreshInterval: 15m
  serviceAccountName: reader
  data:
    - {key: tls.crt, objectName: cert}
    - {key: tls.key, objectName: key, decoding: BASE64}
  dataFrom:
    - {extract: db.json}
    - {extract: flags, decoding: base64url}
`,
			check: func(t *testing.T, s *Secret) {
				if s.Type != corev1.SecretTypeTLS || !s.TypeSet || !s.Immutable || s.CreationPolicy != Orphan || s.DeletionPolicy != Delete ||
					s.RefreshInterval != 15*time.Minute || s.ServiceAccountName != "reader" || s.Labels["app"] != "web" || s.Annotations["note.example/why"] != "for ingress" {
					t.Errorf("%+v", s)
				}
				if s.Data[1].Decoding != DecodeBase64 || s.DataFrom[1].Decoding != DecodeBase64URL || !s.DataFrom[1].Source.Dir || s.DataFrom[0].Source.Dir {
					t.Errorf("decodings or sources: %+v %+v", s.Data, s.DataFrom)
				}
			},
		},
		"refresh 0 means only on change": {
			decl: `[{secretName: s, refreshInterval: "0", data: [{key: a, objectName: cert}]}]`,
			check: func(t *testing.T, s *Secret) {
				if s.RefreshInterval != 0 {
					t.Errorf("refreshInterval %s", s.RefreshInterval)
				}
			},
		},
		"keys are case-insensitive, values of policies too": {
			decl: `[{SecretName: s, CREATIONPOLICY: MERGE, Data: [{KEY: a, objectname: cert}]}]`,
			check: func(t *testing.T, s *Secret) {
				if s.Name != "s" || s.CreationPolicy != Merge || s.Data[0].Key != "a" {
					t.Errorf("%+v", s)
				}
			},
		},
		"template with Replace and Merge": {
			decl: `
- secretName: t
  data: [{key: host, objectName: cert}]
  template:
    mergePolicy: Merge
    data:
      url: "https://{{ .host | trim }}/"
`,
			check: func(t *testing.T, s *Secret) {
				if s.Template == nil || s.Template.MergePolicy != MergeData || len(s.Template.Keys) != 1 || s.Template.Keys[0] != "url" {
					t.Errorf("template %+v", s.Template)
				}
			},
		},
		"tls keys come from a Replace template": {
			decl: `
- secretName: t
  type: kubernetes.io/tls
  data: [{key: c, objectName: cert}, {key: k, objectName: key}]
  template:
    data: {tls.crt: "{{ .c }}", tls.key: "{{ .k }}"}
`,
			check: func(t *testing.T, s *Secret) {},
		},
		"tls keys may come from dataFrom": {
			decl:  `[{secretName: t, type: kubernetes.io/tls, dataFrom: [{extract: db.json}]}]`,
			check: func(t *testing.T, s *Secret) {},
		},
		"a type of one's own": {
			decl: `[{secretName: t, type: example.com/custom, data: [{key: a, objectName: cert}]}]`,
			check: func(t *testing.T, s *Secret) {
				if s.Type != "example.com/custom" {
					t.Errorf("type %q", s.Type)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := parseDecl(t, tc.decl)
			if len(got) != 1 {
				t.Fatalf("%d entries", len(got))
			}
			tc.check(t, got[0])
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := map[string]struct {
		decl string
		// want are substrings of the error, one per expected problem.
		want []string
	}{
		"not YAML":    {decl: "- [", want: []string{`parameters: field "syncSecrets": is not valid YAML`}},
		"not a list":  {decl: "secretName: a", want: []string{`must be a YAML list of Secrets (each item starting with "- secretName: ..."), found a mapping at line 1`}},
		"empty list":  {decl: "[]", want: []string{"is an empty list"}},
		"item scalar": {decl: "- a", want: []string{"syncSecrets[0]: must be a mapping with secretName and data or dataFrom, found a plain value"}},
		"missing name and data": {decl: "- type: Opaque", want: []string{
			`syncSecrets[0]: field "secretName": is required`,
			`syncSecrets[0]: field "data": is required (or dataFrom)`,
		}},
		"bad name": {decl: "[{secretName: Bad_Name, data: [{key: a, objectName: cert}]}]", want: []string{`syncSecrets[0] (Bad_Name): field "secretName": "Bad_Name" is not a valid Secret name`}},
		"duplicate secret names": {decl: `
- {secretName: a, data: [{key: a, objectName: cert}]}
- {secretName: a, data: [{key: b, objectName: cert}]}
`, want: []string{`syncSecrets[1] (a): field "secretName": "a" is also the secretName of syncSecrets[0]`}},
		"typo in a key": {decl: "[{secretName: a, dta: [], data: [{key: a, objectName: cert}]}]", want: []string{`field "dta": unknown key; did you mean "data"?`}},
		"ExternalSecret fields": {decl: `
- secretName: a
  target: {name: a}
  secretStoreRef: {name: aws}
  data:
    - secretKey: k
      remoteRef: {key: dev/slackurl, property: url}
      objectName: cert
      key: k
      decodingStrategy: Base64
  dataFrom:
    - find: {path: /app}
`, want: []string{
			`field "target": unknown key; coffer has no target block`,
			`field "secretStoreRef": unknown key; there is no store`,
			`data[0]: field "secretKey": unknown key; use key`,
			`data[0]: field "remoteRef": unknown key; list the AWS entry in objects`,
			`data[0]: field "decodingStrategy": unknown key; use decoding`,
			`dataFrom[0]: field "find": unknown key; dataFrom.find (many secrets by name, path or tag) is not supported`,
			`dataFrom[0]: field "extract": is required`,
		}},
		"policies": {decl: `
- {secretName: a, creationPolicy: None, deletionPolicy: Merge, data: [{key: a, objectName: cert}]}
- {secretName: b, creationPolicy: Own, deletionPolicy: Keep, data: [{key: a, objectName: cert}]}
- {secretName: c, creationPolicy: Merge, deletionPolicy: Delete, immutable: true, data: [{key: a, objectName: cert}]}
`, want: []string{
			`syncSecrets[0] (a): field "creationPolicy": None is not supported`,
			`syncSecrets[0] (a): field "deletionPolicy": Merge (drop only coffer's keys when the source is gone) is not supported`,
			`syncSecrets[1] (b): field "creationPolicy": "Own" is not one of Owner`,
			`syncSecrets[1] (b): field "deletionPolicy": "Keep" is not one of Retain`,
			`syncSecrets[2] (c): field "deletionPolicy": Delete cannot be used with creationPolicy Merge`,
			`syncSecrets[2] (c): field "immutable": applies to Secrets coffer creates`,
		}},
		"types": {decl: `
- {secretName: a, type: kubernetes.io/service-account-token, data: [{key: a, objectName: cert}]}
- {secretName: b, type: kubernetes.io/tlss, data: [{key: a, objectName: cert}]}
- {secretName: c, type: kubernetes.io/tls, data: [{key: tls.crt, objectName: cert}]}
- {secretName: d, type: kubernetes.io/dockerconfigjson, data: [{key: config, objectName: docker}]}
- {secretName: e, type: "not a type!", data: [{key: a, objectName: cert}]}
`, want: []string{
			`syncSecrets[0] (a): field "type": "kubernetes.io/service-account-token" cannot be synced`,
			`syncSecrets[1] (b): field "type": "kubernetes.io/tlss" is not a Kubernetes Secret type`,
			`syncSecrets[2] (c): field "type": "kubernetes.io/tls" needs key "tls.key", which the declaration does not produce (it produces tls.crt)`,
			`syncSecrets[3] (d): field "type": "kubernetes.io/dockerconfigjson" needs key ".dockerconfigjson"`,
			`syncSecrets[4] (e): field "type": "not a type!" is not a valid Secret type`,
		}},
		"data entries": {decl: `
- secretName: a
  data:
    - {objectName: cert}
    - {key: "bad key", objectName: cert}
    - {key: k, objectName: nope}
    - {key: k, objectName: cert}
    - {key: j}
    - {key: f, objectName: flags}
    - {key: g, objectName: cert, decoding: auto}
    - {key: h, objectName: cert, decoding: hex}
    - not-a-mapping
  dataFrom: {extract: db.json}
`, want: []string{
			`data[0]: field "key": is required`,
			`data[1]: field "key": "bad key" is not a valid Secret key`,
			`data[2]: field "objectName": "nope" is not a file this SecretProviderClass writes; use one of: cert, db-pass, db-user, db.json, dev_slackurl, docker, encoded, extra.json, key, flags/<name>`,
			`data[3]: field "key": "k" is also the key of data[2]`,
			`data[4]: field "objectName": is required`,
			`data[5]: field "objectName": "flags" is the directory objects[7] (/app/flags/) writes its files into`,
			`data[6]: field "decoding": Auto is not supported`,
			`data[7]: field "decoding": "hex" is not one of none`,
			`data[8]: must be a mapping with key and objectName, found a plain value`,
			`field "dataFrom": must be a list of {extract: <file>} entries, found a mapping`,
		}},
		"labels and annotations": {decl: `
- secretName: a
  labels: {"bad key!": x, app: "bad value!", coffer-csi.github.io/x: y, app.kubernetes.io/managed-by: me}
  annotations: {coffer-csi.github.io/created-by: x, ok.example/a: [1]}
  data: [{key: a, objectName: cert}]
`, want: []string{
			`labels: field "bad key!": is not a valid name`,
			`labels: field "app": value "bad value!" is not a valid label value`,
			`labels: field "coffer-csi.github.io/x": is in coffer's own domain`,
			`labels: field "app.kubernetes.io/managed-by": is set by coffer`,
			`annotations: field "coffer-csi.github.io/created-by": is in coffer's own domain`,
			`annotations: field "ok.example/a": must be a single value, found a list`,
		}},
		"scalars": {decl: `
- secretName: a
  immutable: yes please
  refreshInterval: soon
  serviceAccountName: Not_Valid
  data: [{key: a, objectName: cert}]
- {secretName: b, refreshInterval: 10ms, data: [{key: a, objectName: cert}]}
- {secretName: [c], data: [{key: a, objectName: cert}]}
`, want: []string{
			`field "immutable": "yes please" is not a boolean`,
			`field "refreshInterval": "soon" is not a duration`,
			`field "serviceAccountName": "Not_Valid" is not a valid ServiceAccount name`,
			`syncSecrets[1] (b): field "refreshInterval": "10ms" is shorter than 1s`,
			`syncSecrets[2]: field "secretName": must be a single value, found a list`,
			`syncSecrets[2]: field "secretName": is required`,
		}},
		"templates": {decl: `
- secretName: a
  data: [{key: a, objectName: cert}]
  template:
    mergePolicy: Mix
    data:
      ok: "{{ .a }}"
      broken: "{{ .a "
      unknownfn: "{{ .a | sha256sum }}"
      "bad key": x
      nested: {a: b}
- secretName: b
  data: [{key: a, objectName: cert}]
  template: {data: {}}
- secretName: c
  data: [{key: a, objectName: cert}]
  template: "{{ .a }}"
`, want: []string{
			`syncSecrets[0] (a).template: field "mergePolicy": "Mix" is not one of Replace`,
			`syncSecrets[0] (a).template.data: field "broken": is not a valid template`,
			`syncSecrets[0] (a).template.data: field "unknownfn": is not a valid template: line 1: function "sha256sum" not defined`,
			`syncSecrets[0] (a).template.data: field "bad key": is not a valid Secret key`,
			`syncSecrets[0] (a).template.data: field "nested": must be a template string, found a mapping`,
			`syncSecrets[1] (b).template: field "data": is empty`,
			`syncSecrets[2] (c): field "template": must be a mapping with data`,
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.decl, testConfig(t))
			var verr *spc.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Parse = %v, want a *spc.ValidationError", err)
			}
			if verr.Source != `SecretProviderClass "app"` {
				t.Errorf("Source = %q", verr.Source)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, strings.ReplaceAll(msg, "; (", ";\n("))
				}
			}
			if len(verr.Problems) != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%s", len(verr.Problems), len(tc.want), strings.ReplaceAll(msg, "; (", ";\n("))
			}
		})
	}
}

func TestParseAmbiguousReference(t *testing.T) {
	cfg, err := spc.Parse(map[string]string{
		spc.KeyRegion: "us-east-1", spc.AttrSPCName: "x",
		spc.KeyObjects: `
- {objectName: shared, objectType: secretsmanager, objectAlias: one}
- {objectName: shared, objectType: ssmparameter, objectAlias: two}
`}, spc.Options{RequireRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse("[{secretName: a, data: [{key: a, objectName: shared}]}]", cfg)
	if err == nil || !strings.Contains(err.Error(), `"shared" names several files (one, two); use the file name`) {
		t.Fatalf("Parse = %v", err)
	}
	secrets, err := Parse("[{secretName: a, data: [{key: a, objectName: two}]}]", cfg)
	if err != nil || secrets[0].Data[0].Source.Object.Index != 1 {
		t.Fatalf("by file name: %v %+v", err, secrets)
	}
}

func TestTemplateFunctionsDocumented(t *testing.T) {
	want := "b64dec b64enc default fromJson indent lower nindent quote replace required toJson trim trimPrefix trimSuffix upper"
	if got := strings.Join(tmpl.Functions(), " "); got != want {
		t.Errorf("tmpl.Functions() = %s\ndocs/secret-sync.md documents %s", got, want)
	}
}
