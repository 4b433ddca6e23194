// Package bounded is coffer's one bounded map: a typed view of
// k8s.io/utils/lru whose entries may expire, checked on read against an
// injected clock. Every cache coffer keeps per identity, pod or
// ServiceAccount uses it (or, for the byte-bounded value cache, the same
// k8s.io/utils/lru directly), so one eviction rule holds everywhere: when
// full, adding a key drops the least recently used one.
package bounded

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
)

// LRU holds at most its size of entries; adding a new key to a full LRU
// evicts the entry least recently read or written. An entry added with an
// expiry is a miss from that instant on, and is dropped when read then.
// Safe for concurrent use.
type LRU[V any] struct {
	clock clock.PassiveClock
	// mu makes a read's expiry check and removal one step, so a read never
	// drops a fresher entry written between them.
	mu      sync.Mutex
	entries *lru.Cache
}

type entry[V any] struct {
	value   V
	expires time.Time // zero: never
}

// NewLRU returns an LRU of at most size entries (at least one) whose
// expiries are read from clk (nil: the real clock).
func NewLRU[V any](size int, clk clock.PassiveClock) *LRU[V] {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &LRU[V]{clock: clk, entries: lru.New(max(size, 1))}
}

// Get returns key's value, unless it is absent or expired (an expired
// entry is dropped). A hit makes the entry the most recently used.
func (c *LRU[V]) Get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	v, ok := c.entries.Get(key)
	if !ok {
		return zero, false
	}
	e := v.(entry[V])
	if !e.expires.IsZero() && !c.clock.Now().Before(e.expires) {
		c.entries.Remove(key)
		return zero, false
	}
	return e.value, true
}

// Add stores key's value with no expiry.
func (c *LRU[V]) Add(key string, value V) { c.AddUntil(key, value, time.Time{}) }

// AddUntil stores key's value until expires (zero: no expiry), replacing
// any entry of key; the entry is the most recently used.
func (c *LRU[V]) AddUntil(key string, value V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries.Add(key, entry[V]{value: value, expires: expires})
}

// Remove drops key's entry, if any.
func (c *LRU[V]) Remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries.Remove(key)
}

// Len is the number of entries held, expired ones not yet read included.
func (c *LRU[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Len()
}
