// Package rotationevent records a Normal event SecretsRotated on a pod when a
// remount changes the version of any of its objects. It names the objects and
// their new versions, never a value. Recording never fails or slows a mount:
// Observe only compares versions and hands the event to the event writer
// coffer's other events go through (kube.Recorder: a bounded queue that
// never blocks, one goroutine writing, a budget per object), within limits
// of its own per pod and per node.
package rotationevent

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/bounded"
	"github.com/coffer-csi/coffer/internal/panics"
)

// Reason is the event's reason.
const Reason = "SecretsRotated"

// maxNamed bounds the objects one event names; maxMessage bounds its
// message (the events.k8s.io API's limit on a note).
const (
	maxNamed   = 10
	maxMessage = 1024
)

// Events writes an event about an object without blocking (kube.Recorder).
type Events interface {
	Eventf(object runtime.Object, eventType, reason, messageFmt string, args ...any)
}

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
	// PerPodInterval is the least time between two events of one pod
	// (default 1m).
	PerPodInterval time.Duration
	// QPS and Burst bound the events of all pods (default 5 and 20).
	QPS   float64
	Burst int
	// MaxPods bounds the pods whose versions and last event are remembered
	// (default 8192). The driver v1.6 sends no versions on remount, so a
	// rotation is seen against the versions this recorder remembers; a
	// pod it forgot gets no event for its next rotation.
	MaxPods int
	Logger  *slog.Logger
	// OnRateLimited counts a rotation left unrecorded by these limits (for
	// metrics; the writer reports what became of the others).
	OnRateLimited func()
	// Clock is the time source of the per-pod interval and the node's
	// rate (nil: the real clock).
	Clock clock.PassiveClock
}

// Recorder is safe for concurrent use.
type Recorder struct {
	events  Events
	o       Options
	limiter *rate.Limiter

	mu sync.Mutex
	// versions holds the versions last mounted by pod UID and class, for at
	// most MaxPods mounts; when full, the mount least recently observed is
	// forgotten.
	versions *bounded.LRU[map[string]string]
	// lastSent holds the pods that had an event within PerPodInterval, each
	// until the interval ends; at most MaxPods, the least recently observed
	// forgotten first.
	lastSent *bounded.LRU[struct{}]
}

// New returns a recorder that writes through events.
func New(events Events, o Options) *Recorder {
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnRateLimited == nil {
		o.OnRateLimited = func() {}
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return &Recorder{
		events:   events,
		o:        o,
		limiter:  rate.NewLimiter(rate.Limit(o.QPS), o.Burst),
		versions: bounded.NewLRU[map[string]string](o.MaxPods, o.Clock),
		lastSent: bounded.NewLRU[struct{}](o.MaxPods, o.Clock),
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
		previous, _ = r.versions.Get(key)
	}
	r.versions.Add(key, now)
	changed := Changed(previous, mounted)
	if len(changed) == 0 {
		r.mu.Unlock()
		return
	}
	t := r.o.Clock.Now()
	if _, recent := r.lastSent.Get(pod.UID); recent || !r.limiter.AllowN(t, 1) {
		r.mu.Unlock()
		r.o.OnRateLimited()
		return
	}
	r.lastSent.AddUntil(pod.UID, struct{}{}, t.Add(r.o.PerPodInterval))
	r.mu.Unlock()
	ref := &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: types.UID(pod.UID)}
	r.events.Eventf(ref, corev1.EventTypeNormal, Reason, "%s", Message(pod.Class, changed))
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
