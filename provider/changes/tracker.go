package changes

import (
	"fmt"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Settle is how long before a read an announcement the node saw still
// counts as after it. AWS announces a change once it is made, but its
// reads are eventually consistent for a moment after a write, so a read
// right after the node saw the announcement might still return the old
// value; such a read is then not shown unchanged by that announcement's
// absence, and the next mount reads again.
const Settle = 5 * time.Second

// historyWindow is how far back a Tracker can say what position was
// current: longer than any AWS call a mount waits for (the mount
// deadline), so a read's position is known when its value is stored.
const historyWindow = 5 * time.Minute

// maxHistory bounds the positions remembered within historyWindow.
const maxHistory = 1024

// Options are a Tracker's bounds (coffer serve's --event-* flags).
type Options struct {
	// MaxAge: a value read longer ago is never answered by the rule
	// (--event-max-age): the bound on revocations and lost announcements,
	// which the canary cannot see.
	MaxAge time.Duration
	// ProofMaxAge: while the newest canary round trip was written longer
	// ago, nothing is answered by the rule (--event-proof-max-age).
	ProofMaxAge time.Duration
	// ClockSkew bounds how far the consumer's clock and the node's may
	// differ (--event-clock-skew); comparisons between them allow for it.
	ClockSkew time.Duration
	// Clock is the node's clock (nil: the real one).
	Clock clock.PassiveClock
}

// Position is where a ledger stood: its object's identity (a recreated
// ConfigMap starts a new ledger, whose sequences mean nothing against the
// old one's) and its last sequence.
type Position struct {
	UID string
	Seq uint64
}

// Verdict is the rule's answer for one cached value.
type Verdict int

// The verdicts. Every one but Unchanged means: read AWS as without events.
const (
	// Unchanged: answer from the cache.
	Unchanged Verdict = iota
	// Changed: an announcement named the object or the identity's role
	// after the value was read.
	Changed
	// NotProven: no canary written after the read has come back, or the
	// newest round trip is older than ProofMaxAge.
	NotProven
	// TooOld: the value is MaxAge old or older.
	TooOld
	// NotCovered: the object is not one the ledger announces (another
	// account or region, a path or filter object, an identity whose role
	// coffer does not know).
	NotCovered
	// Unknown: there is no ledger, it is not the one the value was read
	// under, or it dropped entries after the read (its floor).
	Unknown
)

var verdictNames = [...]string{"unchanged", "changed", "not_proven", "too_old", "not_covered", "unknown"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// Verdicts lists every verdict, for metrics.
func Verdicts() []Verdict {
	return []Verdict{Unchanged, Changed, NotProven, TooOld, NotCovered, Unknown}
}

// Tracker is a node's view of the ledger, fed by its watch (Observe), and
// the rule that decides whether a cached value may answer a mount
// (Check). Safe for concurrent use.
type Tracker struct {
	opts Options

	mu  sync.Mutex
	cur *view
	// history holds the positions observed, oldest first: every one
	// within historyWindow and the newest before it.
	history []observation
	// resets counts ledgers that went back in sequence under one object,
	// each a new ledger for positions.
	resets int
}

type view struct {
	uid       string
	seq       uint64
	floor     uint64
	covers    map[Coverage]bool
	proof     Proof
	published time.Time
	latest    map[Subject]uint64
	entries   int
}

type observation struct {
	at  time.Time
	pos Position
}

// NewTracker returns a tracker with no ledger yet.
func NewTracker(opts Options) *Tracker {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Tracker{opts: opts}
}

// Observe replaces the tracker's ledger by l, the content of the ledger
// object with the given uid; nil l: there is none (deleted, unreadable).
func (t *Tracker) Observe(uid string, l *Ledger) {
	now := t.opts.Clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if l == nil {
		t.cur = nil
		t.record(now, Position{})
		return
	}
	if t.cur != nil && t.cur.uid == t.uidFor(uid) && l.Seq < t.cur.seq {
		// A ledger that went back under the same object is a new one.
		t.resets++
	}
	v := &view{uid: t.uidFor(uid), seq: l.Seq, floor: l.Floor, covers: map[Coverage]bool{}, proof: l.Proof, published: l.Published,
		latest: make(map[Subject]uint64, len(l.Entries)), entries: len(l.Entries)}
	for _, c := range l.Covers {
		v.covers[c] = true
	}
	for _, e := range l.Entries {
		v.latest[e.Subject] = max(v.latest[e.Subject], e.Seq)
	}
	t.cur = v
	t.record(now, Position{UID: v.uid, Seq: v.seq})
}

func (t *Tracker) uidFor(uid string) string {
	if t.resets == 0 {
		return uid
	}
	return fmt.Sprintf("%s#%d", uid, t.resets)
}

// record appends an observation and trims the history to its window and
// bound, keeping the newest observation before the window.
func (t *Tracker) record(now time.Time, pos Position) {
	t.history = append(t.history, observation{at: now, pos: pos})
	cut := now.Add(-historyWindow)
	for len(t.history) > 1 && (!t.history[1].at.After(cut) || len(t.history) > maxHistory) {
		t.history = t.history[1:]
	}
}

// PositionAt returns the position of the ledger a value read at `at` was
// read under: the one the node had seen Settle before it. Zero (which no
// check accepts) when the node had seen none then, or no longer knows, and
// for a nil tracker.
func (t *Tracker) PositionAt(at time.Time) Position {
	if t == nil {
		return Position{}
	}
	at = at.Add(-Settle)
	t.mu.Lock()
	defer t.mu.Unlock()
	var pos Position
	for _, o := range t.history {
		if o.at.After(at) {
			break
		}
		pos = o.pos
	}
	if len(t.history) > 0 && t.history[0].at.After(at) {
		return Position{}
	}
	return pos
}

// Check decides whether a value read at readAt under position read may
// answer a mount now. subjects are the value's object (every reading of
// its name) and the identity's roles; without a subject for the object
// itself the value is NotCovered.
func (t *Tracker) Check(read Position, readAt time.Time, subjects []Subject) Verdict {
	now := t.opts.Clock.Now()
	if now.Sub(readAt) >= t.opts.MaxAge {
		return TooOld
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.cur
	if v == nil {
		return Unknown
	}
	object := false
	for _, s := range subjects {
		if s.Kind == KindRole {
			continue
		}
		if !v.covers[Coverage{Account: s.Account, Region: s.Region}] {
			return NotCovered
		}
		object = true
	}
	if !object {
		return NotCovered
	}
	if read.UID == "" || read.UID != v.uid || read.Seq < v.floor {
		return Unknown
	}
	if !t.provenAfter(v, readAt, now) {
		return NotProven
	}
	for _, s := range subjects {
		if v.latest[s] > read.Seq {
			return Changed
		}
	}
	return Unchanged
}

// provenAfter: the newest canary was written after readAt, even if the
// consumer's clock runs ahead by the skew, and it is younger than
// ProofMaxAge even if the consumer's clock runs behind by it.
func (t *Tracker) provenAfter(v *view, readAt, now time.Time) bool {
	w := v.proof.Written
	if w.IsZero() {
		return false
	}
	return w.Add(-t.opts.ClockSkew).After(readAt) && now.Sub(w)+t.opts.ClockSkew <= t.opts.ProofMaxAge
}

// Status is what metrics and logs say of the tracker.
type Status struct {
	// Ledger is false when the node has no ledger.
	Ledger bool
	// Live is true while the newest canary round trip is younger than
	// ProofMaxAge: the rule may answer mounts (otherwise every mount
	// reads AWS as without events: the fallback).
	Live bool
	// LedgerAge is how long ago the consumer published the ledger the
	// node holds; ProofAge how long ago the newest canary was written
	// (both on the node's clock against the consumer's).
	LedgerAge, ProofAge time.Duration
	Entries             int
	Seq                 uint64
}

// Status returns the tracker's state now.
func (t *Tracker) Status() Status {
	now := t.opts.Clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.cur
	if v == nil {
		return Status{}
	}
	s := Status{Ledger: true, LedgerAge: now.Sub(v.published), Entries: v.entries, Seq: v.seq}
	if !v.proof.Written.IsZero() {
		s.ProofAge = now.Sub(v.proof.Written)
		s.Live = s.ProofAge+t.opts.ClockSkew <= t.opts.ProofMaxAge
	}
	return s
}
