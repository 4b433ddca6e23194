package socket_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/coffer-csi/coffer/internal/version"
	"github.com/coffer-csi/coffer/tests/fakeaws"
	"github.com/coffer-csi/coffer/wiring"
)

// sample returns the value of a counter or gauge series, or the sample
// count of a histogram series, matching every given label.
func sample(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return total
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestMetricsAfterScriptedMounts(t *testing.T) {
	// A short deadline: the throttled mount is sent again within it.
	h := newHarness(t, harnessOptions{config: func(c *wiring.Config) {
		c.Cache.MaxStaleness, c.Server.MountTimeout = time.Minute, 2*time.Second
	}})
	reg := h.metrics
	h.fake.PutSecretString(primary, "m/a", "12345")
	h.fake.PutSecretString(primary, "m/b", "678")
	h.fake.PutParameter(primary, "/m/p", "xy", "String")
	good := map[string]string{"objects": `
- {objectName: m/a, objectType: secretsmanager}
- {objectName: m/b, objectType: secretsmanager}
- {objectName: /m/p, objectType: ssmparameter}
`}
	// Two good mounts of two pods: the second is served from the cache.
	for _, uid := range []string{"0b7f4f4c-0000-4000-8000-00000000000a", "0b7f4f4c-0000-4000-8000-00000000000b"} {
		good["csi.storage.k8s.io/pod.uid"] = uid
		if _, err := h.mount(t, good); err != nil {
			t.Fatal(err)
		}
	}
	// One invalid class, one missing secret, one throttled call.
	h.mount(t, map[string]string{"objects": "- {objectName: x, objectTpye: secretsmanager}"})
	h.mount(t, map[string]string{"objects": "- {objectName: m/missing, objectType: secretsmanager}"})
	h.fake.InjectFault(fakeaws.Fault{Operation: "GetSecretValue", Kind: fakeaws.FaultThrottle})
	h.mount(t, map[string]string{"objects": "- {objectName: m/throttled, objectType: secretsmanager}"})

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"coffer_mount_requests_total", map[string]string{"outcome": "success", "error_class": "none"}, 2},
		{"coffer_mount_requests_total", map[string]string{"outcome": "error", "error_class": "invalid_config"}, 1},
		{"coffer_mount_requests_total", map[string]string{"outcome": "error", "error_class": "not_found"}, 1},
		{"coffer_mount_requests_total", map[string]string{"outcome": "error", "error_class": "throttled"}, 1},
		{"coffer_mount_duration_seconds", map[string]string{"outcome": "success"}, 2},
		{"coffer_mount_duration_seconds", map[string]string{"outcome": "error"}, 3},
		{"coffer_mounts_in_flight", nil, 0},
		{"coffer_mount_response_files_total", nil, 6},
		{"coffer_mount_response_bytes_total", nil, 2 * (5 + 3 + 2)},
		{"coffer_aws_api_calls_total", map[string]string{"service": "Secrets Manager", "operation": "BatchGetSecretValue", "outcome": "success"}, 1},
		{"coffer_aws_api_calls_total", map[string]string{"service": "SSM", "operation": "GetParameters", "outcome": "success"}, 1},
		{"coffer_aws_api_calls_total", map[string]string{"service": "Secrets Manager", "operation": "GetSecretValue", "outcome": "error"}, 1},
		// Every attempt AWS throttled (the call is sent again while the
		// deadline leaves room), each counted; the other one is m/missing.
		{"coffer_aws_api_calls_total", map[string]string{"service": "Secrets Manager", "operation": "GetSecretValue", "outcome": "throttled"}, float64(h.fake.Count(fakeaws.ServiceSecretsManager, "GetSecretValue") - 1)},
		{"coffer_aws_api_call_duration_seconds", map[string]string{"service": "SSM"}, 1},
		{"coffer_cache_requests_total", map[string]string{"result": "hit"}, 3},
		{"coffer_build_info", map[string]string{"version": version.Version}, 1},
	}
	if n := h.fake.Count(fakeaws.ServiceSecretsManager, "GetSecretValue") - 1; n < 2 {
		t.Errorf("the throttled call was sent %d times, want it sent again", n)
	}
	for _, tc := range tests {
		if got := sample(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// Labels never carry object names or values.
	assertLabelsFree(t, reg, "m/a", "12345", "/m/p")
}

// assertLabelsFree fails if any label value of any series contains one of
// the given strings.
func assertLabelsFree(t *testing.T, reg prometheus.Gatherer, forbidden ...string) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, bad := range forbidden {
					if strings.Contains(l.GetValue(), bad) {
						t.Errorf("%s has label %s=%q, which contains %q", f.GetName(), l.GetName(), l.GetValue(), bad)
					}
				}
			}
		}
	}
}

func TestMetricsCredentialFetches(t *testing.T) {
	h, c := newWorkloadHarness(t)
	seedTeams(h.fake)
	for range 3 {
		if _, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "p", secretOf("team-a"))); err != nil {
			t.Fatal(err)
		}
	}
	h.mountAttrs(t, c.podAttrs("team-d", "app", "p", secretOf("team-a"))) // refused by STS
	if got := sample(t, h.metrics, "coffer_credential_fetches_total", map[string]string{"mode": "irsa", "outcome": "success"}); got != 1 {
		t.Errorf("successful IRSA fetches = %v, want 1 (then reused)", got)
	}
	if got := sample(t, h.metrics, "coffer_credential_fetches_total", map[string]string{"mode": "irsa", "outcome": "error"}); got != 1 {
		t.Errorf("failed IRSA fetches = %v, want 1", got)
	}
	if got := sample(t, h.metrics, "coffer_aws_api_calls_total", map[string]string{"service": "STS", "operation": "AssumeRoleWithWebIdentity"}); got != 2 {
		t.Errorf("STS calls = %v, want 2", got)
	}
	if got := sample(t, h.metrics, "coffer_mount_requests_total", map[string]string{"error_class": "identity_denied"}); got != 1 {
		t.Errorf("identity_denied mounts = %v, want 1", got)
	}
}
