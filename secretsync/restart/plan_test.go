package restart

import (
	"strings"
	"testing"
	"time"
)

// step is one look at a workload: its inputs at offset after the start, the
// decision expected, and (for a restart) whether the API accepted it.
type step struct {
	at       time.Duration
	in       Inputs
	restart  bool
	wake     time.Duration // expected Wake offset (0: none)
	changes  string        // expected Changes, comma-joined, when restart
	rejected bool          // the restart's patch failed
}

func mount(uid string, current bool, versions ...string) PodMount {
	v := map[string]string{}
	for _, kv := range versions {
		k, val, _ := strings.Cut(kv, "=")
		v[k] = val
	}
	return PodMount{PodUID: uid, Class: "db", Current: current, Versions: v}
}

// pods returns n pods of one generation, the first rotated of them
// mounting rotated and the others old.
func pods(prefix string, n, rotated int, current bool, old, rotatedTo string) []PodMount {
	out := make([]PodMount, n)
	for i := range n {
		v := old
		if i < rotated {
			v = rotatedTo
		}
		out[i] = mount(prefix+string(rune('a'+i%26))+string(rune('a'+i/26)), current, "password="+v)
	}
	return out
}

func TestPlan(t *testing.T) {
	const debounce = 30 * time.Second
	s := time.Second
	tests := map[string][]step{
		"first sight is a baseline, never a change": {
			{at: 0, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v2")}, Secrets: []SecretInput{{"app", "h2"}}}},
			{at: 40 * s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v2")}, Secrets: []SecretInput{{"app", "h2"}}}},
		},
		"a rotation restarts once, at the end of the debounce window": {
			{at: 0, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v1")}}},
			{at: 10 * s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v2")}}, wake: 40 * s},
			{at: 20 * s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v2")}}, wake: 40 * s},
			{at: 40 * s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v2")}}, restart: true, changes: "secretproviderclass/db password@v2"},
			// The old pod is no longer current; the new one starts with v2.
			{at: 41 * s, in: Inputs{Mounts: []PodMount{mount("p1", false, "password=v2"), mount("p2", true, "password=v2")}}},
			{at: 90 * s, in: Inputs{Mounts: []PodMount{mount("p2", true, "password=v2")}}},
		},
		"debounce 0 restarts at once": {
			{at: 0, in: Inputs{Secrets: []SecretInput{{"app", "h1"}}}},
			{at: s, in: Inputs{Secrets: []SecretInput{{"app", "h2"}}}, restart: true, changes: "secret/app"},
			{at: 2 * s, in: Inputs{Secrets: []SecretInput{{"app", "h2"}}}},
		},
		"the window opens at the first change and does not slide": {
			{at: 0, in: Inputs{Secrets: []SecretInput{{"app", "h1"}}}},
			{at: 10 * s, in: Inputs{Secrets: []SecretInput{{"app", "h2"}}}, wake: 40 * s},
			{at: 30 * s, in: Inputs{Secrets: []SecretInput{{"app", "h3"}}}, wake: 40 * s},
			{at: 40 * s, in: Inputs{Secrets: []SecretInput{{"app", "h3"}}}, restart: true, changes: "secret/app"},
		},
		"a failed restart is retried, not forgotten": {
			{at: 0, in: Inputs{Secrets: []SecretInput{{"app", "h1"}}}},
			{at: s, in: Inputs{Secrets: []SecretInput{{"app", "h2"}}}, wake: 31 * s},
			{at: 31 * s, in: Inputs{Secrets: []SecretInput{{"app", "h2"}}}, restart: true, changes: "secret/app", rejected: true},
			{at: 35 * s, in: Inputs{Secrets: []SecretInput{{"app", "h2"}}}, restart: true, changes: "secret/app"},
			{at: 36 * s, in: Inputs{Secrets: []SecretInput{{"app", "h2"}}}},
		},
		"a change whose pods are gone before the window ends restarts nothing": {
			{at: 0, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v1"), mount("p2", true, "password=v1")}}},
			{at: s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v2"), mount("p2", true, "password=v1")}}, wake: 31 * s},
			{at: 2 * s, in: Inputs{Mounts: []PodMount{mount("p2", true, "password=v1")}}},
			{at: 40 * s, in: Inputs{Mounts: []PodMount{mount("p2", true, "password=v1")}}},
		},
		"a Secret reverted to older content restarts again": {
			{at: 0, in: Inputs{Secrets: []SecretInput{{"app", "h1"}}}},
			{at: s, in: Inputs{Secrets: []SecretInput{{"app", "h2"}}}, wake: 31 * s},
			{at: 31 * s, in: Inputs{Secrets: []SecretInput{{"app", "h2"}}}, restart: true, changes: "secret/app"},
			{at: 40 * s, in: Inputs{Secrets: []SecretInput{{"app", "h1"}}}, wake: 70 * s},
			{at: 70 * s, in: Inputs{Secrets: []SecretInput{{"app", "h1"}}}, restart: true, changes: "secret/app"},
		},
		"a pod rotated back to the version it started with is not stale": {
			{at: 0, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v1")}}},
			{at: s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v2")}}, wake: 31 * s},
			{at: 2 * s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v1")}}},
			{at: 40 * s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v1")}}},
		},
		"an object added to the class is not a rotation": {
			{at: 0, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v1")}}},
			{at: 40 * s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v1", "user=u1")}}},
		},
		"mounts and Secrets together, each change named once": {
			{at: 0, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v1"), mount("p2", true, "password=v1")}, Secrets: []SecretInput{{"app", "h1"}}}},
			{at: 10 * s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v2"), mount("p2", true, "password=v1")}, Secrets: []SecretInput{{"app", "h1"}}}, wake: 40 * s},
			{at: 40 * s, in: Inputs{Mounts: []PodMount{mount("p1", true, "password=v2"), mount("p2", true, "password=v2")}, Secrets: []SecretInput{{"app", "h2"}}}, restart: true, changes: "secret/app,secretproviderclass/db password@v2"},
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			runSteps(t, debounce, steps)
		})
	}
}

func runSteps(t *testing.T, debounce time.Duration, steps []step) {
	t.Helper()
	if strings.Contains(t.Name(), "debounce_0") {
		debounce = 0
	}
	start := time.Unix(1_000_000, 0)
	st := NewState()
	for i, stp := range steps {
		d := st.Plan(stp.in, start.Add(stp.at), debounce)
		if d.Restart != stp.restart {
			t.Fatalf("step %d (at %s): Restart = %v, want %v (%+v)", i, stp.at, d.Restart, stp.restart, d)
		}
		var wantWake time.Time
		if stp.wake > 0 {
			wantWake = start.Add(stp.wake)
		}
		if !d.Wake.Equal(wantWake) {
			t.Errorf("step %d: Wake = %v, want %v", i, d.Wake, wantWake)
		}
		if d.Restart {
			if got := strings.Join(d.Changes, ","); got != stp.changes {
				t.Errorf("step %d: Changes = %q, want %q", i, got, stp.changes)
			}
			if !stp.rejected {
				st.Restarted(stp.in, "", "gen")
			}
		}
	}
}

// The no-loop rule, at scale: a driver sweep rotates 100 pods of one
// Deployment over several minutes, in random order with the restart's own
// rollout; exactly one restart comes of it, whatever the debounce.
func TestPlanSweepOf100PodsRestartsOnce(t *testing.T) {
	for _, debounce := range []time.Duration{0, time.Second, 30 * time.Second, 10 * time.Minute} {
		t.Run(debounce.String(), func(t *testing.T) {
			const n = 100
			start := time.Unix(1_000_000, 0)
			st := NewState()
			restarts := 0
			generation := "" // the template's restarted-at
			old := pods("old-", n, 0, true, "v1", "v2")
			st.Plan(Inputs{Mounts: old}, start, debounce)
			var fresh []PodMount
			now := start
			// Each tick the driver rotates one more old pod; after the
			// restart, each tick one new pod starts (with v2) and one old
			// pod ends.
			for tick := 1; tick <= 3*n; tick++ {
				now = now.Add(3 * time.Second)
				rotated := min(tick, n)
				cur := pods("old-", n, rotated, generation == "", "v1", "v2")
				if restarts > 0 {
					gone := min(len(fresh), n)
					cur = cur[gone:]
					if len(fresh) < n {
						fresh = append(fresh, mount("new-"+string(rune('a'+len(fresh)%26))+string(rune('a'+len(fresh)/26)), true, "password=v2"))
					}
				}
				in := Inputs{Mounts: append(append([]PodMount{}, cur...), fresh...)}
				d := st.Plan(in, now, debounce)
				if d.Restart {
					restarts++
					generation = "gen1"
					st.Restarted(in, "", generation)
				}
			}
			if restarts != 1 {
				t.Errorf("%d restarts, want exactly 1", restarts)
			}
		})
	}
}

func TestGenerationCoversAStaleCopy(t *testing.T) {
	st := NewState()
	if g := st.Generation("t0"); g != "t0" {
		t.Errorf("Generation = %q before any restart", g)
	}
	st.Restarted(Inputs{}, "t0", "t1")
	if g := st.Generation("t0"); g != "t1" {
		t.Errorf("Generation with a stale copy = %q, want t1", g)
	}
	if g := st.Generation("t1"); g != "t1" {
		t.Errorf("Generation = %q, want t1", g)
	}
	if g := st.Generation("t9"); g != "t9" {
		t.Errorf("Generation after someone else's change = %q, want t9", g)
	}
}

func TestSummaryBounded(t *testing.T) {
	var many []string
	for range 200 {
		many = append(many, "secretproviderclass/db "+strings.Repeat("x", 40)+"@v2")
	}
	s := Summary(many)
	if len(s) > maxSummary || !strings.Contains(s, "more") {
		t.Errorf("summary of %d bytes: %s", len(s), s)
	}
	if got := Summary([]string{"secret/a", "secret/b"}); got != "secret/a, secret/b" {
		t.Errorf("Summary = %q", got)
	}
}

// The state holds only what the workload has now.
func TestPlanForgetsWhatIsGone(t *testing.T) {
	st := NewState()
	now := time.Unix(1_000_000, 0)
	st.Plan(Inputs{Mounts: pods("p", 50, 0, true, "v1", "v1"), Secrets: []SecretInput{{"a", "1"}, {"b", "1"}}}, now, 0)
	st.Plan(Inputs{Mounts: pods("p", 2, 0, true, "v1", "v1"), Secrets: []SecretInput{{"a", "1"}}}, now, 0)
	if len(st.started) != 2 || len(st.secrets) != 1 {
		t.Errorf("state keeps %d pods and %d Secrets, want 2 and 1", len(st.started), len(st.secrets))
	}
}
