// Package work is the evaluation budget one request shares: every jmesPath
// evaluation and template execution of one mount (or of one class's sync
// as one ServiceAccount) draws from the same Budget, whether what it builds
// is written or not. Without it each expression, entry or template got a
// fresh allowance of its own, and a class multiplied the allowance by
// repeating entries (256 unwritten entries took a mount to 1.6 GB).
package work

import (
	"context"
	"errors"
	"sync/atomic"
)

// Budget is bytes of work left. It is safe for concurrent use.
type Budget struct {
	total int64
	left  atomic.Int64
}

// New returns a budget of n bytes.
func New(n int) *Budget {
	b := &Budget{total: int64(n)}
	b.left.Store(int64(n))
	return b
}

// Part is a budget of left bytes that stands for what remains of one of
// total: a worker process (provider/render/isolate) evaluates under it on
// behalf of the request's own budget, whose messages name total.
func Part(left, total int) *Budget {
	b := &Budget{total: int64(total)}
	b.left.Store(int64(left))
	return b
}

// Spent is what was spent of a budget that started at start bytes left:
// once the budget is over, more than start (so that spending it from the
// budget it stands for puts that one over too).
func (b *Budget) Spent(start int) int {
	left := b.left.Load()
	if left < 0 {
		return start + 1
	}
	return start - int(left)
}

// Spend takes n bytes, and reports whether the budget covered them. Once
// it has not, every further Spend fails: the request is over budget. A
// negative n (an estimate that overflowed) is never covered: nothing gives
// work back.
func (b *Budget) Spend(n int) bool {
	if n < 0 {
		b.left.Store(-1)
		return false
	}
	return b.left.Add(-int64(n)) >= 0
}

// Left is what remains (never negative).
func (b *Budget) Left() int { return int(max(0, b.left.Load())) }

// Total is the budget's size, for messages.
func (b *Budget) Total() int { return int(b.total) }

type key struct{}

// NewContext returns ctx carrying b: evaluations under it draw from b.
func NewContext(ctx context.Context, b *Budget) context.Context {
	return context.WithValue(ctx, key{}, b)
}

// FromContext is the budget ctx carries, or nil.
func FromContext(ctx context.Context) *Budget {
	b, _ := ctx.Value(key{}).(*Budget)
	return b
}

// ErrExhausted is an evaluation's error when the request's shared budget
// is spent; the caller names the request and the budget.
var ErrExhausted = errors.New("the paths and templates of one mount (or one class's sync) together build more than the work budget they share")
