package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Election holds a coordination.k8s.io/v1 Lease while a function runs, with
// the protocol of client-go's leader election (whose package coffer does
// not link, see the package comment): a candidate takes the Lease when it
// has no holder, or when its record has not changed for LeaseDuration as
// measured on the candidate's own clock (so clock skew between replicas
// does not matter); the holder renews it every RetryPeriod and stops
// leading when it could not renew for RenewDeadline; every write carries
// the resourceVersion read, so two candidates never both win.
type Election struct {
	Leases LeaseInterface
	// Name of the Lease, and Identity of this candidate (unique per
	// process).
	Name, Identity string
	// LeaseDuration > RenewDeadline > RetryPeriod > 0.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
	// now is the clock (default time.Now).
	now func() time.Time
}

// ErrLostLease is what Run returns when this candidate led and could not
// renew the Lease in time.
var ErrLostLease = errors.New("lost the leader Lease")

// Run waits until this candidate holds the Lease, then runs lead with a
// context that ends when leadership ends. It returns when ctx ends (having
// released the Lease, so another replica takes over at once) or when the
// Lease is lost (ErrLostLease); either way only after lead has returned,
// and with lead's error if it failed.
func (e *Election) Run(ctx context.Context, lead func(context.Context) error) error {
	if !(e.RetryPeriod > 0 && e.RetryPeriod < e.RenewDeadline && e.RenewDeadline < e.LeaseDuration) {
		return errors.New("leader election needs 0 < retry period < renew deadline < lease duration")
	}
	if e.now == nil {
		e.now = time.Now
	}
	var o observation
	// Acquire.
	for {
		ok, err := e.tryAcquireOrRenew(ctx, &o)
		if err != nil && ctx.Err() == nil {
			e.Logger.Warn("leader election: cannot read or write the Lease; retrying", "lease", e.Name, "error", err)
		}
		if ok {
			break
		}
		if !sleep(ctx, jitter(e.RetryPeriod)) {
			return nil
		}
	}
	e.Logger.Info("leader election: holding the Lease", "lease", e.Name, "identity", e.Identity)

	leadCtx, stopLeading := context.WithCancel(ctx)
	defer stopLeading()
	var (
		wg      sync.WaitGroup
		leadErr error
	)
	wg.Go(func() {
		defer stopLeading()
		leadErr = lead(leadCtx)
	})
	lost := e.renew(leadCtx, &o)
	stopLeading()
	wg.Wait()
	if !lost {
		e.release(&o)
	}
	switch {
	case leadErr != nil && !errors.Is(leadErr, context.Canceled):
		return leadErr
	case lost:
		return ErrLostLease
	}
	return nil
}

// renew keeps the Lease until ctx ends (false) or a renewal did not
// succeed within RenewDeadline (true: lost).
func (e *Election) renew(ctx context.Context, o *observation) (lost bool) {
	for {
		if !sleep(ctx, e.RetryPeriod) {
			return false
		}
		deadline := e.now().Add(e.RenewDeadline)
		for {
			ok, err := e.tryAcquireOrRenew(ctx, o)
			if ok {
				break
			}
			if ctx.Err() != nil {
				return false
			}
			if err != nil {
				e.Logger.Warn("leader election: renewing the Lease failed", "lease", e.Name, "error", err)
			}
			if !o.heldBy(e.Identity) || !e.now().Add(e.RetryPeriod).Before(deadline) {
				e.Logger.Error("leader election: lost the Lease", "lease", e.Name, "identity", e.Identity)
				return true
			}
			if !sleep(ctx, e.RetryPeriod) {
				return false
			}
		}
	}
}

// observation is the last Lease record seen and when (on this clock) it
// last changed.
type observation struct {
	spec  coordinationv1.LeaseSpec
	lease *coordinationv1.Lease
	at    time.Time
}

func (o *observation) heldBy(id string) bool {
	return o.lease != nil && ptr.Deref(o.spec.HolderIdentity, "") == id
}

// tryAcquireOrRenew reads the Lease and writes it with this candidate as
// holder if it may: true when this candidate now holds it.
func (e *Election) tryAcquireOrRenew(ctx context.Context, o *observation) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, e.RenewDeadline)
	defer cancel()
	now := metav1.NewMicroTime(e.now())
	seconds := int32((e.LeaseDuration + time.Second - 1) / time.Second)
	lease, err := e.Leases.Get(ctx, e.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		created, err := e.Leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: e.Name},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: ptr.To(e.Identity), LeaseDurationSeconds: ptr.To(seconds),
				AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr.To[int32](0),
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, fmt.Errorf("creating Lease %s: %w", e.Name, err)
		}
		o.observe(created, e.now())
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading Lease %s: %w", e.Name, err)
	}
	if o.lease == nil || !equalSpec(o.spec, lease.Spec) {
		o.observe(lease, e.now())
	}
	holder := ptr.Deref(lease.Spec.HolderIdentity, "")
	duration := time.Duration(ptr.Deref(lease.Spec.LeaseDurationSeconds, 0)) * time.Second
	if holder != "" && holder != e.Identity && e.now().Before(o.at.Add(duration)) {
		return false, nil // someone else holds it, and renewed it recently
	}
	next := lease.DeepCopy()
	if holder != e.Identity {
		next.Spec.AcquireTime = &now
		next.Spec.LeaseTransitions = ptr.To(ptr.Deref(lease.Spec.LeaseTransitions, 0) + 1)
	}
	next.Spec.HolderIdentity = ptr.To(e.Identity)
	next.Spec.LeaseDurationSeconds = ptr.To(seconds)
	next.Spec.RenewTime = &now
	updated, err := e.Leases.Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return false, fmt.Errorf("updating Lease %s: %w", e.Name, err)
	}
	o.observe(updated, e.now())
	return true, nil
}

// release gives the Lease up, so that another candidate need not wait for
// it to expire (client-go's ReleaseOnCancel).
func (e *Election) release(o *observation) {
	if !o.heldBy(e.Identity) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.RenewDeadline)
	defer cancel()
	next := o.lease.DeepCopy()
	now := metav1.NewMicroTime(e.now())
	next.Spec.HolderIdentity = ptr.To("")
	next.Spec.LeaseDurationSeconds = ptr.To[int32](1)
	next.Spec.RenewTime = &now
	if _, err := e.Leases.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
		e.Logger.Warn("leader election: could not release the Lease; it expires on its own", "lease", e.Name, "error", err)
		return
	}
	e.Logger.Info("leader election: released the Lease", "lease", e.Name, "identity", e.Identity)
}

func (o *observation) observe(l *coordinationv1.Lease, at time.Time) {
	o.lease, o.spec, o.at = l, l.Spec, at
}

func equalSpec(a, b coordinationv1.LeaseSpec) bool {
	return ptr.Deref(a.HolderIdentity, "") == ptr.Deref(b.HolderIdentity, "") &&
		ptr.Deref(a.LeaseDurationSeconds, 0) == ptr.Deref(b.LeaseDurationSeconds, 0) &&
		ptr.Deref(a.LeaseTransitions, 0) == ptr.Deref(b.LeaseTransitions, 0) &&
		microEqual(a.RenewTime, b.RenewTime) && microEqual(a.AcquireTime, b.AcquireTime)
}

func microEqual(a, b *metav1.MicroTime) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}

// jitter spreads candidates' retries (client-go uses a factor of 1.2).
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
