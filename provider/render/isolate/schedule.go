package isolate

import (
	"context"
	"sync"
)

// scheduler hands out the pool's worker slots fairly among tenants
// (namespaces):
//   - a tenant holds at most perTenant slots at once, fewer than the pool
//     has (unless the pool has one), so one tenant's evaluations, hostile or
//     not, always leave a slot for the others;
//   - a free slot goes to the waiting tenant served longest ago (one never
//     served first), arrivals in order among equals: a tenant with many
//     waiting evaluations cannot keep one that just arrived waiting behind
//     all of them.
//
// So a newly arrived tenant waits for at most one running evaluation per
// tenant ahead of it, each bounded by the evaluation time limit.
type scheduler struct {
	mu        sync.Mutex
	free      int
	perTenant int
	busy      map[string]int
	served    map[string]uint64 // when each tenant with busy or waiting work last got a slot
	seq       uint64
	waiting   []*waiter
}

type waiter struct {
	tenant  string
	ready   chan struct{}
	granted bool
}

func newScheduler(slots int) *scheduler {
	return &scheduler{free: slots, perTenant: max(1, slots-1), busy: map[string]int{}, served: map[string]uint64{}}
}

// acquire waits for a slot for tenant, until ctx ends.
func (s *scheduler) acquire(ctx context.Context, tenant string) error {
	w := &waiter{tenant: tenant, ready: make(chan struct{})}
	s.mu.Lock()
	s.waiting = append(s.waiting, w)
	s.dispatch()
	s.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.granted {
		// Granted as ctx ended: hand the slot on.
		s.releaseLocked(tenant)
		return ctx.Err()
	}
	for i, o := range s.waiting {
		if o == w {
			s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
			break
		}
	}
	s.forget(tenant)
	return ctx.Err()
}

func (s *scheduler) release(tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(tenant)
}

func (s *scheduler) releaseLocked(tenant string) {
	s.free++
	if s.busy[tenant]--; s.busy[tenant] <= 0 {
		delete(s.busy, tenant)
	}
	s.dispatch()
	s.forget(tenant)
}

// dispatch grants free slots to waiters, fairest first.
func (s *scheduler) dispatch() {
	for s.free > 0 {
		best := -1
		for i, w := range s.waiting {
			if s.busy[w.tenant] >= s.perTenant {
				continue
			}
			if best < 0 || s.served[w.tenant] < s.served[s.waiting[best].tenant] {
				best = i
			}
		}
		if best < 0 {
			return
		}
		w := s.waiting[best]
		s.waiting = append(s.waiting[:best], s.waiting[best+1:]...)
		s.free--
		s.busy[w.tenant]++
		s.seq++
		s.served[w.tenant] = s.seq
		w.granted = true
		close(w.ready)
	}
}

// forget drops a tenant's history once it has nothing busy or waiting,
// so the maps stay as small as the work in flight.
func (s *scheduler) forget(tenant string) {
	if s.busy[tenant] > 0 {
		return
	}
	for _, w := range s.waiting {
		if w.tenant == tenant {
			return
		}
	}
	delete(s.served, tenant)
}

// queued is how many evaluations wait for a slot.
func (s *scheduler) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}

// inUse is how many slots are taken.
func (s *scheduler) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.busy {
		n += b
	}
	return n
}
