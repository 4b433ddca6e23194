package esoconvert

import (
	"os"
	"strings"
	"testing"
	"unicode"
)

// FuzzConvert: whatever the manifests hold, Convert never panics, every
// line it prints is one line of printable characters, and every class it
// prints passes coffer validate.
func FuzzConvert(f *testing.F) {
	seed, err := os.ReadFile("testdata/seed.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	f.Add(esoInput(jwtAuth, "data: [{secretKey: k, remoteRef: {key: db, property: 'a.b.1', version: AWSPREVIOUS}}]\ndataFrom: [{extract: {key: all}}, {find: {path: x}}]"))
	f.Add(esoInput("auth: {secretRef: {}}\nrole: x\nprefix: /p/", "target: {name: t, template: {data: {a: '{{ .k }}'}, metadata: {labels: {a: b}}}}\n"+oneKey))
	f.Add("apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: \"a\\nDROPPED x\"}\nspec: {\"k\\n\": 1}\n")
	f.Add("apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: s}\nspec: {provider: {aws: {service: SecretsManager, auth: {jwt: {serviceAccountRef: {name: a, namespace: \"x\\e[2J\"}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: e, namespace: \"n\\u202e\"}\nspec: {secretStoreRef: {name: s, kind: ClusterSecretStore}, data: [{secretKey: k, remoteRef: {key: k}}]}\n")
	f.Fuzz(func(t *testing.T, input string) {
		res, err := Convert([]byte(input), Options{})
		if err != nil {
			return
		}
		for _, l := range res.Lines {
			if s := l.String(); strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }) {
				t.Errorf("a line holds a control or format character: %q", s)
			}
		}
		validateOutput(t, res.YAML)
	})
}
