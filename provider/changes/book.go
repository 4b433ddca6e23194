package changes

import (
	"encoding/json"
	"slices"
	"time"

	"k8s.io/utils/clock"
)

// ledgerOverhead bounds the bytes of a ledger's fields other than its
// entries (version, sequences, proof, times, up to maxCovers coverages).
const ledgerOverhead = 8 << 10

// Book is the consumer's ledger as it grows: it gives sequences, keeps one
// entry per subject (the latest), and drops what retention and the bounds
// require, raising the floor past everything dropped. Not safe for
// concurrent use: one consumer owns it.
type Book struct {
	clock     clock.PassiveClock
	retention time.Duration
	l         Ledger
	// sizes are the encoded bytes of each entry, in l.Entries' order;
	// bytes is their sum.
	sizes []int
	bytes int
}

// NewBook continues prev (nil: a new ledger) for the given coverage,
// keeping entries for retention after they were received (at least the
// nodes' --event-max-age, so that a value read before an entry expires
// before the entry does; a shorter retention costs reads, never an old
// value, since the floor rises past what is dropped).
func NewBook(prev *Ledger, covers []Coverage, retention time.Duration, clk clock.PassiveClock) *Book {
	if clk == nil {
		clk = clock.RealClock{}
	}
	b := &Book{clock: clk, retention: retention}
	if prev != nil {
		b.l = *prev
		b.l.Entries = slices.Clone(prev.Entries)
	}
	b.l.Version = formatVersion
	b.l.Covers = slices.Clone(covers)
	for _, e := range b.l.Entries {
		n := entrySize(e)
		b.sizes = append(b.sizes, n)
		b.bytes += n
	}
	b.compact()
	return b
}

func entrySize(e Entry) int {
	j, _ := json.Marshal(e)
	return len(j) + 1
}

// Add records that AWS announced changes to subjects, now. Each gets the
// next sequence; an earlier entry of the same subject is replaced.
// Subjects that are not valid are skipped. It returns how many were
// recorded.
func (b *Book) Add(subjects ...Subject) int {
	now := b.clock.Now()
	added := 0
	for _, s := range subjects {
		if s.validate() != nil {
			continue
		}
		if i := slices.IndexFunc(b.l.Entries, func(e Entry) bool { return e.Subject == s }); i >= 0 {
			// The later entry invalidates whatever the earlier one did, so
			// replacing it needs no floor.
			b.remove(i)
		}
		b.l.Seq++
		e := Entry{Seq: b.l.Seq, Subject: s, At: now}
		n := entrySize(e)
		b.l.Entries = append(b.l.Entries, e)
		b.sizes = append(b.sizes, n)
		b.bytes += n
		added++
	}
	b.compact()
	return added
}

// Prove records a canary round trip: the canary written at written came
// back at seen. An older round than the one recorded changes nothing.
func (b *Book) Prove(written, seen time.Time) {
	if written.After(b.l.Proof.Written) {
		b.l.Proof = Proof{Written: written, Seen: seen}
	}
}

// Ledger returns the ledger to publish now, after dropping what is past
// retention.
func (b *Book) Ledger() Ledger {
	b.compact()
	l := b.l
	l.Entries = slices.Clone(b.l.Entries)
	l.Covers = slices.Clone(b.l.Covers)
	l.Published = b.clock.Now()
	return l
}

// Len returns the entries held.
func (b *Book) Len() int { return len(b.l.Entries) }

// compact drops entries past retention, then the oldest while the bounds
// on entries and bytes are exceeded, raising the floor past each.
func (b *Book) compact() {
	cutoff := b.clock.Now().Add(-b.retention)
	for len(b.l.Entries) > 0 {
		e := b.l.Entries[0]
		if !e.At.Before(cutoff) && len(b.l.Entries) <= MaxEntries && b.bytes+ledgerOverhead <= MaxLedgerBytes {
			return
		}
		b.l.Floor = max(b.l.Floor, e.Seq)
		b.remove(0)
	}
}

func (b *Book) remove(i int) {
	b.bytes -= b.sizes[i]
	b.l.Entries = slices.Delete(b.l.Entries, i, i+1)
	b.sizes = slices.Delete(b.sizes, i, i+1)
}
