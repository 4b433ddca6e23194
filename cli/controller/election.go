package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/cli"
)

// errLostLease ends the process when another candidate may hold the
// Lease: a restart competes again.
var errLostLease = errors.New("lost the leader Lease; exiting so that a restart competes again")

// Elect runs fn while this process holds the Lease e names, with
// client-go's Lease election (ReleaseOnCancel: SIGTERM hands the Lease
// over at once). It returns nil when ctx ends, fn's error when fn fails,
// and an error when the Lease is lost, always after fn has returned.
func Elect(ctx context.Context, rc *rest.Config, e cli.Election, fn func(context.Context) error, log *slog.Logger) error {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	return lead(ctx, cs.CoordinationV1(), clock.RealClock{}, e, fn, log)
}

// lead runs fn under client-go's LeaderElector, with two additions. fn's
// context ends RenewDeadline after the start of the last renewal that
// succeeded, whatever the elector is doing then: client-go ends its
// leader's context only when its Run returns, which with ReleaseOnCancel
// is after the release request; against a hung apiserver that request
// takes up to another RenewDeadline, so the old leader would still run
// when a standby, LeaseDuration after the last renewal it saw, takes over.
// A renewal starts before the apiserver stores it, and a standby waits
// LeaseDuration from when it reads it, so fn's context ends
// LeaseDuration-RenewDeadline before anyone else may lead; a process
// paused past that finds it ended when it resumes. And the release
// never clears a Lease another candidate holds (termLock).
func lead(ctx context.Context, leases coordinationv1client.LeasesGetter, clk clock.WithDelayedExecution, e cli.Election, fn func(context.Context) error, log *slog.Logger) error {
	runCtx, stopRunning := context.WithCancel(ctx)
	defer stopRunning()
	term := &term{clock: clk, renewDeadline: e.RenewDeadline}
	lock := &termLock{
		Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name},
			Client:     leases,
			LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
		},
		term: term,
	}
	var (
		mu      sync.Mutex
		over    bool // Run returned: fn must not start any more
		started bool
		done    = make(chan struct{})
		fnErr   error
		ownEnd  bool // fn returned while it still led
	)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            e.Namespace + "/" + e.Name,
		LeaseDuration:   e.LeaseDuration,
		RenewDeadline:   e.RenewDeadline,
		RetryPeriod:     e.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(electorCtx context.Context) {
				mu.Lock()
				if over {
					mu.Unlock()
					return
				}
				started = true
				mu.Unlock()
				defer close(done)
				leadCtx, cancel := term.context(electorCtx)
				defer cancel()
				fnErr = fn(leadCtx)
				ownEnd = leadCtx.Err() == nil
				stopRunning() // stop renewing, and release the Lease
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	elector.Run(runCtx)
	mu.Lock()
	over = true
	led := started
	mu.Unlock()
	if !led {
		return nil // ctx ended while waiting for the Lease
	}
	<-done
	switch {
	case ownEnd || fnErr != nil && !errors.Is(fnErr, context.Canceled):
		return fnErr
	case ctx.Err() != nil:
		return nil
	}
	log.Error("lost the leader Lease", "identity", e.Identity)
	return errLostLease
}

// term is how long this process may act as the leader: until
// renewDeadline after the start of its last successful renewal.
type term struct {
	clock         clock.WithDelayedExecution
	renewDeadline time.Duration

	mu     sync.Mutex
	end    time.Time
	timer  clock.Timer
	cancel context.CancelFunc // of the leader's context, once it has one
}

// renewed extends the term: a renewal that started at start succeeded.
func (t *term) renewed(start time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if end := start.Add(t.renewDeadline); end.After(t.end) {
		t.end = end
		t.arm()
	}
}

// ended ends the term now (the Lease was released).
func (t *term) ended() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.end = time.Time{}
	if t.cancel != nil {
		t.cancel()
	}
}

// context returns the leader's context: parent's, ended also when the
// term does.
func (t *term) context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cancel = cancel
	t.arm()
	return ctx, cancel
}

// arm (re)sets the timer that ends the leader's context at the term's end.
func (t *term) arm() {
	if t.cancel == nil {
		return
	}
	if t.timer != nil {
		t.timer.Stop()
	}
	cancel := t.cancel
	t.timer = t.clock.AfterFunc(t.end.Sub(t.clock.Now()), cancel)
}

// termLock is client-go's LeaseLock, telling term of every write that
// made this process the holder, from when it was sent, and refusing to
// release a Lease another candidate holds. The elector calls it from one
// goroutine at a time.
type termLock struct {
	resourcelock.Interface
	term   *term
	holder string // in the Lease as last read
}

// Get reads the Lease and remembers its holder: client-go's release reads
// the Lease, then clears it if its own older record still names this
// process, so a leader paused past its term would otherwise clear the
// Lease of its successor, and a third replica could take it while the
// successor still leads.
func (l *termLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r, raw, err := l.Interface.Get(ctx)
	if err == nil {
		l.holder = r.HolderIdentity
	}
	return r, raw, err
}

func (l *termLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	start := l.term.clock.Now()
	err := l.Interface.Create(ctx, r)
	l.wrote(r, start, err)
	return err
}

func (l *termLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	if r.HolderIdentity == "" && l.holder != l.Identity() {
		l.term.ended()
		return fmt.Errorf("not releasing the Lease %s: %q holds it", l.Describe(), l.holder)
	}
	start := l.term.clock.Now()
	err := l.Interface.Update(ctx, r)
	l.wrote(r, start, err)
	return err
}

func (l *termLock) wrote(r resourcelock.LeaderElectionRecord, start time.Time, err error) {
	switch {
	case r.HolderIdentity == "":
		l.term.ended() // a release, written or not: this process no longer leads
	case err == nil && r.HolderIdentity == l.Identity():
		l.term.renewed(start)
	}
}
