package controller

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/coffer-csi/coffer/cli"
)

// The election's cases, ported from client-go's leaderelection_test.go
// (TestReleaseOnCancellation_Leases: release on cancel, also while a
// renewal hangs; TestFastPathLeaderElection: the fast and slow renewal
// paths) and extended to a hung apiserver and a paused leader. They run in a
// synctest bubble: client-go's LeaderElector reads the real clock and its
// own timers (LeaderElectionConfig has no clock to inject), which the
// bubble makes a fake clock that advances only when every goroutine
// waits, so the production timings run in no real time and each instant
// is exact.

// timings are the --leader-election-* defaults.
func timings(identity string) cli.Election {
	return cli.Election{
		Namespace: "coffer", Name: "coffer-sync", Identity: identity,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
	}
}

// apiserver is client-go's fake clientset with the apiserver's optimistic
// concurrency on Leases (the fake's tracker checks no resourceVersion):
// an update whose resourceVersion is not the stored one is a Conflict.
func apiserver(t *testing.T) *fake.Clientset {
	cs := fake.NewClientset()
	var mu sync.Mutex
	cs.PrependReactor("*", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		tracker, gvr, ns := cs.Tracker(), action.GetResource(), action.GetNamespace()
		switch action.GetVerb() {
		case "create":
			lease := action.(k8stesting.CreateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
			lease.ResourceVersion = "1"
			return true, lease, tracker.Create(gvr, lease, ns)
		case "update":
			lease := action.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
			stored, err := tracker.Get(gvr, ns, lease.Name)
			if err != nil {
				return true, nil, err
			}
			rv := stored.(*coordinationv1.Lease).ResourceVersion
			if lease.ResourceVersion != rv {
				return true, nil, apierrors.NewConflict(gvr.GroupResource(), lease.Name, errors.New("the object has been modified"))
			}
			n, _ := strconv.Atoi(rv)
			lease.ResourceVersion = strconv.Itoa(n + 1)
			return true, lease, tracker.Update(gvr, lease, ns)
		}
		return false, nil, nil
	})
	return cs
}

// replica is one candidate's connection to the apiserver: it can hang
// (every request waits until its context ends, as an HTTP request to an
// apiserver that stopped answering does) or freeze (every request waits
// until thaw, whatever its context: the process is paused and runs
// nothing).
type replica struct {
	coordinationv1client.LeasesGetter
	mu     sync.Mutex
	hung   bool
	frozen chan struct{}
}

func (r *replica) Leases(ns string) coordinationv1client.LeaseInterface {
	return &replicaLeases{LeaseInterface: r.LeasesGetter.Leases(ns), r: r}
}

func (r *replica) hang() { r.mu.Lock(); r.hung = true; r.mu.Unlock() }

// answer makes new requests reach the apiserver again; one already hung
// waits on for its context.
func (r *replica) answer() { r.mu.Lock(); r.hung = false; r.mu.Unlock() }

func (r *replica) freeze() { r.mu.Lock(); r.frozen = make(chan struct{}); r.mu.Unlock() }

func (r *replica) thaw() { r.mu.Lock(); close(r.frozen); r.frozen = nil; r.mu.Unlock() }

// wait is what a request waits for before it reaches the apiserver.
func (r *replica) wait(ctx context.Context) error {
	r.mu.Lock()
	hung, frozen := r.hung, r.frozen
	r.mu.Unlock()
	if frozen != nil {
		<-frozen
	}
	if hung {
		<-ctx.Done()
	}
	return ctx.Err()
}

type replicaLeases struct {
	coordinationv1client.LeaseInterface
	r *replica
}

func (l *replicaLeases) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	if err := l.r.wait(ctx); err != nil {
		return nil, err
	}
	return l.LeaseInterface.Get(ctx, name, opts)
}

func (l *replicaLeases) Create(ctx context.Context, lease *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error) {
	if err := l.r.wait(ctx); err != nil {
		return nil, err
	}
	return l.LeaseInterface.Create(ctx, lease, opts)
}

func (l *replicaLeases) Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	if err := l.r.wait(ctx); err != nil {
		return nil, err
	}
	return l.LeaseInterface.Update(ctx, lease, opts)
}

// term is one span of leading: fn's context from start to end.
type leadTerm struct {
	who        string
	start, end time.Time
}

// candidate runs lead as identity until ctx ends, recording when it led.
type candidate struct {
	identity string
	replica  *replica
	stop     context.CancelFunc
	done     chan error

	mu    sync.Mutex
	terms []leadTerm
}

