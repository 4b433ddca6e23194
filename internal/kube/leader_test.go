package kube

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// leaseStore is an API server's Lease storage: resourceVersions, and a
// conflict for a write that does not carry the current one.
type leaseStore struct {
	mu    sync.Mutex
	lease *coordinationv1.Lease
	rv    int
	// fail, when set, fails every request (the API server unreachable).
	fail atomic.Bool
}

var leaseResource = schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}

func (s *leaseStore) Get(_ context.Context, name string, _ metav1.GetOptions) (*coordinationv1.Lease, error) {
	if s.fail.Load() {
		return nil, errors.New("connection refused")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease == nil {
		return nil, apierrors.NewNotFound(leaseResource, name)
	}
	return s.lease.DeepCopy(), nil
}

func (s *leaseStore) Create(_ context.Context, l *coordinationv1.Lease, _ metav1.CreateOptions) (*coordinationv1.Lease, error) {
	if s.fail.Load() {
		return nil, errors.New("connection refused")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease != nil {
		return nil, apierrors.NewAlreadyExists(leaseResource, l.Name)
	}
	s.rv++
	s.lease = l.DeepCopy()
	s.lease.ResourceVersion = strconv.Itoa(s.rv)
	return s.lease.DeepCopy(), nil
}

func (s *leaseStore) Update(_ context.Context, l *coordinationv1.Lease, _ metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	if s.fail.Load() {
		return nil, errors.New("connection refused")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease == nil || l.ResourceVersion != s.lease.ResourceVersion {
		return nil, apierrors.NewConflict(leaseResource, l.Name, errors.New("the object has been modified"))
	}
	s.rv++
	s.lease = l.DeepCopy()
	s.lease.ResourceVersion = strconv.Itoa(s.rv)
	return s.lease.DeepCopy(), nil
}

func (s *leaseStore) holder() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease == nil {
		return ""
	}
	return ptr.Deref(s.lease.Spec.HolderIdentity, "")
}

func election(store LeaseInterface, id string) *Election {
	return &Election{
		Leases: store, Name: "coffer-sync", Identity: id,
		LeaseDuration: 600 * time.Millisecond, RenewDeadline: 400 * time.Millisecond, RetryPeriod: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// TestElectionOneLeaderAtATime: two candidates; only one leads at any
// moment; when the leader stops (SIGTERM), it releases the Lease and the
// other takes over without waiting for it to expire.
func TestElectionOneLeaderAtATime(t *testing.T) {
	store := &leaseStore{}
	var leading atomic.Int32
	var overlap atomic.Bool
	started := make(chan string, 2)
	lead := func(id string) func(context.Context) error {
		return func(ctx context.Context) error {
			if leading.Add(1) > 1 {
				overlap.Store(true)
			}
			started <- id
			<-ctx.Done()
			leading.Add(-1)
			return nil
		}
	}
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- election(store, "a").Run(ctxA, lead("a")) }()
	first := <-started
	if first != "a" {
		t.Fatalf("%s led first", first)
	}
	go func() { doneB <- election(store, "b").Run(ctxB, lead("b")) }()
	// b keeps trying while a renews.
	select {
	case id := <-started:
		t.Fatalf("%s leads while a holds the Lease", id)
	case <-time.After(3 * 600 * time.Millisecond):
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Errorf("a stopped with %v", err)
	}
	// Released, not left to expire: the Lease no longer names a.
	if h := store.holder(); h == "a" {
		t.Error("a stopped without releasing the Lease")
	}
	if id := <-started; id != "b" {
		t.Fatalf("%s took over", id)
	}
	stopB()
	if err := <-doneB; err != nil {
		t.Errorf("b stopped with %v", err)
	}
	if overlap.Load() {
		t.Error("two candidates led at once")
	}
	if h := store.holder(); h != "" {
		t.Errorf("after both stopped the Lease names %q", h)
	}
}

// TestElectionLostLease: a leader that cannot renew within RenewDeadline
// stops leading (lead's context ends) and Run says the Lease was lost.
func TestElectionLostLease(t *testing.T) {
	store := &leaseStore{}
	leadEnded := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- election(store, "a").Run(context.Background(), func(ctx context.Context) error {
			store.fail.Store(true) // the API server goes away
			<-ctx.Done()
			close(leadEnded)
			return nil
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrLostLease) {
			t.Errorf("Run: %v, want ErrLostLease", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the leader never noticed it could not renew")
	}
	select {
	case <-leadEnded:
	default:
		t.Error("Run returned before lead did")
	}
}

// TestElectionTakesOverAnExpiredLease: a Lease whose holder stopped
// renewing (crashed) is taken once it has not changed for its duration,
// and not before; its transitions are counted.
func TestElectionTakesOverAnExpiredLease(t *testing.T) {
	store := &leaseStore{}
	now := metav1.NewMicroTime(time.Now())
	if _, err := store.Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "coffer-sync"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("crashed"), LeaseDurationSeconds: ptr.To[int32](1),
			RenewTime: &now, AcquireTime: &now, LeaseTransitions: ptr.To[int32](3)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- election(store, "b").Run(ctx, func(ctx context.Context) error {
			if waited := time.Since(start); waited < time.Second {
				t.Errorf("took a Lease renewed %v ago, with a duration of 1s", waited)
			}
			stop()
			return nil
		})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if n := ptr.Deref(store.lease.Spec.LeaseTransitions, 0); n != 4 {
		t.Errorf("lease transitions %d, want 4", n)
	}
}

// TestElectionReturnsLeadError: lead failing ends leadership with its
// error (and releases the Lease).
func TestElectionReturnsLeadError(t *testing.T) {
	store := &leaseStore{}
	boom := errors.New("informer never synced")
	if err := election(store, "a").Run(context.Background(), func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Run: %v, want %v", err, boom)
	}
	if h := store.holder(); h != "" {
		t.Errorf("the Lease still names %q", h)
	}
}

func TestElectionTimings(t *testing.T) {
	e := election(&leaseStore{}, "a")
	e.RenewDeadline = e.LeaseDuration
	if err := e.Run(context.Background(), nil); err == nil {
		t.Error("a renew deadline as long as the lease was accepted")
	}
}
