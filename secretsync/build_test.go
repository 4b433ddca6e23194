package secretsync

import (
	"context"
	"encoding/base64"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	tests := map[string]struct {
		decl    string
		content content // default: defaultContent()
		want    map[string]string
		wantErr string
	}{
		"seed: one key from one secret": {
			decl: `[{secretName: slack-url, data: [{key: address, objectName: dev/slackurl}]}]`,
			want: map[string]string{"address": "https://hooks.example/" + canary},
		},
		"jmesPath files and base64 decoding": {
			decl: `[{secretName: s, data: [{key: user, objectName: db-user}, {key: pw, objectName: db-pass}, {key: raw, objectName: encoded, decoding: base64}]}]`,
			want: map[string]string{"user": "app", "pw": canary + "-pw", "raw": canary + "-b64"},
		},
		"base64url and unpadded base64, surrounding whitespace": {
			decl: `[{secretName: s, data: [{key: a, objectName: encoded, decoding: base64url}, {key: b, objectName: cert, decoding: base64}]}]`,
			content: content{
				"encoded": base64.RawURLEncoding.EncodeToString([]byte("\xff\xfe" + canary)),
				"cert":    base64.RawStdEncoding.EncodeToString([]byte(canary)) + "\n",
			},
			want: map[string]string{"a": "\xff\xfe" + canary, "b": canary},
		},
		"extract every top-level key": {
			decl: `[{secretName: s, dataFrom: [{extract: db.json}]}]`,
			want: map[string]string{"username": "app", "password": canary + "-pw", "port": "5432", "big": "12345678901234567890", "tls": `{"on":true}`, "none": "null"},
		},
		"extract a directory of a path object": {
			decl: `[{secretName: s, dataFrom: [{extract: flags}]}]`,
			want: map[string]string{"alpha": canary + "-alpha", "beta": canary + "-beta"},
		},
		"data wins over dataFrom": {
			decl: `[{secretName: s, dataFrom: [{extract: extra.json}], data: [{key: password, objectName: db-pass}]}]`,
			want: map[string]string{"password": canary + "-pw", "extra": "x"},
		},
		"two extracts with a shared key": {
			decl:    `[{secretName: s, dataFrom: [{extract: db.json}, {extract: extra.json}]}]`,
			wantErr: `dataFrom[1]: key "password" is also extracted by dataFrom[0]`,
		},
		"template replaces": {
			decl: `
- secretName: s
  data: [{key: user, objectName: db-user}, {key: pw, objectName: db-pass}, {key: lines, objectName: cert}]
  template:
    data:
      dsn: "postgres://{{ .user }}:{{ .pw | b64enc | b64dec }}@db:5432/app"
      json: '{{ (fromJson "{\"a\":[1,2]}").a | toJson }}'
      text: '{{ "  x  " | trim | upper }}-{{ "Y" | lower }}-{{ "" | default "d" }}-{{ "a.b" | replace "." "_" }}-{{ "pre-x" | trimPrefix "pre-" }}-{{ "x.txt" | trimSuffix ".txt" }}'
      quoted: '{{ .user | quote }}'
      yaml: "k:{{ .lines | nindent 2 }}"
`,
			want: map[string]string{
				"dsn":    "postgres://app:" + canary + "-pw@db:5432/app",
				"json":   "[1,2]",
				"text":   "X-y-d-a_b-x-x",
				"quoted": `"app"`,
				"yaml":   "k:\n  a\n  b",
			},
			content: content{"cert": "a\nb"},
		},
		"template merges": {
			decl: `
- secretName: s
  data: [{key: user, objectName: db-user}]
  template: {mergePolicy: Merge, data: {greeting: "hi {{ .user }}", user: "{{ .user | upper }}"}}
`,
			want: map[string]string{"user": "APP", "greeting": "hi app"},
		},
		"template reaches into JSON": {
			decl: `
- secretName: s
  data: [{key: db, objectName: db.json}]
  template: {data: {pw: "{{ (fromJson .db).password }}", port: "{{ (fromJson .db).port }}"}}
`,
			want: map[string]string{"pw": canary + "-pw", "port": "5432"},
		},
		"tls": {
			decl: `[{secretName: s, type: kubernetes.io/tls, data: [{key: tls.crt, objectName: cert}, {key: tls.key, objectName: key}]}]`,
			want: map[string]string{"tls.crt": "-----BEGIN CERTIFICATE-----" + canary, "tls.key": "-----BEGIN KEY-----" + canary},
		},
		"dockerconfigjson": {
			decl: `[{secretName: s, type: kubernetes.io/dockerconfigjson, data: [{key: .dockerconfigjson, objectName: docker}]}]`,
			want: map[string]string{".dockerconfigjson": `{"auths":{"r.example":{"auth":"` + canary + `"}}}`},
		},

		// Failures: each names what to fix and never the value.
		"bad base64": {
			decl:    `[{secretName: s, data: [{key: a, objectName: cert, decoding: base64}]}]`,
			wantErr: `data[0] (key "a"): file "cert" (objects[2] (/app/cert)) is not valid base64 (illegal data at byte 0)`,
		},
		"extract of a value that is not JSON": {
			decl:    `[{secretName: s, dataFrom: [{extract: cert}]}]`,
			wantErr: `dataFrom[0]: file "cert" (objects[2] (/app/cert)) is not valid JSON (syntax error at byte 2); extract needs a JSON object`,
		},
		"extract of a JSON array": {
			decl:    `[{secretName: s, dataFrom: [{extract: cert}]}]`,
			content: content{"cert": `["` + canary + `"]`},
			wantErr: `is JSON but not an object`,
		},
		"extract of a key that cannot be a Secret key": {
			decl:    `[{secretName: s, dataFrom: [{extract: extra.json}]}]`,
			content: content{"extra.json": `{"bad key":"` + canary + `"}`},
			wantErr: `dataFrom[0]: "extra.json" (objects[6] (other)) gives key "bad key", which is not a valid Secret key`,
		},
		"a member file the path did not produce": {
			decl:    `[{secretName: s, data: [{key: g, objectName: flags/gamma}]}]`,
			wantErr: `data[0] (key "g"): file "flags/gamma" (objects[7] (/app/flags/)) was not written`,
		},
		// A reference by object name quotes the name as written, then the
		// file it became.
		"bad base64 of a file named by its object": {
			decl:    `[{secretName: s, data: [{key: a, objectName: dev/slackurl, decoding: base64}]}]`,
			wantErr: `data[0] (key "a"): "dev/slackurl" (file "dev_slackurl" of objects[0] (dev/slackurl)) is not valid base64`,
		},
		"extract of a file named by its object": {
			decl:    `[{secretName: s, dataFrom: [{extract: dev/slackurl}]}]`,
			wantErr: `dataFrom[0]: "dev/slackurl" (file "dev_slackurl" of objects[0] (dev/slackurl)) is not valid JSON`,
		},
		"tls without its key from dataFrom": {
			decl:    `[{secretName: s, type: kubernetes.io/tls, dataFrom: [{extract: extra.json}]}]`,
			wantErr: `a kubernetes.io/tls Secret needs keys "tls.crt" and "tls.key"; the declaration produced extra, password`,
		},
		"dockerconfigjson that is not JSON": {
			decl:    `[{secretName: s, type: kubernetes.io/dockerconfigjson, data: [{key: .dockerconfigjson, objectName: cert}]}]`,
			wantErr: `key ".dockerconfigjson" of a kubernetes.io/dockerconfigjson Secret must be JSON, and is not valid JSON (syntax error at byte 2)`,
		},
		"template calling fromJson on a non-JSON value": {
			decl:    `[{secretName: s, data: [{key: c, objectName: cert}], template: {data: {x: "{{ (fromJson .c).a }}"}}}]`,
			wantErr: `template.data[x]: line 1, column 4 ({{ fromJson .c }}): fromJson: the value is not valid JSON (syntax error at byte 2)`,
		},
		"template naming a missing key": {
			decl:    `[{secretName: s, data: [{key: c, objectName: cert}], template: {data: {x: "{{ .nope }}"}}}]`,
			wantErr: `({{ .nope }}): reads a key the Secret's values do not have`,
		},
		"template b64dec of a non-base64 value": {
			decl:    `[{secretName: s, data: [{key: c, objectName: cert}], template: {data: {x: "{{ .c | b64dec }}"}}}]`,
			wantErr: `: not valid base64`,
		},
		"template required": {
			decl:    `[{secretName: s, data: [{key: c, objectName: cert}], template: {data: {x: "{{ \"\" | required \"set x\" }}"}}}]`,
			wantErr: `: required: set x`,
		},
		"template with a non-string field access": {
			decl:    `[{secretName: s, data: [{key: c, objectName: cert}], template: {data: {x: "{{ .c.d }}"}}}]`,
			wantErr: `reads a field of a value that has none`,
		},
		"an empty JSON object": {
			decl:    `[{secretName: s, dataFrom: [{extract: extra.json}]}]`,
			content: content{"extra.json": `{}`},
			wantErr: `the declaration produced no keys`,
		},
		"over the Secret size limit": {
			decl:    `[{secretName: s, data: [{key: a, objectName: cert}]}]`,
			content: content{"cert": strings.Repeat(canary, MaxSecretBytes/len(canary)+1)},
			wantErr: `over Kubernetes' limit of 1048576; split it`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			secrets := parseDecl(t, tc.decl)
			c := tc.content
			if c == nil {
				c = defaultContent()
			} else {
				full := defaultContent()
				for k, v := range c {
					full[k] = v
				}
				c = full
			}
			got, err := secrets[0].Build(context.Background(), byPath(files(t, testConfig(t), c, "v1")))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Build = %v; want an error with %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "BEGIN") {
					t.Errorf("error holds a value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gotS := map[string]string{}
			for k, v := range got {
				gotS[k] = string(v)
			}
			if len(gotS) != len(tc.want) {
				t.Errorf("keys %v, want %v", slices.Sorted(maps.Keys(gotS)), slices.Sorted(maps.Keys(tc.want)))
			}
			for k, v := range tc.want {
				if gotS[k] != v {
					t.Errorf("key %q = %q, want %q", k, gotS[k], v)
				}
			}
		})
	}
}