// leaderAndStandby starts candidate a, lets it take the Lease, starts b
// and lets settle pass (a leads, renewing every RetryPeriod; b waits).
// Call it inside a synctest bubble.
func leaderAndStandby(t *testing.T, settle time.Duration) (cs *fake.Clientset, a, b *candidate) {
	t.Helper()
	cs = apiserver(t)
	a = startCandidate(t.Context(), cs, "a")
	synctest.Wait()
	b = startCandidate(t.Context(), cs, "b")
	time.Sleep(settle)
	synctest.Wait()
	return cs, a, b
}

func startCandidate(ctx context.Context, cs *fake.Clientset, identity string) *candidate {
	ctx, stop := context.WithCancel(ctx)
	c := &candidate{identity: identity, replica: &replica{LeasesGetter: cs.CoordinationV1()}, stop: stop, done: make(chan error, 1)}
	go func() {
		c.done <- lead(ctx, c.replica, clock.RealClock{}, timings(identity), func(ctx context.Context) error {
			c.mu.Lock()
			c.terms = append(c.terms, leadTerm{who: identity, start: time.Now()})
			c.mu.Unlock()
			<-ctx.Done()
			c.mu.Lock()
			c.terms[len(c.terms)-1].end = time.Now()
			c.mu.Unlock()
			return nil
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	return c
}

func (c *candidate) leadTerms() []leadTerm {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]leadTerm(nil), c.terms...)
}

func (c *candidate) leading() bool {
	t := c.leadTerms()
	return len(t) > 0 && t[len(t)-1].end.IsZero()
}

func holder(t *testing.T, cs *fake.Clientset) (string, *coordinationv1.Lease) {
	t.Helper()
	l, err := cs.CoordinationV1().Leases("coffer").Get(context.Background(), "coffer-sync", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the Lease: %v", err)
	}
	return ptr.Deref(l.Spec.HolderIdentity, ""), l
}

// oneAtATime fails if two terms overlap; an unfinished term ends now.
func oneAtATime(t *testing.T, cands ...*candidate) {
	t.Helper()
	var all []leadTerm
	for _, c := range cands {
		all = append(all, c.leadTerms()...)
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			aEnd, bEnd := a.end, b.end
			if aEnd.IsZero() {
				aEnd = time.Now()
			}
			if bEnd.IsZero() {
				bEnd = time.Now()
			}
			if a.start.Before(bEnd) && b.start.Before(aEnd) {
				t.Errorf("two leaders: %s from %v to %v, %s from %v to %v", a.who, a.start, a.end, b.who, b.start, b.end)
			}
		}
	}
}

// lastRenewal is when the holder last wrote the Lease, by its record.
func lastRenewal(t *testing.T, cs *fake.Clientset) time.Time {
	_, l := holder(t, cs)
	return l.Spec.RenewTime.Time
}

// TestElectionHungAPIServer: the leader's requests hang (its connection
// to the apiserver stops answering). It stops leading within
// RenewDeadline of its last renewal, before the standby may acquire the
// Lease (LeaseDuration after the renewal it last saw), and exits.
func TestElectionHungAPIServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs, a, b := leaderAndStandby(t, time.Minute)
		if !a.leading() || b.leading() {
			t.Fatalf("a leading %v, b leading %v; want a only", a.leading(), b.leading())
		}
		a.replica.hang()
		renewed := lastRenewal(t, cs)
		var aEnded, bStarted time.Time
		for aEnded.IsZero() || bStarted.IsZero() {
			time.Sleep(100 * time.Millisecond)
			if aEnded.IsZero() && !a.leading() {
				aEnded = time.Now()
			}
			if bStarted.IsZero() && b.leading() {
				bStarted = time.Now()
			}
			if time.Since(renewed) > time.Minute {
				t.Fatalf("a leading %v, b leading %v a minute after a's last renewal", a.leading(), b.leading())
			}
		}
		if got, limit := aEnded.Sub(renewed), 10*time.Second+100*time.Millisecond; got > limit {
			t.Errorf("a led %v after its last renewal, want at most the renew deadline (10s)", got)
		}
		if got := bStarted.Sub(renewed); got < 15*time.Second {
			t.Errorf("b took over %v after a's last renewal, before the Lease (15s) expired", got)
		}
		if err := <-a.done; !errors.Is(err, errLostLease) {
			t.Errorf("a ended with %v, want %v", err, errLostLease)
		}
		oneAtATime(t, a, b)
		if h, _ := holder(t, cs); h != "b" {
			t.Errorf("the Lease's holder is %q, want b", h)
		}
		b.stop()
		<-b.done
	})
}

