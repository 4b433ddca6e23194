package socket_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/tests/fakeaws"
	"github.com/coffer-csi/coffer/wiring"
)

// The freshness guarantees, through the socket and the AWS fake. The bound
// is a parameter (--max-staleness, 5 s by default); these tests use a short
// one so that passing it takes a fraction of a second.

const freshObjects = "- {objectName: app/db, objectType: secretsmanager, objectAlias: db}"

// podMount mounts freshObjects as the pod with uid and returns the value.
func (h *harness) podMount(t *testing.T, uid string) (string, string, error) {
	t.Helper()
	resp, err := h.mount(t, map[string]string{"objects": freshObjects, "csi.storage.k8s.io/pod.uid": uid})
	if err != nil {
		return "", "", err
	}
	fs, vs := files(resp)
	return string(fs["db"].GetContents()), vs["db"], nil
}

func mustValue(t *testing.T, h *harness, uid, want string) string {
	t.Helper()
	got, version, err := h.podMount(t, uid)
	if err != nil {
		t.Fatalf("%s: %v", uid, err)
	}
	if got != want {
		t.Fatalf("%s got %q, want %q", uid, got, want)
	}
	return version
}

func TestUpdateThenNewPodGetsNewValue(t *testing.T) {
	const bound = 300 * time.Millisecond
	// The cache keeps values an hour (as for serving through an outage):
	// only the freshness bound decides what a new pod may reuse.
	clk := &aheadClock{}
	h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Cache.MaxStaleness, c.Clock = bound, clk }})
	h.fake.PutSecretString(primary, "app/db", "v1")
	mustValue(t, h, "pod-1", "v1")
	// Within the bound, pods of one identity share the read.
	h.fake.ResetCalls()
	mustValue(t, h, "pod-2", "v1")
	if n := len(h.fake.Calls()); n != 0 {
		t.Errorf("a second pod within the bound made %d AWS calls, want 0", n)
	}
	h.fake.PutSecretString(primary, "app/db", "v2")
	clk.advance(bound)
	mustValue(t, h, "pod-3", "v2")
}

func TestChangeThenRemountGetsNewValue(t *testing.T) {
	// The opt-in long reuse window (--cache-ttl): remounts still read AWS
	// after the pod's previous mount.
	h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Cache.MaxStaleness = time.Hour }})
	h.fake.PutSecretString(primary, "app/db", "v1")
	v1 := mustValue(t, h, "pod-1", "v1")
	mustValue(t, h, "pod-2", "v1")
	h.fake.PutSecretString(primary, "app/db", "v2")

	h.fake.ResetCalls()
	if v2 := mustValue(t, h, "pod-1", "v2"); v2 == v1 {
		t.Errorf("remount kept version %s", v1)
	}
	if n := len(h.fake.Calls()); n != 1 {
		t.Errorf("remount made %d AWS calls, want 1", n)
	}
	// pod-2's previous mount ended before pod-1's remount read AWS: that
	// read serves pod-2's remount, and a new pod, without another call.
	h.fake.ResetCalls()
	mustValue(t, h, "pod-2", "v2")
	mustValue(t, h, "pod-3", "v2")
	if n := len(h.fake.Calls()); n != 0 {
		t.Errorf("remount and new pod after a fresh read made %d AWS calls, want 0", n)
	}
	// A remount right after a remount reads again: nothing read before its
	// previous mount, however recent.
	h.fake.ResetCalls()
	mustValue(t, h, "pod-2", "v2")
	if n := len(h.fake.Calls()); n != 1 {
		t.Errorf("second remount made %d AWS calls, want 1", n)
	}
}

func TestRevokeThenNewPodIsRefused(t *testing.T) {
	const bound = 300 * time.Millisecond
	clk := &aheadClock{}
	h, c := newWorkloadHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Cache.MaxStaleness, c.Clock = bound, clk }})
	seedTeams(h.fake)
	if _, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "pod-1", secretOf("team-a"))); err != nil {
		t.Fatal(err)
	}
	// The role loses access; its credentials (cached by coffer) stay valid.
	if err := h.fake.SetRolePermissions(roleA, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	clk.advance(bound)
	_, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "pod-2", secretOf("team-a")))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("a new pod of a role that lost access: %v, want PermissionDenied (access denied)", err)
	}
	// And a remount of the first pod is refused too.
	if _, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "pod-1", secretOf("team-a"))); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("remount after revocation: %v, want PermissionDenied", err)
	}
}

