package fetch_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/changes"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// TestChangeLedgerRule: a remount (which may take nothing read before its
// previous mount) is answered from the cache while the ledger shows
// nothing changed, reads only what an announcement named, and reads
// everything when the rule cannot be applied.
func TestChangeLedgerRule(t *testing.T) {
	const roleARN = "arn:aws:iam::123456789012:role/app"
	e := newEnv(t)
	e.fake.PutSecretString(region, "a", "a1")
	e.fake.PutSecretString(region, "b", "b1")
	e.fake.PutParameter(region, "/p", "p1", "String")
	cfg := config(t, "- {objectName: a, objectType: secretsmanager}\n- {objectName: b, objectType: secretsmanager,}\n- {objectName: /p, objectType: ssmparameter}\n")
	clients := e.clients(fakeaws.AllowAll("AKID1", "k1"))

	start := time.Now()
	clk := clocktesting.NewFakeClock(start)
	covers := []changes.Coverage{{Account: "123456789012", Region: region}}
	book := changes.NewBook(nil, covers, time.Hour, clk)
	tracker := changes.NewTracker(changes.Options{MaxAge: 15 * time.Minute, ProofMaxAge: 2 * time.Minute, ClockSkew: time.Second, Clock: clk})
	publish := func() { l := book.Ledger(); tracker.Observe("uid", &l) }
	var mu sync.Mutex // OnEventVerdict is called from the units' goroutines
	var verdicts []changes.Verdict
	f := &fetch.Fetcher{Cache: cache.New(15*time.Minute, 1<<20), Reuse: time.Second, Changes: tracker, Clock: clk,
		OnEventVerdict: func(v changes.Verdict) { mu.Lock(); verdicts = append(verdicts, v); mu.Unlock() }}

	remount := func(roles []string) (map[string]string, int) {
		t.Helper()
		e.fake.ResetCalls()
		mu.Lock()
		verdicts = nil
		mu.Unlock()
		ctx := fetch.WithFreshness(context.Background(), fetch.Freshness{NotBefore: clk.Now()})
		if roles != nil {
			ctx = fetch.WithRoles(ctx, roles)
		}
		values, err := f.Fetch(ctx, cfg, clients, "id-1")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, v := range values {
			got[v.Object.Name] = string(v.Data)
		}
		return got, len(e.fake.Calls())
	}

	publish()
	clk.Step(10 * time.Second) // the node has seen the ledger for longer than Settle
	if _, calls := remount([]string{roleARN}); calls != 2 {
		t.Fatalf("first mount: %d calls, want 2 (a batch, a labelled secret, the parameter)", calls)
	}
	clk.Step(time.Minute)
	if _, calls := remount([]string{roleARN}); calls != 2 || !slices.Contains(verdicts, changes.NotProven) {
		t.Fatalf("no canary yet: %d calls (%v), want every object read", calls, verdicts)
	}
	clk.Step(2 * time.Second)
	book.Prove(clk.Now(), clk.Now())
	publish()
	clk.Step(time.Minute)
	if _, calls := remount([]string{roleARN}); calls != 0 {
		t.Fatalf("nothing changed, canary after the read: %d calls (%v), want 0", calls, verdicts)
	}
	// Without the identity's roles the rule does not apply.
	if _, calls := remount(nil); calls != 2 {
		t.Fatalf("no roles: %d calls, want 2", calls)
	}
	clk.Step(2 * time.Second)
	book.Prove(clk.Now(), clk.Now())
	publish()
	clk.Step(time.Minute)
	// b changes in AWS and is announced: the remount reads b alone.
	e.fake.PutSecretString(region, "b", "b2")
	book.Add(changes.Secrets("123456789012", region, "b")...)
	clk.Step(2 * time.Second)
	book.Prove(clk.Now(), clk.Now())
	publish()
	got, calls := remount([]string{roleARN})
	if calls != 1 || got["b"] != "b2" || got["a"] != "a1" || got["/p"] != "p1" {
		t.Fatalf("after b's announcement: %d calls, values %v, want one call and b2", calls, got)
	}
	// The role changes: everything is read.
	book.Add(changes.Role("", roleARN)...)
	clk.Step(2 * time.Second)
	book.Prove(clk.Now(), clk.Now())
	publish()
	if _, calls := remount([]string{roleARN}); calls != 2 {
		t.Fatalf("after the role's announcement: %d calls, want 2", calls)
	}
	// The pipeline stalls: once the proof is too old, every remount reads.
	clk.Step(3 * time.Minute)
	if _, calls := remount([]string{roleARN}); calls != 2 {
		t.Fatalf("stalled pipeline: %d calls, want 2", calls)
	}
}
