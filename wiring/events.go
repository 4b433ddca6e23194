package wiring

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/internal/metrics"
	"github.com/coffer-csi/coffer/provider/changes"
	"github.com/coffer-csi/coffer/provider/fetch"
)

// ChangeEvents turns change events on for a node (coffer serve --events-ledger
// and --event-*): mounts may be answered from the value cache by the
// change ledger's rule (changes.Tracker.Check).
type ChangeEvents struct {
	// Namespace and Name are the ledger's ConfigMap, which
	// coffer-controller events publishes.
	Namespace, Name string
	// MaxAge, ProofMaxAge and ClockSkew are the rule's bounds
	// (changes.Options).
	MaxAge, ProofMaxAge, ClockSkew time.Duration
}

// DefaultChangeEvents are the --event-* flags' defaults.
func DefaultChangeEvents() ChangeEvents {
	return ChangeEvents{Name: "coffer-changes", MaxAge: 15 * time.Minute, ProofMaxAge: 2 * time.Minute, ClockSkew: 2 * time.Second}
}

// ledgerWatch feeds the ledger's ConfigMap to tracker: one list and watch
// of that one object (a field selector on its name), as every node keeps.
type ledgerWatch struct {
	client    kube.Interface
	namespace string
	name      string
	tracker   *changes.Tracker
	log       *slog.Logger
}

// run watches the ledger until ctx ends.
func (w *ledgerWatch) run(ctx context.Context) {
	inf := kube.NewInformer(w.client, oneConfigMap{w.client.ConfigMaps(w.namespace), w.name}, &corev1.ConfigMap{})
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, obj any) { w.observe(obj) },
		DeleteFunc: func(any) {
			w.log.Warn("the change ledger's ConfigMap was deleted: mounts read AWS as without events until it is back", "ledger", w.namespace+"/"+w.name)
			w.tracker.Observe("", nil)
		},
	})
	if err != nil {
		w.log.Error("watching the change ledger", "ledger", w.namespace+"/"+w.name, "err", err)
		return
	}
	inf.RunWithContext(ctx)
}

func (w *ledgerWatch) observe(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	l, err := changes.Decode([]byte(cm.Data[changes.LedgerKey]))
	if err != nil {
		// Decode's errors never quote the data.
		w.log.Warn("the change ledger is unreadable: mounts read AWS as without events", "ledger", w.namespace+"/"+w.name, "err", err)
		w.tracker.Observe(string(cm.UID), nil)
		return
	}
	w.tracker.Observe(string(cm.UID), l)
}

// oneConfigMap lists and watches the ConfigMap name only.
type oneConfigMap struct {
	kube.ConfigMapInterface
	name string
}

func (o oneConfigMap) List(ctx context.Context, opts metav1.ListOptions) (*corev1.ConfigMapList, error) {
	opts.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.name).String()
	return o.ConfigMapInterface.List(ctx, opts)
}

func (o oneConfigMap) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.name).String()
	return o.ConfigMapInterface.Watch(ctx, opts)
}

// eventsState is what metrics read of the tracker at scrape time.
func eventsState(t *changes.Tracker) func() metrics.EventsState {
	return func() metrics.EventsState {
		s := t.Status()
		return metrics.EventsState{Ledger: s.Ledger, Live: s.Live, LedgerAge: s.LedgerAge.Seconds(), ProofAge: s.ProofAge.Seconds(), Entries: s.Entries}
	}
}

// changeEvents builds the node's side of change events: the tracker the
// fetcher asks, its metrics, and the ledger's watch, which Serve runs.
func (c *Coffer) changeEvents(e ChangeEvents, f *fetch.Fetcher, kubernetes func() (*Kubernetes, error), clk clock.PassiveClock, log *slog.Logger) error {
	k, err := kubernetes()
	if err != nil {
		return err
	}
	t := changes.NewTracker(changes.Options{MaxAge: e.MaxAge, ProofMaxAge: e.ProofMaxAge, ClockSkew: e.ClockSkew, Clock: clk})
	f.Changes = t
	f.OnEventVerdict = func(v changes.Verdict) { c.Metrics.EventVerdict(v.String()) }
	c.Metrics.WatchEvents(eventsState(t))
	c.ledger = &ledgerWatch{client: k.Client, namespace: e.Namespace, name: e.Name, tracker: t, log: log}
	log.Info("change events on: mounts may be answered from the cache while the change ledger shows nothing changed", "ledger", e.Namespace+"/"+e.Name,
		"maxAge", e.MaxAge, "proofMaxAge", e.ProofMaxAge, "clockSkew", e.ClockSkew)
	return nil
}