func TestOutageServesLastGoodValueOnlyWhenAllowed(t *testing.T) {
	outages := []struct {
		name   string
		inject func(f *fakeaws.Server)
		reason string
	}{
		{"region down (503)", func(f *fakeaws.Server) { f.SetRegionDown(primary, true) }, "unavailable"},
		{"throttled after retries", func(f *fakeaws.Server) {
			f.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultThrottle})
		}, "throttled"},
		{"server errors", func(f *fakeaws.Server) {
			f.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultServerError})
		}, "unavailable"},
		{"connection reset", func(f *fakeaws.Server) {
			f.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultReset})
		}, "unavailable"},
		{"no answer", func(f *fakeaws.Server) {
			f.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultHang})
		}, "timeout"},
	}
	for _, tc := range outages {
		for _, on := range []bool{true, false} {
			name := tc.name + map[bool]string{true: ", serve-stale on", false: ", serve-stale off"}[on]
			t.Run(name, func(t *testing.T) {
				h := newHarness(t, harnessOptions{config: func(c *wiring.Config) {
					c.Cache.MaxStaleness, c.Server.MountTimeout = time.Nanosecond, 2*time.Second
					if on {
						c.Cache.ServeStale = time.Hour
					}
				}})
				h.fake.PutSecretString(primary, "app/db", "last-good")
				mustValue(t, h, "pod-1", "last-good")
				tc.inject(h.fake)
				got, _, err := h.podMount(t, "pod-2")
				if !on {
					if err == nil {
						t.Fatalf("mounted %q during an outage with serve-stale off", got)
					}
					msg := status.Convert(err).Message()
					if !strings.Contains(msg, "app/db") || !strings.Contains(msg, map[string]string{"unavailable": "did not answer", "throttled": "throttled", "timeout": "timed out"}[tc.reason]) {
						t.Errorf("outage error does not name the object and the cause: %v", err)
					}
					return
				}
				if err != nil || got != "last-good" {
					t.Fatalf("new pod during an outage: %q, %v; want the last good value", got, err)
				}
				if n := sample(t, h.metrics, "coffer_stale_answers_age_seconds", map[string]string{"reason": tc.reason}); n != 1 {
					t.Errorf("stale answers counted %v, want 1 with reason %s", n, tc.reason)
				}
				logs := h.logs.String()
				if !strings.Contains(logs, "served the last good value") || !strings.Contains(logs, "age=") || strings.Contains(logs, "last-good") {
					t.Errorf("stale answer not logged with its age (or the value leaked):\n%s", logs)
				}
				// The pod that mounted before the outage gets nothing read
				// before that mount: its remount fails, and the driver keeps
				// its files.
				if got, _, err := h.podMount(t, "pod-1"); err == nil {
					t.Errorf("remount during the outage got %q, read before its previous mount", got)
				}
			})
		}
	}
}

func TestOutageNeverHidesAnswers(t *testing.T) {
	// AWS answering "no" is not an outage: these fail even with serving
	// through outages on and a last good value at hand.
	answers := []struct {
		name   string
		inject func(f *fakeaws.Server)
		code   codes.Code
	}{
		{"access denied", func(f *fakeaws.Server) {
			f.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultError, Code: "AccessDeniedException", Message: "denied"})
		}, codes.PermissionDenied},
		{"not found", func(f *fakeaws.Server) { f.DeleteSecret(primary, "app/db") }, codes.NotFound},
		{"KMS failure", func(f *fakeaws.Server) {
			f.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultDecryptionFailure})
		}, codes.FailedPrecondition},
		{"invalid request", func(f *fakeaws.Server) {
			f.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultError, Code: "InvalidRequestException", Message: "bad"})
		}, codes.FailedPrecondition},
	}
	for _, tc := range answers {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Cache.MaxStaleness, c.Cache.ServeStale = time.Nanosecond, time.Hour }})
			h.fake.PutSecretString(primary, "app/db", "last-good")
			mustValue(t, h, "pod-1", "last-good")
			tc.inject(h.fake)
			got, _, err := h.podMount(t, "pod-2")
			if err == nil {
				t.Fatalf("served %q although AWS answered %s", got, tc.name)
			}
			if c := status.Code(err); c != tc.code {
				t.Errorf("code %v, want %v: %v", c, tc.code, err)
			}
			if n := sample(t, h.metrics, "coffer_stale_answers_age_seconds", nil); n != 0 {
				t.Errorf("%v stale answers counted", n)
			}
		})
	}
}

