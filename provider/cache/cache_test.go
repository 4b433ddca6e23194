package cache

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestCache(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Now())
	c := New(time.Minute, 1000)
	c.SetClock(clk)

	c.Put("id-a|us-east-1|x", Entry{Data: []byte("a"), Version: "1"})
	if e, ok := c.Get("id-a|us-east-1|x", time.Time{}); !ok || string(e.Data) != "a" || e.Version != "1" {
		t.Fatalf("Get = %v, %v", e, ok)
	}
	if _, ok := c.Get("id-b|us-east-1|x", time.Time{}); ok {
		t.Fatal("another identity's key hit")
	}
	clk.SetTime(clk.Now().Add(time.Minute))
	if _, ok := c.Get("id-a|us-east-1|x", time.Time{}); ok {
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
	if _, ok := c.Get("k9", time.Time{}); !ok {
		t.Error("newest entry evicted")
	}
	if _, ok := c.Get("k0", time.Time{}); ok {
		t.Error("oldest entry kept")
	}
	// An entry larger than the bound is not stored at all.
	c.Put("huge", Entry{Data: make([]byte, 2000)})
	if _, ok := c.Get("huge", time.Time{}); ok {
		t.Error("oversized entry stored")
	}
}

func TestCacheLRUOrder(t *testing.T) {
	c := New(time.Hour, 3*(entryOverhead+3))
	c.Put("a", Entry{Data: []byte("1")})
	c.Put("b", Entry{Data: []byte("1")})
	c.Put("c", Entry{Data: []byte("1")})
	c.Get("a", time.Time{}) // a is now most recent; b is the oldest
	c.Put("d", Entry{Data: []byte("1")})
	if _, ok := c.Get("b", time.Time{}); ok {
		t.Error("least recently used entry kept")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.Get(k, time.Time{}); !ok {
			t.Errorf("%s evicted", k)
		}
	}
}

func TestCacheDisabled(t *testing.T) {
	for _, c := range []*Cache{New(0, 100), New(time.Minute, 0)} {
		c.Put("k", Entry{Data: []byte("v")})
		if _, ok := c.Get("k", time.Time{}); ok {
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
				if e, ok := c.Get(k, time.Time{}); ok && string(e.Data) != k {
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

func TestCacheReadTimes(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Now())
	c := New(time.Minute, 10000)
	c.SetClock(clk)
	read := clk.Now().Add(-10 * time.Second)
	c.Put("k", Entry{Data: []byte("v1"), At: read})
	tests := []struct {
		name      string
		notBefore time.Time
		want      bool
	}{
		{"read after the bound", read.Add(-time.Nanosecond), true},
		{"read exactly at the bound", read, true},
		{"read before the bound", read.Add(time.Nanosecond), false},
	}
	for _, tc := range tests {
		if _, ok := c.Get("k", tc.notBefore); ok != tc.want {
			t.Errorf("%s: hit = %v, want %v", tc.name, ok, tc.want)
		}
	}
	// An older read finishing late does not replace a newer one.
	c.Put("k", Entry{Data: []byte("v0"), At: read.Add(-time.Second)})
	if e, _ := c.Get("k", time.Time{}); string(e.Data) != "v1" {
		t.Errorf("older read replaced the newer: %q", e.Data)
	}
	// Expiry counts from the read, not from the Put.
	clk.SetTime(read.Add(time.Minute))
	if _, ok := c.Last("k", time.Time{}); ok {
		t.Error("entry served a minute after it was read")
	}
	// Last does not count as a lookup.
	if s := c.Stats(); s.Hits != 3 || s.Misses != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestMarks(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Now())
	now := clk.Now()
	m := NewMarks(time.Minute, 4)
	m.c.SetClock(clk)
	if nb := m.NotBefore("pod-a"); !nb.IsZero() {
		t.Fatalf("unknown pod has a mark: %v", nb)
	}
	m.Mounted("pod-a", now)
	if nb := m.NotBefore("pod-a"); !nb.Equal(now) {
		t.Fatalf("NotBefore = %v, want %v", nb, now)
	}
	if nb := m.NotBefore(""); !nb.IsZero() {
		t.Error("empty uid marked")
	}
	// More pods than the bound: the forgotten marks raise a floor for
	// every pod without one, so nothing older is served to a forgotten pod.
	marked := map[string]time.Time{"pod-a": now}
	for i := range 10 {
		pod := fmt.Sprintf("pod-%d", i)
		marked[pod] = now.Add(time.Duration(i) * time.Second)
		m.Mounted(pod, marked[pod])
	}
	if s := m.c.Stats(); s.Bytes > 4*markBytes || s.Evictions == 0 {
		t.Errorf("marks hold %d bytes after %d evictions, bound is %d", s.Bytes, s.Evictions, 4*markBytes)
	}
	for pod, at := range marked {
		if nb := m.NotBefore(pod); nb.Before(at) {
			t.Errorf("%s mounted at %v may be served values read at %v", pod, at, nb)
		}
	}
	// A uid of any length costs one mark.
	m.Mounted(strings.Repeat("u", 1<<20), now.Add(time.Hour))
	if nb := m.NotBefore(strings.Repeat("u", 1<<20)); !nb.Equal(now.Add(time.Hour)) {
		t.Errorf("long uid not marked: %v", nb)
	}
	// Marks expire with the window: a pod gone is forgotten.
	now = now.Add(2 * time.Hour)
	clk.SetTime(now)
	if nb := m.NotBefore("pod-9"); nb.After(now.Add(-time.Minute)) {
		t.Errorf("a mark older than the window still constrains: %v", nb)
	}
	if _, ok := m.c.Last("pod-9", time.Time{}); ok {
		t.Error("mark kept past the window")
	}
	if NewMarks(0, 10) != nil || NewMarks(time.Minute, 0) != nil {
		t.Error("disabled marks allocated")
	}
}
