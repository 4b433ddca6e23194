package secretsync

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// FuzzParseDeclaration: whatever a syncSecrets declaration holds, parsing
// never panics and explains a refusal on one line.
func FuzzParseDeclaration(f *testing.F) {
	seeds := []string{
		"- secretName: slack-url\n  data:\n    - {key: address, objectName: dev_slackurl}",
		"- secretName: tls\n  type: kubernetes.io/tls\n  data: [{key: tls.crt, objectName: cert}, {key: tls.key, objectName: key}]",
		"- secretName: all\n  dataFrom: [{extract: {objectName: db}}]\n  creationPolicy: Merge\n  deletionPolicy: Delete",
		"- secretName: t\n  template:\n    data: {url: '{{ .db.user }}'}\n  refreshInterval: 1h\n  serviceAccountName: app",
		"[", "- 1", "secretName: x",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	cfg, err := spc.Parse(map[string]string{"region": "us-east-1", "objects": "- {objectName: dev/slackurl, objectType: secretsmanager}\n- {objectName: db, objectType: secretsmanager, jmesPath: [{path: user, objectAlias: user}]}\n- {objectName: cert, objectType: secretsmanager}\n- {objectName: key, objectType: secretsmanager}"}, spc.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := Parse(raw, cfg); err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error spans lines: %q", err)
		}
	})
}

// FuzzTemplate: whatever a template says and whatever the values hold,
// building the Secret never panics, never puts a value in an error, and
// allocates no more than a fixed multiple of the Secret size limit.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		`{{ .pw | b64enc }}`, `{{ range fromJson .list }}{{ . }}{{ end }}`,
		`{{range fromJson .list}}{{range fromJson $.list}}{{range fromJson $.list}}{{$.pw}}{{end}}{{end}}{{end}}`,
		`{{$x := .pw}}{{range fromJson .list}}{{$x = printf "%s%s" $x $x}}{{end}}`,
		`{{define "a"}}{{if .}}{{template "a" (slice . 1)}}{{template "a" (slice . 1)}}{{end}}{{end}}{{template "a" .list}}`,
		`{{ printf "%0999999999d" 1 }}`, `{{ range .pw }}{{ end }}`,
	} {
		f.Add(s, "[0,1,2,3]")
	}
	cfg, err := spc.Parse(map[string]string{"region": "us-east-1", "objects": "- {objectName: pw, objectType: secretsmanager}\n- {objectName: list, objectType: secretsmanager}"}, spc.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tmpl, list string) {
		decl := "[{secretName: s, data: [{key: pw, objectName: pw}, {key: list, objectName: list}], template: {data: {x: '" + strings.ReplaceAll(tmpl, "'", "''") + "'}}}]"
		secrets, err := Parse(decl, cfg)
		if err != nil {
			return
		}
		files := map[string]render.File{
			"pw":   {Path: "pw", Data: []byte(canary + "-fuzz"), Object: cfg.Objects[0]},
			"list": {Path: "list", Data: []byte(list), Object: cfg.Objects[1]},
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = secrets[0].Build(context.Background(), files)
		runtime.ReadMemStats(&after)
		if err != nil && strings.Contains(err.Error(), canary) {
			t.Fatalf("error holds the value: %v", err)
		}
		if got, bound := after.TotalAlloc-before.TotalAlloc, uint64(maxTemplateAllocPerByte*MaxSecretBytes+64*len(list)); got > bound {
			t.Fatalf("allocated %d bytes, over %d", got, bound)
		}
	})
}
