// Package cache is a bounded, expiring, in-memory LRU cache of fetched
// values. It never writes to disk. Keys must name everything that decides
// access to a value (the identity first), so that a value fetched for one
// identity can never be served to another.
//
// Every entry carries the time it was read from AWS, and every lookup says
// how old a value it accepts: the same store answers "a value read within
// the freshness bound and after this pod's previous mount" and, during an
// outage, "the last good value, at most this old".
package cache

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
	"k8s.io/utils/lru"

	"github.com/coffer-csi/coffer/provider/changes"
)

// Entry is a cached value.
type Entry struct {
	Data    []byte
	Version string
	// At is when the value was read: the start of the AWS call that
	// returned it (zero: the time it is stored). AWS's answer reflects its
	// state at some moment after At, never before.
	At time.Time
	// Position is where the change ledger stood when the value was read
	// (zero without change events): what a later mount compares the
	// ledger's announcements with.
	Position changes.Position
}

// entryOverhead approximates the bookkeeping bytes of one entry, so that
// many tiny values are bounded too.
const entryOverhead = 128

// Cache is safe for concurrent use. A nil *Cache caches nothing.
type Cache struct {
	maxAge   time.Duration
	maxBytes int64
	clock    clock.PassiveClock

	mu sync.Mutex
	// entries holds at most maxBytes of keys, values and entryOverhead:
	// putting an entry evicts the least recently looked up or written ones
	// until it fits. Each entry expires maxAge after its At, checked on read.
	// k8s.io/utils/lru bounds by count, so the byte bound is kept here: the
	// LRU itself is unbounded (size 0) and Put removes its oldest entries.
	entries *lru.Cache
	bytes   int64
	stats   Stats
	// evicting is set while Put makes room, so that onRemove tells an
	// eviction from the removal of an expired or replaced entry.
	evicting bool
	// evictedAt is the newest At among entries evicted to make room: what
	// was forgotten early, for users that must not lose a time (Marks).
	evictedAt time.Time
}

type item struct {
	entry Entry
	size  int64
}

// Stats count cache activity.
type Stats struct {
	Hits, Misses, Evictions, Expirations uint64
	Entries                              int
	Bytes                                int64
}

// New returns a cache that keeps entries until maxAge after they were read,
// holding at most maxBytes of keys and values. It returns nil (no caching)
// when maxAge or maxBytes is not positive.
func New(maxAge time.Duration, maxBytes int64) *Cache {
	if maxAge <= 0 || maxBytes <= 0 {
		return nil
	}
	c := &Cache{maxAge: maxAge, maxBytes: maxBytes, clock: clock.RealClock{}}
	c.entries = lru.NewWithEvictionFunc(0, c.onRemove)
	return c
}

// SetClock replaces the time source that expiry and zero read times use
// (default: the real clock). A nil cache ignores it.
func (c *Cache) SetClock(clk clock.PassiveClock) {
	if c == nil || clk == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock = clk
}

// Get returns the entry for key if it was read at or after notBefore (and
// within the cache's maximum age), counting a hit or a miss.
func (c *Cache) Get(key string, notBefore time.Time) (Entry, bool) {
	return c.lookup(key, notBefore, true)
}

// Last is Get for fallbacks (a stale answer during an outage): it does not
// count in the hit and miss statistics, which describe the normal path.
func (c *Cache) Last(key string, notBefore time.Time) (Entry, bool) {
	return c.lookup(key, notBefore, false)
}

func (c *Cache) lookup(key string, notBefore time.Time, count bool) (Entry, bool) {
	if c == nil {
		return Entry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.entries.Get(key)
	var it *item
	switch {
	case !ok:
	case c.clock.Since(v.(*item).entry.At) >= c.maxAge:
		c.entries.Remove(key)
		c.stats.Expirations++
	case v.(*item).entry.At.Before(notBefore):
	default:
		it = v.(*item)
	}
	if count {
		if it != nil {
			c.stats.Hits++
		} else {
			c.stats.Misses++
		}
	}
	if it == nil {
		return Entry{}, false
	}
	return it.entry, true
}

// Put stores an entry until the cache's maximum age after its At, evicting
// the least recently used entries to stay within the byte bound. An entry
// larger than the whole bound is not stored, nor one older than the entry
// already held for key (a slow call finishing late does not replace a
// newer read).
func (c *Cache) Put(key string, e Entry) {
	if c == nil {
		return
	}
	size := int64(len(key)+len(e.Data)+len(e.Version)) + entryOverhead
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.At.IsZero() {
		e.At = c.clock.Now()
	}
	if v, ok := c.entries.Get(key); ok { // now the most recently used
		if v.(*item).entry.At.After(e.At) {
			return
		}
		c.entries.Remove(key)
	}
	c.evicting = true
	for c.bytes+size > c.maxBytes {
		c.entries.RemoveOldest()
	}
	c.evicting = false
	c.entries.Add(key, &item{entry: e, size: size})
	c.bytes += size
}

// onRemove accounts for an entry leaving the LRU. The LRU calls it with
// c.mu held (every call into c.entries is made under it).
func (c *Cache) onRemove(_ lru.Key, v any) {
	it := v.(*item)
	c.bytes -= it.size
	if !c.evicting {
		return
	}
	c.stats.Evictions++
	if it.entry.At.After(c.evictedAt) {
		c.evictedAt = it.entry.At
	}
}

// EvictedAt returns the newest At among the entries evicted so far to make
// room (zero when none was): anything read before it may have been
// forgotten early.
func (c *Cache) EvictedAt() time.Time {
	if c == nil {
		return time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evictedAt
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = c.entries.Len()
	s.Bytes = c.bytes
	return s
}
