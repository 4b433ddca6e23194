package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"k8s.io/utils/clock"
)

// markBytes is what one mark costs against its store's bound: the
// entry's overhead and a key of at most 64 bytes.
const markBytes = entryOverhead + 64

// Marks remembers, per pod, when its last successful mount finished, so
// that a remount can refuse values read before it: whatever the reuse
// window, a rotation then sees AWS as it was after the previous mount.
//
// A mark matters only while the values it could exclude may still be
// served, so marks live as long as the longest window values are kept
// (maxAge), and at most about maxPods of them: a node's pods that mounted
// within that window. A pod that is gone is forgotten with its last
// window. A mark forgotten early, because more pods mounted within the
// window than the bound, raises a floor that every pod without a mark
// observes instead: forgetting costs AWS calls, never a stale remount.
type Marks struct {
	c *Cache
}

// NewMarks returns marks kept for maxAge, about maxPods at most; nil (no
// marks: nothing is reused across mounts) when either is not positive.
func NewMarks(maxAge time.Duration, maxPods int) *Marks {
	c := New(maxAge, int64(maxPods)*markBytes)
	if c == nil {
		return nil
	}
	return &Marks{c: c}
}

// NotBefore is the earliest read time a value served to pod may have: the
// end of its previous successful mount, or the floor of forgotten marks.
// Zero for a pod never seen (or an empty uid).
func (m *Marks) NotBefore(pod string) time.Time {
	if m == nil || pod == "" {
		return time.Time{}
	}
	if e, ok := m.c.Last(markKey(pod), time.Time{}); ok {
		return e.At
	}
	return m.c.EvictedAt()
}

// SetClock replaces the time source of the marks' expiry (default: the
// real clock). Nil marks ignore it.
func (m *Marks) SetClock(clk clock.PassiveClock) {
	if m != nil {
		m.c.SetClock(clk)
	}
}

// Mounted records that pod's mount succeeded at the given time.
func (m *Marks) Mounted(pod string, at time.Time) {
	if m == nil || pod == "" {
		return
	}
	m.c.Put(markKey(pod), Entry{At: at})
}

// markKey bounds the key of a pod: a uid is 36 bytes, anything longer
// (attributes are untrusted) is hashed to the same size class.
func markKey(pod string) string {
	if len(pod) <= 64 {
		return pod
	}
	sum := sha256.Sum256([]byte(pod))
	return hex.EncodeToString(sum[:])
}
