package secretsync

import (
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// entry is a declared Secret reading as sa, refreshed every interval.
func entry(name, sa string, interval time.Duration) *Secret {
	return &Secret{Name: name, ServiceAccountName: sa, RefreshInterval: interval}
}

// names shows a plan as ServiceAccount: entries, and the unowned.
func names(p syncPlan) (groups map[string][]string, unowned []string) {
	groups = map[string][]string{}
	for _, g := range p.groups {
		for _, s := range g.secrets {
			groups[g.serviceAccount] = append(groups[g.serviceAccount], s.Name)
		}
	}
	for _, s := range p.unowned {
		unowned = append(unowned, s.Name)
	}
	return groups, unowned
}

func TestPlanSync(t *testing.T) {
	a, b, c := entry("a", "web", time.Hour), entry("b", "jobs", time.Hour), entry("c", "web", 0)
	none := entry("d", "", time.Hour)
	tests := map[string]struct {
		decl    []*Secret
		due     map[string]time.Time
		groups  map[string][]string
		order   []string
		unowned []string
	}{
		"a nil due makes every entry due, grouped by ServiceAccount in declaration order": {
			decl:   []*Secret{a, b, c},
			groups: map[string][]string{"web": {"a", "c"}, "jobs": {"b"}},
			order:  []string{"web", "jobs"},
		},
		"an entry never synced is due": {
			decl:   []*Secret{a, b},
			due:    map[string]time.Time{"a": t0.Add(time.Minute)},
			groups: map[string][]string{"jobs": {"b"}},
			order:  []string{"jobs"},
		},
		"an entry is due at its time, not before": {
			decl:   []*Secret{a, b},
			due:    map[string]time.Time{"a": t0, "b": t0.Add(time.Nanosecond)},
			groups: map[string][]string{"web": {"a"}},
			order:  []string{"web"},
		},
		"refreshInterval 0: only when the declaration changes": {
			decl:   []*Secret{c},
			due:    map[string]time.Time{"c": {}},
			groups: map[string][]string{},
		},
		"an entry without serviceAccountName is synced by no one": {
			decl:    []*Secret{none, a},
			due:     map[string]time.Time{"d": t0.Add(-time.Hour)},
			groups:  map[string][]string{"web": {"a"}},
			order:   []string{"web"},
			unowned: []string{"d"},
		},
		"nothing declared, nothing to do": {
			groups: map[string][]string{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := planSync(tc.decl, tc.due, t0)
			groups, unowned := names(p)
			if !reflect.DeepEqual(groups, tc.groups) || !reflect.DeepEqual(unowned, tc.unowned) {
				t.Errorf("planSync = %v, unowned %v; want %v, unowned %v", groups, unowned, tc.groups, tc.unowned)
			}
			var order []string
			for _, g := range p.groups {
				order = append(order, g.serviceAccount)
			}
			if !reflect.DeepEqual(order, tc.order) {
				t.Errorf("ServiceAccounts in order %v, want %v", order, tc.order)
			}
			for sa, want := range tc.groups {
				var got []string
				for _, s := range p.secretsOf(sa) {
					got = append(got, s.Name)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("secretsOf(%s) = %v, want %v", sa, got, want)
				}
			}
		})
	}
}

func TestReschedule(t *testing.T) {
	hourly, daily, once := entry("hourly", "web", time.Hour), entry("daily", "web", 24*time.Hour), entry("once", "web", 0)
	minutely := entry("minutely", "web", time.Minute)
	tests := map[string]struct {
		decl   []*Secret
		prev   map[string]time.Time
		synced []outcome
		want   schedule
	}{
		"ready entries are due after their refreshInterval; wake at the earliest": {
			decl:   []*Secret{hourly, daily},
			synced: []outcome{{hourly, true}, {daily, true}},
			want:   schedule{due: map[string]time.Time{"hourly": t0.Add(time.Hour), "daily": t0.Add(24 * time.Hour)}, wake: t0.Add(time.Hour)},
		},
		"refreshInterval 0: never woken for, only when the declaration changes": {
			decl:   []*Secret{once},
			synced: []outcome{{once, true}},
			want:   schedule{due: map[string]time.Time{"once": {}}},
		},
		"an entry not synced now keeps its time, and counts for the wake": {
			decl:   []*Secret{hourly, daily},
			prev:   map[string]time.Time{"daily": t0.Add(time.Minute)},
			synced: []outcome{{hourly, true}},
			want:   schedule{due: map[string]time.Time{"hourly": t0.Add(time.Hour), "daily": t0.Add(time.Minute)}, wake: t0.Add(time.Minute)},
		},
		"a failed entry is due again at once, with backoff capped at the shortest failed refreshInterval": {
			decl:   []*Secret{hourly, daily, minutely},
			prev:   map[string]time.Time{"hourly": t0, "minutely": t0},
			synced: []outcome{{hourly, false}, {daily, false}, {minutely, true}},
			want:   schedule{due: map[string]time.Time{"minutely": t0.Add(time.Minute)}, wake: t0.Add(time.Minute), retry: true, retryWithin: time.Hour},
		},
		"a failed entry with refreshInterval 0 sets no cap": {
			decl:   []*Secret{once},
			synced: []outcome{{once, false}},
			want:   schedule{due: map[string]time.Time{}, retry: true},
		},
		"entries no longer declared are dropped": {
			decl: []*Secret{hourly},
			prev: map[string]time.Time{"hourly": t0.Add(time.Hour), "gone": t0.Add(time.Second)},
			want: schedule{due: map[string]time.Time{"hourly": t0.Add(time.Hour)}, wake: t0.Add(time.Hour)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := reschedule(tc.decl, tc.prev, tc.synced, t0); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("reschedule =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}
