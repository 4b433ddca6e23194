package changes

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// trackerWorld is a consumer's book and a node's tracker on one fake
// clock (the consumer's and the node's clocks agree unless a case says).
type trackerWorld struct {
	clk  *clocktesting.FakeClock
	book *Book
	tr   *Tracker
	uid  string
}

func newTrackerWorld() *trackerWorld {
	clk := clocktesting.NewFakeClock(t0)
	w := &trackerWorld{clk: clk, book: NewBook(nil, []Coverage{{acct, region}}, time.Hour, clk), uid: "uid-1"}
	w.tr = NewTracker(Options{MaxAge: 15 * time.Minute, ProofMaxAge: 2 * time.Minute, ClockSkew: 2 * time.Second, Clock: clk})
	return w
}

// at moves the clock to t0+d.
func (w *trackerWorld) at(d time.Duration) { w.clk.SetTime(t0.Add(d)) }

func (w *trackerWorld) publish() {
	l := w.book.Ledger()
	w.tr.Observe(w.uid, &l)
}

// canary proves a round written at t0+d, seen now.
func (w *trackerWorld) canary(written time.Duration) {
	w.book.Prove(t0.Add(written), w.clk.Now())
	w.publish()
}

var (
	object = Secrets(acct, region, "db")
	role   = Role("", "arn:aws:iam::111122223333:role/app")
	both   = append(append([]Subject(nil), object...), role...)
)

