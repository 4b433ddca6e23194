package fetch

import (
	"fmt"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// TestDenyListForgetsLeastRecentlyUsed: a full deny list forgets the one
// identity used least recently, not every identity it held (it was emptied
// at its bound before), so a burst of new identities does not send every
// refused role back to the batch API.
func TestDenyListForgetsLeastRecentlyUsed(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	var d denyList
	for i := range maxDenied {
		d.deny(clk, fmt.Sprint("identity-", i))
	}
	d.denied(clk, "identity-0") // used again: kept
	d.deny(clk, "one-more")
	for _, tc := range []struct {
		scope string
		want  bool
	}{
		{"identity-0", true},
		{"identity-1", false}, // the least recently used
		{"identity-2", true},
		{fmt.Sprint("identity-", maxDenied-1), true},
		{"one-more", true},
	} {
		if got := d.denied(clk, tc.scope); got != tc.want {
			t.Errorf("%s denied = %v, want %v", tc.scope, got, tc.want)
		}
	}
}

// TestDenyListExpires: a refusal is remembered for denyFor, then the API is
// asked again (the role's policy may have been fixed).
func TestDenyListExpires(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	var d denyList
	d.deny(clk, "identity")
	clk.Step(denyFor - time.Second)
	if !d.denied(clk, "identity") {
		t.Fatal("refusal forgotten within denyFor")
	}
	clk.Step(time.Second)
	if d.denied(clk, "identity") {
		t.Fatal("refusal remembered past denyFor")
	}
}
