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
	"container/list"
	"sync"
	"time"
)

// Entry is a cached value.
type Entry struct {
	Data    []byte
	Version string
	// At is when the value was read: the start of the AWS call that
	// returned it (zero: the time it is stored). AWS's answer reflects its
	// state at some moment after At, never before.
	At time.Time
}

// entryOverhead approximates the bookkeeping bytes of one entry, so that
// many tiny values are bounded too.
const entryOverhead = 128

// Cache is safe for concurrent use. A nil *Cache caches nothing.
type Cache struct {
	maxAge   time.Duration
	maxBytes int64
	now      func() time.Time

	mu    sync.Mutex
	bytes int64
	lru   *list.List // front: most recently used
	items map[string]*list.Element
	stats Stats
	// evictedAt is the newest At among entries evicted to make room: what
	// was forgotten early, for users that must not lose a time (Marks).
	evictedAt time.Time
}

type item struct {
	key   string
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
	return &Cache{maxAge: maxAge, maxBytes: maxBytes, now: time.Now, lru: list.New(), items: map[string]*list.Element{}}
}

// SetClock replaces the clock (tests).
func (c *Cache) SetClock(now func() time.Time) { c.now = now }

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
	el, ok := c.items[key]
	if !ok {
		if count {
			c.stats.Misses++
		}
		return Entry{}, false
	}
	it := el.Value.(*item)
	if c.now().Sub(it.entry.At) >= c.maxAge {
		c.removeLocked(el)
		c.stats.Expirations++
		if count {
			c.stats.Misses++
		}
		return Entry{}, false
	}
	if it.entry.At.Before(notBefore) {
		if count {
			c.stats.Misses++
		}
		return Entry{}, false
	}
	c.lru.MoveToFront(el)
	if count {
		c.stats.Hits++
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
		e.At = c.now()
	}
	if el, ok := c.items[key]; ok {
		if el.Value.(*item).entry.At.After(e.At) {
			c.lru.MoveToFront(el)
			return
		}
		c.removeLocked(el)
	}
	for c.bytes+size > c.maxBytes {
		back := c.lru.Back()
		if at := back.Value.(*item).entry.At; at.After(c.evictedAt) {
			c.evictedAt = at
		}
		c.removeLocked(back)
		c.stats.Evictions++
	}
	c.items[key] = c.lru.PushFront(&item{key: key, entry: e, size: size})
	c.bytes += size
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

func (c *Cache) removeLocked(el *list.Element) {
	it := el.Value.(*item)
	c.lru.Remove(el)
	delete(c.items, it.key)
	c.bytes -= it.size
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = len(c.items)
	s.Bytes = c.bytes
	return s
}
