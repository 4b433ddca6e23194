package spc

import (
	"strings"
	"testing"
)

func TestExtensions(t *testing.T) {
	parse := func(objects string, extra ...string) (*Config, error) {
		attrs := map[string]string{"objects": objects, "region": "us-east-1"}
		for i := 0; i+1 < len(extra); i += 2 {
			attrs[extra[i]] = extra[i+1]
		}
		return Parse(attrs, Options{})
	}
	valid := map[string]struct {
		objects string
		check   func(t *testing.T, o *Object)
	}{
		"path": {"- {path: /app/prod/, objectAlias: prod}", func(t *testing.T, o *Object) {
			if o.Type != ParameterStore || o.ParameterPath != "/app/prod/" || o.Recursive || o.MaxMembers != DefaultMaxMembers || o.Path != "prod" || !o.WritesDirectory() {
				t.Errorf("%+v", o)
			}
		}},
		"path, recursive, bounded, decoded": {"- {path: /app, recursive: true, objectAlias: app, maxMembers: 500, decoding: base64, objectType: ssmparameter}", func(t *testing.T, o *Object) {
			if !o.Recursive || o.MaxMembers != 500 || o.Decoding != DecodingBase64 {
				t.Errorf("%+v", o)
			}
		}},
		"filters": {"- {objectAlias: pay, filters: [{key: name, values: [svc/pay/]}, {key: tag-key, values: [team]}]}", func(t *testing.T, o *Object) {
			if o.Type != SecretsManager || len(o.Filters) != 2 || o.Filters[1].Key != "tag-key" || o.Name != "filters name=svc/pay/,tag-key=team" {
				t.Errorf("%+v", o)
			}
		}},
		"expandJSON with jmesPath": {"- {objectName: db, objectType: secretsmanager, objectAlias: db, expandJSON: true, jmesPath: [{path: a, objectAlias: a, decoding: base64url}]}", func(t *testing.T, o *Object) {
			if !o.ExpandJSON || !o.WritesDirectory() || o.JMESPath[0].Decoding != DecodingBase64URL {
				t.Errorf("%+v", o)
			}
		}},
		"decoding none": {"- {objectName: db, objectType: secretsmanager, decoding: none}", func(t *testing.T, o *Object) {
			if o.Decoding != DecodingNone {
				t.Errorf("%+v", o)
			}
		}},
	}
	for name, tc := range valid {
		t.Run(name, func(t *testing.T) {
			cfg, err := parse(tc.objects)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg.Objects[0])
		})
	}

	invalid := map[string]struct {
		objects string
		want    []string
	}{
		"path and filters":           {"- {path: /a, filters: [{key: name, values: [a]}], objectAlias: x}", []string{"not both"}},
		"path without alias":         {"- {path: /a}", []string{`field "objectAlias": is required with path`}},
		"path not absolute":          {"- {path: app/prod, objectAlias: x}", []string{"must start with /"}},
		"path with secretsmanager":   {"- {path: /a, objectType: secretsmanager, objectAlias: x}", []string{"use objectType: ssmparameter"}},
		"path with objectName":       {"- {objectName: a, objectType: ssmparameter, path: /a}", []string{"cannot be used with objectName"}},
		"path with version":          {"- {path: /a, objectAlias: x, objectVersion: \"2\"}", []string{`field "objectVersion": cannot be used with path`}},
		"path with jmesPath":         {"- {path: /a, objectAlias: x, jmesPath: [{path: a, objectAlias: b}]}", []string{`"jmesPath": cannot be used with path`}},
		"recursive not a boolean":    {"- {path: /a, objectAlias: x, recursive: yes-please}", []string{"is not a boolean"}},
		"maxMembers too large":       {"- {path: /a, objectAlias: x, maxMembers: 5000}", []string{"from 1 to 1000"}},
		"unknown filter key":         {"- {objectAlias: x, filters: [{key: tags, values: [a]}]}", []string{`"tags" is not a Secrets Manager filter key`}},
		"filter without values":      {"- {objectAlias: x, filters: [{key: name}]}", []string{"non-empty list"}},
		"filters not a list":         {"- {objectAlias: x, filters: {key: name}}", []string{"must be a list"}},
		"bad decoding":               {"- {objectName: a, objectType: secretsmanager, decoding: hex}", []string{`"hex" is not a decoding`}},
		"bad jmesPath decoding":      {"- {objectName: a, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: b, decoding: gzip}]}", []string{`"gzip" is not a decoding`}},
		"expandJSON not a boolean":   {"- {objectName: a, objectType: secretsmanager, expandJSON: maybe}", []string{"is not a boolean"}},
		"directory is another file":  {"- {objectName: a, objectType: secretsmanager, objectAlias: d, expandJSON: true}\n- {objectName: b, objectType: secretsmanager, objectAlias: d}", []string{"writes its files into \"d\""}},
		"two objects, one directory": {"- {path: /a, objectAlias: d}\n- {path: /b, objectAlias: d}", []string{"writes into directory \"d\""}},
		// Found by FuzzRender: the JMESPath lexer panicked on this.
		"jmesPath with invalid UTF-8": {`- {objectName: s, objectType: secretsmanager, jmesPath: [{path: "A\x80", objectAlias: x}]}`, []string{"is not a valid JMESPath expression: the expression cannot be parsed"}},
		"nothing selected":            {"- {objectType: secretsmanager}", []string{"objectName\": is required", "path: for a Parameter Store path"}},
	}
	for name, tc := range invalid {
		t.Run(name, func(t *testing.T) {
			_, err := parse(tc.objects)
			if err == nil {
				t.Fatal("parsed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