func TestOutageStaleValueBounds(t *testing.T) {
	t.Run("older than allowed", func(t *testing.T) {
		clk := &aheadClock{}
		h := newHarness(t, harnessOptions{config: func(c *wiring.Config) {
			c.Cache.MaxStaleness, c.Cache.ServeStale, c.Clock = time.Nanosecond, 200*time.Millisecond, clk
		}})
		h.fake.PutSecretString(primary, "app/db", "last-good")
		mustValue(t, h, "pod-1", "last-good")
		h.fake.SetRegionDown(primary, true)
		clk.advance(200 * time.Millisecond)
		if got, _, err := h.podMount(t, "pod-2"); err == nil {
			t.Fatalf("served %q, older than --serve-stale-on-outage", got)
		}
	})
	t.Run("every region failing", func(t *testing.T) {
		h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Cache.MaxStaleness, c.Cache.ServeStale = time.Nanosecond, time.Hour }})
		for _, r := range []string{primary, failover} {
			h.fake.PutSecretString(r, "app/db", "in-"+r)
		}
		params := map[string]string{"objects": freshObjects, "failoverRegion": failover, "csi.storage.k8s.io/pod.uid": "pod-1"}
		if _, err := h.mount(t, params); err != nil {
			t.Fatal(err)
		}
		// Only the primary down: the failover region answers, fresh.
		h.fake.SetRegionDown(primary, true)
		params["csi.storage.k8s.io/pod.uid"] = "pod-2"
		resp, err := h.mount(t, params)
		if fs, _ := files(resp); err != nil || string(fs["db"].GetContents()) != "in-"+failover {
			t.Fatalf("primary down, failover up: %v", err)
		}
		if n := sample(t, h.metrics, "coffer_stale_answers_age_seconds", nil); n != 0 {
			t.Errorf("failover answer counted as stale")
		}
		// Both down: the newest last good value, from either region.
		h.fake.SetRegionDown(failover, true)
		params["csi.storage.k8s.io/pod.uid"] = "pod-3"
		resp, err = h.mount(t, params)
		if fs, _ := files(resp); err != nil || string(fs["db"].GetContents()) != "in-"+failover {
			t.Fatalf("both regions down: %v", err)
		}
		if n := sample(t, h.metrics, "coffer_stale_answers_age_seconds", nil); n != 1 {
			t.Errorf("%v stale answers counted, want 1", n)
		}
	})
}

func TestOutageNeverCrossesIdentities(t *testing.T) {
	h, c := newWorkloadHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Cache.MaxStaleness, c.Cache.ServeStale = time.Nanosecond, time.Hour }})
	seedTeams(h.fake)
	// Both teams have credentials; team A has read its secrets.
	for _, team := range []string{"team-a", "team-b"} {
		if _, err := h.mountAttrs(t, c.podAttrs(team, "app", team+"-1", secretOf(team))); err != nil {
			t.Fatal(err)
		}
	}
	h.fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultServerError})
	h.fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSSM, Kind: fakeaws.FaultServerError})
	// Team B asking for team A's secrets during the outage gets nothing.
	if resp, err := h.mountAttrs(t, c.podAttrs("team-b", "app", "team-b-2", secretOf("team-a"))); err == nil {
		got, _ := files(resp)
		t.Fatalf("team B was served team A's last good values: %q", got["db"].GetContents())
	}
	// Team A's new pod gets its own.
	resp, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "team-a-2", secretOf("team-a")))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := files(resp); string(got["db"].GetContents()) != "team-a-db-value" {
		t.Errorf("team A got %q", got["db"].GetContents())
	}
}

// aheadClock is coffer's clock in tests that need time to pass: real time
// plus an offset the test advances, so that a bound passes at once. Its
// timers are the real clock's: only what coffer reads from Now moves.
type aheadClock struct {
	clock.RealClock
	offset atomic.Int64
}

func (c *aheadClock) Now() time.Time                  { return c.RealClock.Now().Add(time.Duration(c.offset.Load())) }
func (c *aheadClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *aheadClock) advance(d time.Duration)         { c.offset.Add(int64(d)) }