func TestHash(t *testing.T) {
	cfg := testConfig(t)
	decl := `[{secretName: s, data: [{key: a, objectName: cert}], dataFrom: [{extract: flags}]}]`
	s := parseDecl(t, decl)[0]
	base := files(t, cfg, defaultContent(), "v1")
	h := s.Hash(byPath(base))
	if !strings.HasPrefix(h, "v1:") || len(h) != 3+64 {
		t.Fatalf("hash %q", h)
	}
	if h2 := s.Hash(byPath(files(t, cfg, defaultContent(), "v1"))); h2 != h {
		t.Errorf("hash not stable: %s %s", h, h2)
	}
	// Values do not enter the hash (it cannot be used to guess them) ...
	changed := defaultContent()
	changed["cert"] = "other " + canary
	if h2 := s.Hash(byPath(files(t, cfg, changed, "v1"))); h2 != h {
		t.Errorf("the hash depends on a value")
	}
	// ... versions do, of every file read (a directory's members too) ...
	for _, path := range []string{"cert", "flags/beta"} {
		fs := files(t, cfg, defaultContent(), "v1")
		for i := range fs {
			if fs[i].Path == path {
				fs[i].Version = "v2"
			}
		}
		if s.Hash(byPath(fs)) == h {
			t.Errorf("a new version of %s leaves the hash", path)
		}
	}
	more := defaultContent()
	more["flags/gamma"] = "x"
	if s.Hash(byPath(files(t, cfg, more, "v1"))) == h {
		t.Errorf("a new member of a directory leaves the hash")
	}
	// ... and versions of files not read do not.
	fs := files(t, cfg, defaultContent(), "v1")
	for i := range fs {
		if fs[i].Path == "dev_slackurl" {
			fs[i].Version = "v9"
		}
	}
	if s.Hash(byPath(fs)) != h {
		t.Errorf("a file the Secret does not read changed the hash")
	}
	// The declaration does.
	for _, other := range []string{
		`[{secretName: s, data: [{key: b, objectName: cert}], dataFrom: [{extract: flags}]}]`,
		`[{secretName: s, data: [{key: a, objectName: cert, decoding: base64}], dataFrom: [{extract: flags}]}]`,
		`[{secretName: s, labels: {a: b}, data: [{key: a, objectName: cert}], dataFrom: [{extract: flags}]}]`,
		`[{secretName: s, data: [{key: a, objectName: cert}], dataFrom: [{extract: flags}], template: {data: {x: "{{ .a }}"}}}]`,
		`[{secretName: s, immutable: true, data: [{key: a, objectName: cert}], dataFrom: [{extract: flags}]}]`,
	} {
		if parseDecl(t, other)[0].Hash(byPath(base)) == h {
			t.Errorf("declaration %s leaves the hash", other)
		}
	}
}
