// Package rotationevent records a Normal event SecretsRotated on a pod when a
// remount changes the version of any of its objects. It names the objects and
// their new versions, never a value. Recording never fails or slows a mount:
// Observe only compares versions and hands the event to a bounded queue, and
// one goroutine writes events within a rate limit.
package rotationevent

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/lru"

	"github.com/coffer-csi/coffer/internal/panics"
)

// Reason is the event's reason.
const Reason = "SecretsRotated"

// Outcomes of one observed rotation, for metrics.
const (
	OutcomeRecorded    = "recorded"
	OutcomeRateLimited = "rate_limited"
	OutcomeDropped     = "dropped" // the queue was full
	OutcomeFailed      = "failed"  // the API refused the event
)

// maxNamed bounds the objects one event names; maxMessage bounds its
// message (the events.k8s.io API's limit on a note).
const (
	maxNamed   = 10
	maxMessage = 1024
	// maxEventPrefix leaves room in an event's name for "." and 16 hex
	// digits of the time.
	maxEventPrefix = 253 - 17
)

// CreateFunc writes one Event (client-go: CoreV1().Events(ns).Create).
// Only create: the recorder never patches or aggregates.
type CreateFunc func(ctx context.Context, ev *corev1.Event) error

// Pod names the pod and class of a mount.
type Pod struct {
	Namespace, Name, UID, Class string
}

// Version is one mounted object (the driver's id is the file path) and its
// version.
type Version struct {
	ID, Version string
}

// Options bound the recorder. Zero values take the defaults.
type Options struct {
	// QueueSize bounds the events waiting to be written (default 256);
	// beyond it, rotations are not recorded.
	QueueSize int
	// PerPodInterval is the least time between two events of one pod
	// (default 1m).
	PerPodInterval time.Duration
	// QPS and Burst bound the events written per second across all pods
	// (default 5 and 20).
	QPS   float64
	Burst int
	// MaxPods bounds the pods whose versions and last event are remembered
	// (default 8192). The driver v1.6 sends no versions on remount, so a
	// rotation is seen against the versions this recorder remembers; a
	// pod it forgot gets no event for its next rotation.
	MaxPods int
	// Timeout bounds one API call (default 10s).
	Timeout time.Duration
	// Host is the node's name, the event's source.
	Host   string
	Logger *slog.Logger
	// OnOutcome sees every rotation's outcome (for metrics).
	OnOutcome func(outcome string)
	Now       func() time.Time
}

// Recorder is safe for concurrent use. Run writes the queued events.
type Recorder struct {
	create  CreateFunc
	o       Options
	queue   chan *corev1.Event
	limiter *rate.Limiter

	mu       sync.Mutex
	versions *lru.Cache // pod UID/class → map[id]version
	lastSent *lru.Cache // pod UID → time.Time
}