// TestElectionPausedLeader: the leader is paused (SIGSTOP: nothing of it
// runs, an in-flight renewal waits with it). The standby takes over only
// once the Lease has expired; the paused leader's term has ended before
// that, and when it resumes it exits without leading again and without
// clearing its successor's Lease (client-go's release would: it checks
// the holder of the record it renewed last, not of the Lease it reads).
func TestElectionPausedLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs, a, b := leaderAndStandby(t, time.Minute)
		a.replica.freeze()
		renewed := lastRenewal(t, cs)
		for !b.leading() {
			time.Sleep(100 * time.Millisecond)
			if time.Since(renewed) > time.Minute {
				t.Fatal("b does not lead a minute after a was paused")
			}
		}
		if got := time.Since(renewed); got < 15*time.Second {
			t.Errorf("b took over %v after a's last renewal, before the Lease (15s) expired", got)
		}
		time.Sleep(time.Minute)
		a.replica.thaw()
		if err := <-a.done; !errors.Is(err, errLostLease) {
			t.Errorf("a ended with %v, want %v", err, errLostLease)
		}
		if n := len(a.leadTerms()); n != 1 {
			t.Errorf("a led %d times, want once", n)
		}
		if h, _ := holder(t, cs); h != "b" {
			t.Errorf("when a exited, the Lease's holder is %q, want b", h)
		}
		time.Sleep(time.Minute)
		if h, _ := holder(t, cs); h != "b" || !b.leading() {
			t.Errorf("after a resumed, the Lease's holder is %q and b leading %v; want b, leading", h, b.leading())
		}
		oneAtATime(t, a, b)
		b.stop()
		<-b.done
	})
}

// TestElectionReleaseOnCancel (client-go's TestReleaseOnCancellation_Leases):
// cancelling the leader writes an empty holder with a one-second Lease, so
// the standby takes over at its next try instead of after LeaseDuration.
// The release reads the Lease first: a write by someone else since the
// leader's renewal (here a label) does not make it fail on a stale
// resourceVersion.
func TestElectionReleaseOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs, a, b := leaderAndStandby(t, time.Minute+time.Second)
		_, l := holder(t, cs)
		l.Labels = map[string]string{"touched": "yes"}
		if _, err := cs.CoordinationV1().Leases("coffer").Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		a.stop()
		if err := <-a.done; err != nil {
			t.Errorf("a ended with %v, want nil (cancelled)", err)
		}
		h, l := holder(t, cs)
		if h != "" || ptr.Deref(l.Spec.LeaseDurationSeconds, 0) != 1 {
			t.Errorf("released Lease: holder %q, duration %ds; want no holder, 1s", h, ptr.Deref(l.Spec.LeaseDurationSeconds, 0))
		}
		released := time.Now()
		for !b.leading() {
			time.Sleep(100 * time.Millisecond)
		}
		if got := time.Since(released); got > 2*2200*time.Millisecond {
			t.Errorf("b took over %v after the release, want within two retries", got)
		}
		oneAtATime(t, a, b)
		b.stop()
		<-b.done
	})
}

// TestElectionReleaseOnCancelDuringRenewal (client-go's "release acquired
// lock on cancellation of update" in TestReleaseOnCancellation_Leases):
// the leader is cancelled while a renewal hangs; the renewal is abandoned,
// the leader stops, and the release that follows (its requests answered
// again) clears the Lease, so the standby takes over at its next try.
func TestElectionReleaseOnCancelDuringRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs, a, b := leaderAndStandby(t, time.Minute)
		a.replica.hang()
		time.Sleep(3 * time.Second) // a renewal (every RetryPeriod) is in flight, hung
		synctest.Wait()
		if !a.leading() {
			t.Fatal("a stopped leading within 3 s of its requests hanging, before its term ended")
		}
		a.replica.answer()
		a.stop()
		if err := <-a.done; err != nil {
			t.Errorf("a ended with %v, want nil (cancelled)", err)
		}
		if h, l := holder(t, cs); h != "" || ptr.Deref(l.Spec.LeaseDurationSeconds, 0) != 1 {
			t.Errorf("released Lease: holder %q, duration %ds; want no holder, 1s", h, ptr.Deref(l.Spec.LeaseDurationSeconds, 0))
		}
		released := time.Now()
		for !b.leading() {
			time.Sleep(100 * time.Millisecond)
			if time.Since(released) > time.Minute {
				t.Fatal("b does not lead a minute after a released the Lease")
			}
		}
		if got := time.Since(released); got > 2*2200*time.Millisecond {
			t.Errorf("b took over %v after the release, want within two retries", got)
		}
		oneAtATime(t, a, b)
		b.stop()
		<-b.done
	})
}

