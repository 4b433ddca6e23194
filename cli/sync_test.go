package cli

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestSyncFlags(t *testing.T) {
	tests := map[string]struct {
		args []string
		code int
		want string
	}{
		"help":                {args: []string{"sync", "-h"}, code: 0, want: "coffer-controller sync [flags]"},
		"unknown flag":        {args: []string{"sync", "--nope"}, code: 2, want: "coffer-controller sync: unknown flag: --nope"},
		"short token":         {args: []string{"sync", "--token-ttl=1m"}, code: 1, want: "--token-ttl must be at least 10m"},
		"bad provider name":   {args: []string{"sync", "--provider-name=a b"}, code: 1, want: "--provider-name"},
		"bad lease timings":   {args: []string{"sync", "--leader-election-renew-deadline=20s"}, code: 1, want: "leader election needs"},
		"renew within jitter": {args: []string{"sync", "--leader-election-renew-deadline=2400ms"}, code: 1, want: "leader election needs 0 < 1.2 x --leader-election-retry-period"},
		"fractional lease":    {args: []string{"sync", "--leader-election-lease-duration=15500ms"}, code: 1, want: "--leader-election-lease-duration 15.5s: use whole seconds"},
		"no workers":          {args: []string{"sync", "--workers=0"}, code: 1, want: "--workers"},
		"no value limit":      {args: []string{"sync", "--max-value-bytes=0"}, code: 1, want: "--max-value-bytes must be positive"},
		"value limit listed":  {args: []string{"sync", "-h"}, code: 0, want: "-max-value-bytes"},
		"not in the cluster":  {args: []string{"sync"}, code: 1, want: "connecting to the Kubernetes API"},
		"bad session scope":   {args: []string{"sync", "--sts-session-scope=node"}, code: 1, want: `--sts-session-scope: "node" is not a session scope: use "pod" or "serviceaccount"`},
		"serve session scope": {args: []string{"serve", "--sts-session-scope=Pod"}, code: 1, want: `--sts-session-scope: "Pod" is not a session scope`},
		"empty issuer":        {args: []string{"serve", "--service-account-issuer=https://a", "--service-account-issuer="}, code: 1, want: `--service-account-issuer "" must be a non-empty issuer`},
		"issuer listed":       {args: []string{"sync", "-h"}, code: 0, want: "--service-account-issuer"},
		"negative debounce":   {args: []string{"sync", "--restart-debounce=-1s"}, code: 1, want: "--restart-debounce must not be negative"},
		"restarts listed":     {args: []string{"sync", "-h"}, code: 0, want: "coffer-csi.github.io/restart-on-rotation"},
		"namespaces listed":   {args: []string{"sync", "-h"}, code: 0, want: "--namespaces strings"},
		"bad namespace":       {args: []string{"sync", "--namespaces=team-a,Team_B"}, code: 1, want: `--namespaces: "Team_B" is not a namespace name`},
		"newline namespace":   {args: []string{"sync", "--namespace=a\nb"}, code: 1, want: `--namespaces: "a\nb" is not a namespace name`},
		"too many namespaces": {args: []string{"sync", "--namespaces=" + manyNamespaces(maxSyncNamespaces+1)}, code: 1, want: "--namespaces names 101 namespaces, more than the limit of 100"},
		"namespaces at limit": {args: []string{"sync", "--namespaces=" + manyNamespaces(maxSyncNamespaces)}, code: 1, want: "connecting to the Kubernetes API"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			code, stdout, stderr := runBinary(t, tc.args...)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Errorf("exit %d, want %d; output %q does not contain %q", code, tc.code, stdout+stderr, tc.want)
			}
		})
	}
}

func manyNamespaces(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("team-%d", i)
	}
	return strings.Join(names, ",")
}

// TestSyncScope: --namespace (older installs) and --namespaces add up,
// each namespace once.
func TestSyncScope(t *testing.T) {
	for _, tc := range []struct {
		namespace  string
		namespaces []string
		want       []string
	}{
		{"", nil, nil},
		{"a", nil, []string{"a"}},
		{"", []string{"a", "b", "a"}, []string{"a", "b"}},
		{"b", []string{"a", "b"}, []string{"b", "a"}},
	} {
		c := &syncConfig{namespace: tc.namespace, namespaces: tc.namespaces}
		if got := c.scope(); !slices.Equal(got, tc.want) {
			t.Errorf("scope(%q, %q) = %q, want %q", tc.namespace, tc.namespaces, got, tc.want)
		}
	}
}

func TestServeSyncSecretsNeedsKubernetes(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("AWS_REGION", "us-east-1")
	code, _, stderr := run(t, "serve", "--provider-dir", t.TempDir(), "--insecure-node-credentials", "--sync-secrets")
	if code != 1 || !strings.Contains(stderr, "connecting to the Kubernetes API") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestUsageListsSync: the controller's help lists sync; the node's binary
// does not, and names the controller's when asked for it.
func TestUsageListsSync(t *testing.T) {
	if _, out, _ := runController(t, "help"); !strings.Contains(out, "coffer-controller sync") || !strings.Contains(out, "  sync ") {
		t.Errorf("coffer-controller's usage does not list sync:\n%s", out)
	}
	if _, out, _ := run(t, "help"); strings.Contains(out, "  sync ") {
		t.Errorf("coffer's usage lists sync:\n%s", out)
	}
	for _, args := range [][]string{{"sync"}, {"sync", "--provider-name", "aws", "--leader-elect=false"}} {
		code, stdout, stderr := run(t, args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "run coffer-controller sync with the same flags") {
			t.Errorf("coffer %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

// TestControllerServesEvaluator: provider/render/isolate re-executes the running
// binary as "evaluator", so the controller has that command too (hidden).
func TestControllerServesEvaluator(t *testing.T) {
	t.Setenv("COFFER_EVALUATOR_MEMORY", "")
	code, _, stderr := runController(t, "evaluator")
	if code != 1 || !strings.Contains(stderr, "COFFER_EVALUATOR_MEMORY must be a positive number of bytes") {
		t.Errorf("coffer-controller evaluator: exit %d, stderr %q", code, stderr)
	}
	if _, out, _ := runController(t, "help"); strings.Contains(out, "evaluator") {
		t.Errorf("coffer-controller's help lists the evaluator command:\n%s", out)
	}
}
