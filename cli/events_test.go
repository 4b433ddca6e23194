package cli

import (
	"strings"
	"testing"
)

// TestEventsFlags: coffer-controller events refuses what its flags cannot
// mean before it connects to anything, naming the flag and the fix.
func TestEventsFlags(t *testing.T) {
	const queue = "--queue-url=https://sqs.eu-west-1.amazonaws.com/123456789012/coffer-events"
	tests := map[string]struct {
		args []string
		code int
		want string
	}{
		"help":                {args: []string{"events", "-h"}, code: 0, want: "coffer-controller events --queue-url URL [flags]"},
		"listed":              {args: []string{"help"}, code: 0, want: "  events "},
		"unknown flag":        {args: []string{"events", "--nope"}, code: 2, want: "coffer-controller events: unknown flag: --nope"},
		"no queue":            {args: []string{"events"}, code: 1, want: "--queue-url is required"},
		"queue not a URL":     {args: []string{"events", "--queue-url=coffer-events"}, code: 1, want: "--queue-url: the queue URL is not an http(s) URL"},
		"queue without owner": {args: []string{"events", "--queue-url=https://sqs.eu-west-1.amazonaws.com/coffer-events"}, code: 1, want: "path is not /ACCOUNT/NAME"},
		"bad ledger name":     {args: []string{"events", queue, "--ledger=Coffer_Changes"}, code: 1, want: `--ledger "Coffer_Changes" is not a ConfigMap name`},
		"bad namespace":       {args: []string{"events", queue, "--ledger-namespace=a/b"}, code: 1, want: `--ledger-namespace "a/b" is not a namespace name`},
		"parameter ARN":       {args: []string{"events", queue, "--canary-parameter=arn:aws:ssm:eu-west-1:123456789012:parameter/c"}, code: 1, want: "--canary-parameter must be a parameter name"},
		"no canary secret":    {args: []string{"events", queue, "--canary-secret="}, code: 1, want: "--canary-secret must be a secret name"},
		"fast canary":         {args: []string{"events", queue, "--canary-interval=100ms"}, code: 1, want: "--canary-interval must be at least 1s"},
		"short retention":     {args: []string{"events", queue, "--ledger-retention=10s"}, code: 1, want: "--ledger-retention must be at least 1m"},
		"bad lease timings":   {args: []string{"events", queue, "--leader-election-renew-deadline=20s"}, code: 1, want: "leader election needs"},
		"bad lease name":      {args: []string{"events", queue, "--leader-election-id=Coffer Events"}, code: 1, want: `--leader-election-id "Coffer Events" is not a Lease name`},
		"no lease check off":  {args: []string{"events", queue, "--leader-election-id=Coffer Events", "--leader-elect=false", "--ledger-namespace=coffer"}, code: 1, want: "connecting to the Kubernetes API"},
		"URL's region wins":   {args: []string{"events", queue, "--ledger-namespace=coffer"}, code: 1, want: "connecting to the Kubernetes API"},
		"bad log level":       {args: []string{"events", queue, "--log-level=loud", "--ledger-namespace=coffer"}, code: 1, want: `--log-level "loud"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			t.Setenv("POD_NAMESPACE", "")
			t.Setenv("AWS_REGION", "")
			t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
			if name == "URL's region wins" {
				t.Setenv("AWS_REGION", "us-east-1")
			}
			code, stdout, stderr := runController(t, tc.args...)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Errorf("exit %d, want %d; output %q does not contain %q", code, tc.code, stdout+stderr, tc.want)
			}
		})
	}
}