// TestTrackerRule: a value read at t0+10s under the ledger seen then; each
// case changes the world after (or around) the read and checks the rule.
func TestTrackerRule(t *testing.T) {
	read := 10 * time.Second
	for _, tc := range []struct {
		name string
		// before runs before the read (the world has a ledger from t0).
		before func(w *trackerWorld)
		// after runs after the read; it ends at the time of the check.
		after    func(w *trackerWorld)
		subjects []Subject
		want     Verdict
	}{
		{name: "nothing changed, canary after the read", after: func(w *trackerWorld) { w.at(25 * time.Second); w.canary(20 * time.Second); w.at(time.Minute) }, want: Unchanged},
		{name: "the object changed", after: func(w *trackerWorld) {
			w.at(15 * time.Second)
			w.book.Add(object...)
			w.at(25 * time.Second)
			w.canary(20 * time.Second)
		}, want: Changed},
		{name: "the role changed", after: func(w *trackerWorld) {
			w.at(15 * time.Second)
			w.book.Add(role...)
			w.at(25 * time.Second)
			w.canary(20 * time.Second)
		}, want: Changed},
		{name: "another object changed", after: func(w *trackerWorld) {
			w.at(15 * time.Second)
			w.book.Add(Secrets(acct, region, "other")...)
			w.at(25 * time.Second)
			w.canary(20 * time.Second)
		}, want: Unchanged},
		{name: "changed and seen long before the read", before: func(w *trackerWorld) { w.at(2 * time.Second); w.book.Add(object...); w.publish() },
			after: func(w *trackerWorld) { w.at(25 * time.Second); w.canary(20 * time.Second) }, want: Unchanged},
		{name: "changed and seen within Settle before the read", before: func(w *trackerWorld) { w.at(7 * time.Second); w.book.Add(object...); w.publish() },
			after: func(w *trackerWorld) { w.at(25 * time.Second); w.canary(20 * time.Second) }, want: Changed},
		{name: "no canary", after: func(w *trackerWorld) { w.at(time.Minute); w.publish() }, want: NotProven},
		{name: "canary written before the read", after: func(w *trackerWorld) { w.at(25 * time.Second); w.canary(5 * time.Second) }, want: NotProven},
		{name: "canary written within the clock skew after the read", after: func(w *trackerWorld) { w.at(25 * time.Second); w.canary(11 * time.Second) }, want: NotProven},
		{name: "the newest proof is too old", after: func(w *trackerWorld) {
			w.at(25 * time.Second)
			w.canary(20 * time.Second)
			w.at(20*time.Second + 2*time.Minute - time.Second)
		}, want: NotProven},
		{name: "the value is too old", after: func(w *trackerWorld) {
			w.at(15*time.Minute + read - time.Minute)
			w.canary(15*time.Minute + read - 90*time.Second)
			w.at(15*time.Minute + read)
		}, want: TooOld},
		{name: "another region", after: func(w *trackerWorld) { w.at(25 * time.Second); w.canary(20 * time.Second) },
			subjects: append(Secrets(acct, "us-east-1", "db"), role...), want: NotCovered},
		{name: "no object subject", after: func(w *trackerWorld) { w.at(25 * time.Second); w.canary(20 * time.Second) }, subjects: role, want: NotCovered},
		{name: "the ConfigMap was recreated", after: func(w *trackerWorld) {
			w.at(25 * time.Second)
			w.uid = "uid-2"
			w.canary(20 * time.Second)
		}, want: Unknown},
		{name: "the ConfigMap was deleted", after: func(w *trackerWorld) { w.at(25 * time.Second); w.canary(20 * time.Second); w.tr.Observe("", nil) }, want: Unknown},
		{name: "entries after the read were dropped", after: func(w *trackerWorld) {
			w.at(25 * time.Second)
			w.book.Add(Secrets(acct, region, "other")...)
			w.book.Prove(t0.Add(20*time.Second), w.clk.Now())
			l := w.book.Ledger()
			l.Floor, l.Entries = l.Seq, nil
			w.tr.Observe(w.uid, &l)
		}, want: Unknown},
		{name: "the sequence went back under the same object", before: func(w *trackerWorld) {
			w.book.Add(Secrets(acct, region, "other")...)
			w.publish()
		}, after: func(w *trackerWorld) {
			w.at(25 * time.Second)
			w.book = NewBook(nil, []Coverage{{acct, region}}, time.Hour, w.clk)
			w.canary(20 * time.Second)
		}, want: Unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newTrackerWorld()
			w.publish()
			if tc.before != nil {
				tc.before(w)
			}
			w.at(read)
			pos := w.tr.PositionAt(w.clk.Now())
			tc.after(w)
			subjects := tc.subjects
			if subjects == nil {
				subjects = both
			}
			if got := w.tr.Check(pos, t0.Add(read), subjects); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPositionUnknownAtStart: a node that has seen no ledger for Settle
// has no position to give, so nothing read then is answered by the rule.
func TestPositionUnknownAtStart(t *testing.T) {
	w := newTrackerWorld()
	w.publish()
	if pos := w.tr.PositionAt(w.clk.Now()); pos != (Position{}) {
		t.Fatalf("a position within Settle of the first ledger: %+v", pos)
	}
	var nilTracker *Tracker
	if pos := nilTracker.PositionAt(t0); pos != (Position{}) {
		t.Fatalf("a nil tracker gave a position")
	}
}

// TestAnnouncementsNeverRevive: once a value is changed, nothing more the
// pipeline says (further announcements of anything, duplicates, new
// proofs) makes it unchanged again. A forged, replayed or reordered
// message can only add entries.
func TestAnnouncementsNeverRevive(t *testing.T) {
	w := newTrackerWorld()
	w.publish()
	w.at(10 * time.Second)
	pos := w.tr.PositionAt(w.clk.Now())
	w.at(12 * time.Second)
	w.book.Add(object...)
	for i := range 50 {
		w.at(time.Duration(13+i) * time.Second)
		w.book.Add(Secrets(acct, region, "other")...)
		w.book.Add(role...)
		w.canary(time.Duration(13+i) * time.Second)
		if got := w.tr.Check(pos, t0.Add(10*time.Second), both); got != Changed {
			t.Fatalf("after %d more announcements: %v", i+1, got)
		}
	}
}

func TestStatus(t *testing.T) {
	w := newTrackerWorld()
	if s := w.tr.Status(); s.Ledger || s.Live {
		t.Fatalf("without a ledger: %+v", s)
	}
	w.at(30 * time.Second)
	w.canary(20 * time.Second)
	w.at(time.Minute)
	if s := w.tr.Status(); !s.Ledger || !s.Live || s.ProofAge != 40*time.Second || s.LedgerAge != 30*time.Second {
		t.Fatalf("live: %+v", s)
	}
	w.at(20*time.Second + 2*time.Minute)
	if s := w.tr.Status(); s.Live {
		t.Fatalf("a proof older than ProofMaxAge (with the skew) is live: %+v", s)
	}
}