// New returns a recorder that writes with create.
func New(create CreateFunc, o Options) *Recorder {
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.PerPodInterval <= 0 {
		o.PerPodInterval = time.Minute
	}
	if o.QPS <= 0 {
		o.QPS = 5
	}
	if o.Burst <= 0 {
		o.Burst = 20
	}
	if o.MaxPods <= 0 {
		o.MaxPods = 8192
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Recorder{
		create:   create,
		o:        o,
		queue:    make(chan *corev1.Event, o.QueueSize),
		limiter:  rate.NewLimiter(rate.Limit(o.QPS), o.Burst),
		versions: lru.New(o.MaxPods),
		lastSent: lru.New(o.MaxPods),
	}
}

// Observe compares a successful mount's versions with the previous ones
// (those the driver sent, or else those remembered for the pod) and queues
// an event when any changed. It never blocks and never panics.
func (r *Recorder) Observe(pod Pod, previous map[string]string, mounted []Version) {
	if err := panics.Run("recording a rotation event", func() { r.observe(pod, previous, mounted) }); err != nil {
		r.o.Logger.Error("recording a rotation event failed", "pod", pod.Namespace+"/"+pod.Name, "error", err, "stack", panics.Stack(err))
	}
}

func (r *Recorder) observe(pod Pod, previous map[string]string, mounted []Version) {
	if pod.UID == "" || pod.Name == "" || pod.Namespace == "" {
		return // not a pod's mount (a sync without a pod)
	}
	now := make(map[string]string, len(mounted))
	for _, v := range mounted {
		now[v.ID] = v.Version
	}
	key := pod.UID + "/" + pod.Class
	r.mu.Lock()
	if len(previous) == 0 {
		if old, ok := r.versions.Get(key); ok {
			previous, _ = old.(map[string]string)
		}
	}
	r.versions.Add(key, now)
	changed := Changed(previous, mounted)
	if len(changed) == 0 {
		r.mu.Unlock()
		return
	}
	t := r.o.Now()
	if last, ok := r.lastSent.Get(pod.UID); ok {
		if lt, _ := last.(time.Time); t.Sub(lt) < r.o.PerPodInterval {
			r.mu.Unlock()
			r.outcome(OutcomeRateLimited)
			return
		}
	}
	if !r.limiter.AllowN(t, 1) {
		r.mu.Unlock()
		r.outcome(OutcomeRateLimited)
		return
	}
	r.lastSent.Add(pod.UID, t)
	r.mu.Unlock()
	select {
	case r.queue <- r.event(pod, changed, t):
	default:
		r.outcome(OutcomeDropped)
	}
}

// Changed lists the mounted objects whose version differs from previous, in
// id order. With no previous versions there is nothing to compare: a first
// mount is not a rotation.
func Changed(previous map[string]string, mounted []Version) []Version {
	if len(previous) == 0 {
		return nil
	}
	var out []Version
	for _, v := range mounted {
		if old, ok := previous[v.ID]; !ok || old != v.Version {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Message describes the changed objects: ids and new versions only.
func Message(class string, changed []Version) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SecretProviderClass %q: %d object(s) rotated: ", class, len(changed))
	for i, v := range changed {
		if i == maxNamed {
			fmt.Fprintf(&b, ", and %d more", len(changed)-maxNamed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (version %s)", v.ID, v.Version)
	}
	msg := b.String()
	if len(msg) > maxMessage {
		msg = strings.ToValidUTF8(msg[:maxMessage-3], "") + "..."
	}
	return msg
}

func (r *Recorder) event(pod Pod, changed []Version, t time.Time) *corev1.Event {
	ts := metav1.NewTime(t)
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// Unique per pod and instant, as client-go names events;
			// within the 253 characters of a name.
			Name:      fmt.Sprintf("%s.%x", pod.Name[:min(len(pod.Name), maxEventPrefix)], uint64(t.UnixNano())),
			Namespace: pod.Namespace,
		},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "v1", Kind: "Pod",
			Namespace: pod.Namespace, Name: pod.Name, UID: types.UID(pod.UID),
		},
		Reason:              Reason,
		Message:             Message(pod.Class, changed),
		Type:                corev1.EventTypeNormal,
		Source:              corev1.EventSource{Component: "coffer", Host: r.o.Host},
		FirstTimestamp:      ts,
		LastTimestamp:       ts,
		Count:               1,
		ReportingController: "coffer",
		ReportingInstance:   r.o.Host,
	}
}

// Run writes queued events until ctx ends, each within Timeout.
func (r *Recorder) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.queue:
			r.write(ctx, ev)
		}
	}
}

func (r *Recorder) write(ctx context.Context, ev *corev1.Event) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	var err error
	if perr := panics.Run("writing a rotation event", func() { err = r.create(ctx, ev) }); perr != nil {
		err = perr
		r.o.Logger.Error("writing a rotation event failed", "error", perr, "stack", panics.Stack(perr))
	}
	if err != nil {
		r.outcome(OutcomeFailed)
		r.o.Logger.Warn("writing a SecretsRotated event failed (RBAC: coffer needs create on events)", "pod", ev.Namespace+"/"+ev.InvolvedObject.Name, "error", err)
		return
	}
	r.outcome(OutcomeRecorded)
}

func (r *Recorder) outcome(o string) {
	if r.o.OnOutcome != nil {
		r.o.OnOutcome(o)
	}
}
