package cache

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	now := time.Now()
	c := New(time.Minute, 1000)
	c.SetClock(func() time.Time { return now })

	c.Put("id-a|us-east-1|x", Entry{Data: []byte("a"), Version: "1"})
	if e, ok := c.Get("id-a|us-east-1|x"); !ok || string(e.Data) != "a" || e.Version != "1" {
		t.Fatalf("Get = %v, %v", e, ok)
	}
	if _, ok := c.Get("id-b|us-east-1|x"); ok {
		t.Fatal("another identity's key hit")
	}
	now = now.Add(time.Minute)
	if _, ok := c.Get("id-a|us-east-1|x"); ok {
		t.Fatal("expired entry served")
	}
	s := c.Stats()
	if s.Hits != 1 || s.Misses != 2 || s.Expirations != 1 || s.Entries != 0 || s.Bytes != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestCacheBoundedByBytes(t *testing.T) {
	c := New(time.Hour, 1000)
	value := []byte(strings.Repeat("v", 200))
	for i := range 10 {
		c.Put(fmt.Sprintf("k%d", i), Entry{Data: value})
	}
	s := c.Stats()
	if s.Bytes > 1000 {
		t.Errorf("cache holds %d bytes, bound is 1000", s.Bytes)
	}
	if s.Evictions == 0 || s.Entries >= 10 {
		t.Errorf("nothing evicted: %+v", s)
	}
	// The most recently used survive.
	if _, ok := c.Get("k9"); !ok {
		t.Error("newest entry evicted")
	}
	if _, ok := c.Get("k0"); ok {
		t.Error("oldest entry kept")
	}
	// An entry larger than the bound is not stored at all.
	c.Put("huge", Entry{Data: make([]byte, 2000)})
	if _, ok := c.Get("huge"); ok {
		t.Error("oversized entry stored")
	}
}

func TestCacheLRUOrder(t *testing.T) {
	c := New(time.Hour, 3*(entryOverhead+3))
	c.Put("a", Entry{Data: []byte("1")})
	c.Put("b", Entry{Data: []byte("1")})
	c.Put("c", Entry{Data: []byte("1")})
	c.Get("a") // a is now most recent; b is the oldest
	c.Put("d", Entry{Data: []byte("1")})
	if _, ok := c.Get("b"); ok {
		t.Error("least recently used entry kept")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
}

func TestCacheDisabled(t *testing.T) {
	for _, c := range []*Cache{New(0, 100), New(time.Minute, 0)} {
		c.Put("k", Entry{Data: []byte("v")})
		if _, ok := c.Get("k"); ok {
			t.Error("disabled cache served a value")
		}
		if c.Stats() != (Stats{}) {
			t.Error("disabled cache has stats")
		}
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := New(time.Minute, 10000)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 500 {
				k := fmt.Sprintf("k%d", (i*j)%50)
				c.Put(k, Entry{Data: []byte(k)})
				if e, ok := c.Get(k); ok && string(e.Data) != k {
					t.Errorf("key %s holds %q", k, e.Data)
				}
			}
		})
	}
	wg.Wait()
	if s := c.Stats(); s.Bytes > 10000 {
		t.Errorf("bound exceeded: %+v", s)
	}
}