// TestElectionRenewsAfterConflict (client-go's TestFastPathLeaderElection):
// the leader renews with an update of the Lease it last wrote (the fast
// path); when someone else has written the Lease since (here a label), that
// update conflicts, and it reads the Lease and renews again (the slow path),
// still leading, in the same term.
func TestElectionRenewsAfterConflict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := apiserver(t)
		a := startCandidate(t.Context(), cs, "a")
		time.Sleep(time.Minute)
		synctest.Wait()
		_, l := holder(t, cs)
		l.Labels = map[string]string{"touched": "yes"}
		if _, err := cs.CoordinationV1().Leases("coffer").Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		cs.ClearActions()
		touched := time.Now()
		time.Sleep(time.Minute)
		synctest.Wait()
		var conflicts, gets int
		for _, action := range cs.Actions() {
			switch action.GetVerb() {
			case "get":
				gets++
			case "update":
				if action.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease).ResourceVersion == l.ResourceVersion {
					conflicts++ // written over the Lease as a last wrote it
				}
			}
		}
		if conflicts != 1 || gets != 1 {
			t.Errorf("after the Lease was written by someone else: %d stale updates and %d reads, want one of each (fast path, then slow)", conflicts, gets)
		}
		if h, _ := holder(t, cs); h != "a" || !a.leading() || len(a.leadTerms()) != 1 {
			t.Errorf("holder %q, a leading %v in %d terms; want a, leading in one", h, a.leading(), len(a.leadTerms()))
		}
		if r := lastRenewal(t, cs); !r.After(touched) {
			t.Errorf("a last renewed at %v, before the Lease was touched at %v", r, touched)
		}
		a.stop()
		<-a.done
	})
}

// TestElectionLostLease: another holder takes the Lease (an operator, or
// a replica that judged it expired): the leader stops leading within
// RenewDeadline of its last renewal and exits with an error, so its
// restart competes again, leaving the new holder's Lease alone.
func TestElectionLostLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := apiserver(t)
		a := startCandidate(t.Context(), cs, "a")
		time.Sleep(time.Minute)
		synctest.Wait()
		renewed := lastRenewal(t, cs)
		_, l := holder(t, cs)
		l.Spec.HolderIdentity = ptr.To("x")
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		if _, err := cs.CoordinationV1().Leases("coffer").Update(context.Background(), l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := <-a.done; err == nil || err.Error() != "lost the leader Lease; exiting so that a restart competes again" {
			t.Errorf("a ended with %v, want the lost Lease", err)
		}
		terms := a.leadTerms()
		if got := terms[0].end.Sub(renewed); got > 10*time.Second {
			t.Errorf("a led %v after its last renewal, want at most the renew deadline (10s)", got)
		}
		if h, _ := holder(t, cs); h != "x" {
			t.Errorf("the Lease's holder is %q, want x", h)
		}
	})
}

// TestElectionFnFails: the controller failing ends the election with its
// error, and releases the Lease for a standby.
func TestElectionFnFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := apiserver(t)
		broken := errors.New("controller failed")
		err := lead(t.Context(), cs.CoordinationV1(), clock.RealClock{}, timings("a"), func(context.Context) error {
			return broken
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if !errors.Is(err, broken) {
			t.Errorf("lead = %v, want %v", err, broken)
		}
		if h, _ := holder(t, cs); h != "" {
			t.Errorf("the Lease's holder is %q, want none (released)", h)
		}
	})
}

// TestElectionConfig: timings client-go refuses are an error, before any
// request (the flags' validation refuses them first).
func TestElectionConfig(t *testing.T) {
	e := timings("a")
	e.RenewDeadline = 2 * time.Second // not above 1.2 x RetryPeriod
	cs := apiserver(t)
	err := lead(t.Context(), cs.CoordinationV1(), clock.RealClock{}, e, func(context.Context) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || len(cs.Actions()) != 0 {
		t.Errorf("lead = %v after %d requests, want an error and none", err, len(cs.Actions()))
	}
}
