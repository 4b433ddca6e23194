package e2e

import (
	"encoding/base64"
	"testing"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// 8. coffer's extensions through the real driver: a Parameter Store path, a
// Secrets Manager filter, an expanded JSON secret and a base64 value; on
// rotation, members of the path appear and disappear.
func TestExtensions(t *testing.T) {
	const ns, region = "e2e-extensions", "us-east-1"
	ctx := setup(t, ns)
	putParameter(ctx, t, region, "/ext/app/host", "canary-ext-host", ssmtypes.ParameterTypeString)
	putParameter(ctx, t, region, "/ext/app/port", "canary-ext-port", ssmtypes.ParameterTypeString)
	createSecret(ctx, t, region, "ext/pay/a", "canary-ext-pay-a")
	createSecret(ctx, t, region, "ext/pay/b", "canary-ext-pay-b")
	createSecret(ctx, t, region, "ext/config", `{"user":"canary-ext-user","port":5432}`)
	createSecret(ctx, t, region, "ext/cert", base64.StdEncoding.EncodeToString([]byte("canary-ext-cert-bytes")))

	createServiceAccount(ctx, t, ns, "app", roleARN("ext-app"))
	createSPC(ctx, t, ns, spcSpec{name: "ext", params: map[string]string{"region": region, "objects": `
- {path: /ext/app/, objectAlias: app}
- {objectAlias: pay, filters: [{key: name, values: [ext/pay/]}]}
- {objectName: ext/config, objectType: secretsmanager, objectAlias: config, expandJSON: true}
- {objectName: ext/cert, objectType: secretsmanager, objectAlias: cert.pem, decoding: base64, filePermission: "0600"}
`}})
	pod := createPod(ctx, t, ns, "app-0", "app", "ext")
	pod.mount(ctx)
	pod.checkFiles(map[string]wantFile{
		"app/host":      {"canary-ext-host", 0o644},
		"app/port":      {"canary-ext-port", 0o644},
		"pay/ext_pay_a": {"canary-ext-pay-a", 0o644},
		"pay/ext_pay_b": {"canary-ext-pay-b", 0o644},
		"config/user":   {"canary-ext-user", 0o644},
		"config/port":   {"5432", 0o644},
		"cert.pem":      {"canary-ext-cert-bytes", 0o600},
	})

	// Rotation: a parameter goes, another arrives, one changes.
	deleteParameter(ctx, t, region, "/ext/app/port")
	putParameter(ctx, t, region, "/ext/app/user", "canary-ext-new-user", ssmtypes.ParameterTypeString)
	putParameter(ctx, t, region, "/ext/app/host", "canary-ext-host-2", ssmtypes.ParameterTypeString)
	pod.republish(ctx)
	pod.checkFiles(map[string]wantFile{
		"app/host":      {"canary-ext-host-2", 0o644},
		"app/user":      {"canary-ext-new-user", 0o644},
		"pay/ext_pay_a": {"canary-ext-pay-a", 0o644},
		"pay/ext_pay_b": {"canary-ext-pay-b", 0o644},
		"config/user":   {"canary-ext-user", 0o644},
		"config/port":   {"5432", 0o644},
		"cert.pem":      {"canary-ext-cert-bytes", 0o600},
	})
	versions, err := pod.podStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, gone := versions["app/port"]; gone {
		t.Errorf("the removed member is still in the pod status: %v", versions)
	}
	if versions["app/user"] != "1" || versions["app/host"] != "2" {
		t.Errorf("member versions in the pod status: %v", versions)
	}
}
