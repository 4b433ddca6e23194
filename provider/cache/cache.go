// Package cache is a bounded, expiring, in-memory LRU cache of fetched
// values. It never writes to disk. Keys must name everything that decides
// access to a value (the identity first), so that a value fetched for one
// identity can never be served to another.
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
}

// entryOverhead approximates the bookkeeping bytes of one entry, so that
// many tiny values are bounded too.
const entryOverhead = 128

// Cache is safe for concurrent use. A nil *Cache caches nothing.
type Cache struct {
	ttl      time.Duration
	maxBytes int64
	now      func() time.Time

	mu    sync.Mutex
	bytes int64
	lru   *list.List // front: most recently used
	items map[string]*list.Element
	stats Stats
}

type item struct {
	key     string
	entry   Entry
	expires time.Time
	size    int64
}

// Stats count cache activity.
type Stats struct {
	Hits, Misses, Evictions, Expirations uint64
	Entries                              int
	Bytes                                int64
}

// New returns a cache whose entries live for ttl, holding at most maxBytes
// of keys and values. It returns nil (no caching) when ttl or maxBytes is
// not positive.
func New(ttl time.Duration, maxBytes int64) *Cache {
	if ttl <= 0 || maxBytes <= 0 {
		return nil
	}
	return &Cache{ttl: ttl, maxBytes: maxBytes, now: time.Now, lru: list.New(), items: map[string]*list.Element{}}
}

// SetClock replaces the clock (tests).
func (c *Cache) SetClock(now func() time.Time) { c.now = now }

// Get returns the live entry for key.
func (c *Cache) Get(key string) (Entry, bool) {
	if c == nil {
		return Entry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		c.stats.Misses++
		return Entry{}, false
	}
	it := el.Value.(*item)
	if !c.now().Before(it.expires) {
		c.removeLocked(el)
		c.stats.Expirations++
		c.stats.Misses++
		return Entry{}, false
	}
	c.lru.MoveToFront(el)
	c.stats.Hits++
	return it.entry, true
}

// Put stores an entry for the cache's TTL, evicting the least recently
// used entries to stay within the byte bound. An entry larger than the
// whole bound is not stored.
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
	if el, ok := c.items[key]; ok {
		c.removeLocked(el)
	}
	for c.bytes+size > c.maxBytes {
		c.removeLocked(c.lru.Back())
		c.stats.Evictions++
	}
	c.items[key] = c.lru.PushFront(&item{key: key, entry: e, expires: c.now().Add(c.ttl), size: size})
	c.bytes += size
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
