package bounded

import (
	"fmt"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	tests := []struct {
		name string
		// ops: "+k" adds k, "?k" reads k; then want lists the keys held.
		ops  []string
		want map[string]bool
	}{
		{"the oldest write goes", []string{"+a", "+b", "+c", "+d"}, map[string]bool{"a": false, "b": true, "c": true, "d": true}},
		{"a read keeps an entry", []string{"+a", "+b", "+c", "?a", "+d"}, map[string]bool{"a": true, "b": false, "c": true, "d": true}},
		{"a rewrite keeps an entry", []string{"+a", "+b", "+c", "+a", "+d"}, map[string]bool{"a": true, "b": false, "c": true, "d": true}},
		{"a miss changes nothing", []string{"+a", "+b", "+c", "?x", "+d"}, map[string]bool{"a": false, "b": true, "c": true, "d": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewLRU[int](3, nil)
			for i, op := range tc.ops {
				switch op[0] {
				case '+':
					c.Add(op[1:], i)
				case '?':
					c.Get(op[1:])
				}
			}
			for k, want := range tc.want {
				if _, ok := c.Get(k); ok != want {
					t.Errorf("%s held = %v, want %v", k, ok, want)
				}
			}
			if c.Len() != 3 {
				t.Errorf("Len = %d, want 3", c.Len())
			}
		})
	}
}

func TestLRUExpiresOnRead(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(start)
	c := NewLRU[string](10, clk)
	c.AddUntil("short", "s", start.Add(time.Minute))
	c.Add("forever", "f")
	tests := []struct {
		after     time.Duration
		short, ok bool
	}{
		{0, true, true},
		{time.Minute - time.Nanosecond, true, true},
		{time.Minute, false, true}, // expired at its instant
		{24 * time.Hour, false, true},
	}
	for _, tc := range tests {
		clk.SetTime(start.Add(tc.after))
		if _, ok := c.Get("short"); ok != tc.short {
			t.Errorf("after %v: short held = %v, want %v", tc.after, ok, tc.short)
		}
		if v, ok := c.Get("forever"); !ok || v != "f" {
			t.Errorf("after %v: an entry without expiry = %q, %v", tc.after, v, ok)
		}
	}
	if c.Len() != 1 {
		t.Errorf("an expired entry read is still held: Len = %d", c.Len())
	}
	// A new write of an expired key counts from its own expiry.
	c.AddUntil("short", "s2", clk.Now().Add(time.Second))
	if v, ok := c.Get("short"); !ok || v != "s2" {
		t.Errorf("rewritten entry = %q, %v", v, ok)
	}
	c.Remove("short")
	if _, ok := c.Get("short"); ok {
		t.Error("removed entry held")
	}
}

func TestLRUHoldsAtLeastOne(t *testing.T) {
	c := NewLRU[int](0, nil)
	c.Add("a", 1)
	c.Add("b", 2)
	if _, ok := c.Get("b"); !ok || c.Len() != 1 {
		t.Errorf("size 0: b held = %v, Len = %d; want true, 1", ok, c.Len())
	}
}

func TestLRUConcurrent(t *testing.T) {
	c := NewLRU[string](16, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 500 {
				k := fmt.Sprint((i * j) % 40)
				c.AddUntil(k, k, time.Now().Add(time.Hour))
				if v, ok := c.Get(k); ok && v != k {
					t.Errorf("key %s holds %q", k, v)
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 16 {
		t.Errorf("Len = %d, bound is 16", c.Len())
	}
}
