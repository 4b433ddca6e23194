package secretsync

import (
	"strings"
	"testing"

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
