package cli

import (
	"strings"
	"testing"
)

func TestServeQuotaFlags(t *testing.T) {
	_, help, _ := run(t, "serve", "--help")
	for _, want := range []string{"-ssm-higher-throughput", "-aws-quota-batch-get-secret-value float", "(default 100)", "-aws-quota-get-secret-value float", "(default 10000)", "-aws-quota-node-share float", "(default 0.5)", "-remount-jitter duration", "-aws-throttle-cooldown duration"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve -h lacks %q", want)
		}
	}
	bad := map[string]string{
		"--aws-quota-node-share=0":              "--aws-quota-node-share",
		"--aws-quota-node-share=1.5":            "--aws-quota-node-share",
		"--aws-quota-batch-get-secret-value=0":  "BatchGetSecretValue quota",
		"--aws-quota-get-parameters=-5":         "must not be negative",
		"--aws-quota-get-parameters-by-path=50": "needs --ssm-higher-throughput",
		"--aws-throttle-cooldown=0s":            "--aws-throttle-cooldown",
		"--remount-jitter=-1s":                  "--remount-jitter",
	}
	for flag, want := range bad {
		if code, _, stderr := run(t, "serve", flag); code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want it to name %q", flag, code, stderr, want)
		}
	}
}
