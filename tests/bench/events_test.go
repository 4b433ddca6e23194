package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/provider/changes"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// The fleet with change events ("coffer-events"): every simulated node's
// fetcher has a changes.Tracker and a value cache that keeps values for the
// tracker's max age, as coffer serve --events-ledger builds them. The
// pipeline (EventBridge, SQS, coffer-controller events) is modelled at the
// ledger: one simulated consumer holds a changes.Book; every write the
// simulation makes to AWS is added to it after a delivery delay, a canary
// round every 30 s is proven after the same delay, and the ledger is handed
// to every node's tracker at most once a second, as the ConfigMap watch
// would. The real SQS queue and consumer are not in the fleet: one
// consumer's calls cost nothing against the quotas measured here, and
// changefeed's own tests cover it.
//
// The ledger holds what the whole account announces, not only what the
// simulated nodes read: the Book also receives, at the represented fleet's
// rate, the announcements of the nodes not simulated (names of their own),
// so its bounds (changes.MaxEntries) bind as they would.

// fleetClock runs compress times faster than the real clock: coffer's read
// times, ages, marks, the tracker and the Book compare its times, so every
// bound of change events (max age, proof age, clock skew, changes.Settle)
// holds in the fleet's terms. Its timers wait the real durations they are
// given: the only waits coffer starts on it (pacing backoff and remount
// jitter) come from the quota controller, which runs on the real clock with
// durations the simulation compresses (see cofferNode), and are compared
// with the mounts' deadlines, which are real.
type fleetClock struct {
	clock.RealClock
	origin   time.Time
	compress float64
}

func newFleetClock(compress float64) fleetClock {
	return fleetClock{origin: time.Now(), compress: compress}
}

func (c fleetClock) Now() time.Time {
	return c.origin.Add(time.Duration(float64(time.Since(c.origin)) * c.compress))
}

func (c fleetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// real is a fleet duration in real time.
func (c fleetClock) real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.compress)
}

// realTime is the real time at which the fleet clock shows t.
func (c fleetClock) realTime(t time.Time) time.Time { return c.origin.Add(c.real(t.Sub(c.origin))) }

// sleepUntil sleeps until the fleet clock shows t.
func (c fleetClock) sleepUntil(t time.Time) { time.Sleep(c.real(t.Sub(c.Now()))) }

// nodeEvents is what a node with change events on gets (cofferNode).
type nodeEvents struct {
	clock   fleetClock
	tracker *changes.Tracker
	maxAge  time.Duration
	verdict func(changes.Verdict)
}

// pipeline is how announcements travel from AWS to the ledger, in the
// fleet's time.
type pipeline struct {
	Name string `json:"name"`
	// Delay and Spread: each announcement and each canary event arrives
	// Delay plus a uniform part of Spread after its write.
	Delay  time.Duration `json:"delay"`
	Spread time.Duration `json:"spread"`
	// Loss is the share of change announcements lost (the canary's
	// arrive).
	Loss float64 `json:"loss"`
	// DownAfter: from this long after the first sweep, nothing arrives,
	// canary included (0: never).
	DownAfter time.Duration `json:"downAfter"`
}

var (
	pipeHealthy = pipeline{Name: "healthy", Delay: 2 * time.Second, Spread: 4 * time.Second}
	pipeDelayed = pipeline{Name: "delayed", Delay: 60 * time.Second, Spread: 4 * time.Second}
	pipeLossy   = pipeline{Name: "lossy", Delay: 2 * time.Second, Spread: 4 * time.Second, Loss: 0.1}
)

// eventsParams are an events run's knobs, in the fleet's time.
type eventsParams struct {
	fleetParams
	events      bool // false: the same run with change events off
	maxAge      time.Duration
	proofMaxAge time.Duration
	clockSkew   time.Duration
	canaryEvery time.Duration
	pipe        pipeline
	// warmup is how long after the first sweep the steady-state window
	// starts (the fleet's coming up, then one max age, so that the window
	// holds the re-reads max age forces); window is its length.
	warmup, window time.Duration
	// changeEvery is how often each simulated node's object changes on
	// average (0: never), accountChangeEvery how often every object of the
	// represented fleet does (the ledger's load: the nodes not simulated
	// make up the difference); the first gives the change-to-serve
	// samples, so it may be shorter;
	// planned are changes at fixed times (the smoke test's).
	changeEvery, accountChangeEvery time.Duration
	planned                         []plannedChange
	// replacePerHour is the share of pods replaced per hour: half by a pod
	// of an identity the node has, half by one of a new identity.
	replacePerHour float64
	// lead is how long the consumer runs before the first sweep (0: a
	// minute).
	lead time.Duration
}

type plannedChange struct {
	after    time.Duration // after the first sweep's start
	identity int
	param    bool
}

// eventsRun is one run's results; durations in the fleet's seconds.
type eventsRun struct {
	Subject          string   `json:"subject"` // "coffer-events", or "coffer" for the same run without events
	Pipeline         pipeline `json:"pipeline"`
	Nodes            int      `json:"nodes"`
	SimNodes         int      `json:"simNodes"`
	QuotaScale       float64  `json:"quotaScale"`
	Compress         float64  `json:"compress"`
	HigherThroughput bool     `json:"higherThroughput"`
	Aligned          bool     `json:"aligned"`
	MaxAgeS          float64  `json:"maxAgeS"`
	// ChangeEveryS is how often each simulated node's object changed on
	// average, AccountChangeEveryS every object of the represented fleet
	// (see eventsParams); AnnouncementsPerS is the account's resulting
	// rate, measured;
	// ReplacePerHour the share of pods replaced per hour.
	ChangeEveryS        float64 `json:"changeEveryS"`
	AccountChangeEveryS float64 `json:"accountChangeEveryS"`
	AnnouncementsPerS   float64 `json:"announcementsPerS"`
	ReplacePerHour      float64 `json:"replacePerHour"`
	// WindowFromS and WindowS place the steady-state window after the
	// first sweep's start.
	WindowFromS float64 `json:"windowFromS"`
	WindowS     float64 `json:"windowS"`
	// CallsPerSecond and Throttled are the window's, in the represented
	// fleet's terms; MonthlyUSD their bill for 30 days (fleetPrices).
	CallsPerSecond map[string]float64 `json:"callsPerSecond"`
	Throttled      map[string]int     `json:"throttled"`
	MonthlyUSD     float64            `json:"monthlyUSD"`
	// Mounts and FailedMounts are the window's (remounts and replacement
	// pods' first mounts).
	Mounts        int    `json:"mounts"`
	FailedMounts  int    `json:"failedMounts"`
	FailureSample string `json:"failureSample,omitempty"`
	// P50MountS and P99MountS are the window's mount latencies.
	P50MountS float64 `json:"p50MountS"`
	P99MountS float64 `json:"p99MountS"`
	// ComeUpP50S and ComeUpS are when half and all of the first sweep's
	// pods had mounted (the kubelet retrying failed first mounts);
	// FirstFailures counts the failed first attempts by reason, and
	// NeverUp the pods still not mounted at the end.
	ComeUpP50S    float64        `json:"comeUpP50S"`
	ComeUpS       float64        `json:"comeUpS"`
	FirstFailures map[string]int `json:"firstFailures"`
	FirstSample   string         `json:"firstFailureSample,omitempty"`
	NeverUp       int            `json:"neverUp"`
	// Changes made to objects the simulated pods mount; ChangeToServe the
	// delays from a change until each pod's remount served it (or a later
	// version); Pending the pod and change pairs not served at the end,
	// PendingOldestS the oldest of them.
	Changes        int     `json:"changes"`
	Served         int     `json:"served"`
	ServeP50S      float64 `json:"serveP50S"`
	ServeP99S      float64 `json:"serveP99S"`
	ServeMaxS      float64 `json:"serveMaxS"`
	Pending        int     `json:"pending"`
	PendingOldestS float64 `json:"pendingOldestS"`
	// StaleBeyondBound counts mounts answered with a version replaced in
	// AWS more than the max age before the mount (must be 0); MaxStaleS
	// is the longest such interval seen, bound or not.
	StaleBeyondBound int     `json:"staleBeyondBound"`
	StaleSample      string  `json:"staleSample,omitempty"`
	MaxStaleS        float64 `json:"maxStaleS"`
	UnknownFiles     int     `json:"unknownFiles"`
	// Verdicts are the rule's answers over the whole run.
	Verdicts map[string]int `json:"verdicts"`
	// Announced, Lost: change announcements of the simulated nodes;
	// Filler those of the nodes not simulated; LedgerEntries the most
	// entries the ledger held.
	Announced     int `json:"announced"`
	Lost          int `json:"lost"`
	Filler        int `json:"filler"`
	LedgerEntries int `json:"ledgerEntries"`
	// Replaced pods, NewIdentities among them.
	Replaced      int `json:"replaced"`
	NewIdentities int `json:"newIdentities"`
	// WallS is the run's real duration.
	WallS float64 `json:"wallS"`
	// reads counts the window's successful reads by role and API
	// ("team-0001-app GetParameters"), for the smoke test.
	reads map[string]int
}

// simConsumer is the pipeline and the consumer at the ledger's level.
type simConsumer struct {
	clk      fleetClock
	pipe     pipeline
	downAt   time.Time // zero: never
	uid      string
	covers   []changes.Coverage
	trackers []*changes.Tracker

	mu    sync.Mutex
	book  *changes.Book
	dirty bool
	stats struct{ announced, lost, filler, maxEntries int }
}

func (c *simConsumer) down(at time.Time) bool { return !c.downAt.IsZero() && !at.Before(c.downAt) }

func (c *simConsumer) delay() time.Duration {
	d := c.pipe.Delay
	if c.pipe.Spread > 0 {
		d += rand.N(c.pipe.Spread)
	}
	return d
}

// announce is AWS announcing a change made at `at` (now): it reaches the
// Book after the pipeline's delay, unless lost. filler marks the
// announcements of nodes not simulated.
func (c *simConsumer) announce(at time.Time, filler bool, subjects ...changes.Subject) {
	c.mu.Lock()
	lost := c.down(at) || (!filler && c.pipe.Loss > 0 && rand.Float64() < c.pipe.Loss)
	switch {
	case filler:
		c.stats.filler++
	case lost:
		c.stats.lost++
	default:
		c.stats.announced++
	}
	c.mu.Unlock()
	if lost {
		return
	}
	time.AfterFunc(c.clk.real(c.delay()), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.book.Add(subjects...)
		c.stats.maxEntries = max(c.stats.maxEntries, c.book.Len())
		c.dirty = true
	})
}

// canary writes the canary at `at` (now); the round is proven when the
// later of its two events (parameter and secret) comes back.
func (c *simConsumer) canary(at time.Time) {
	if c.down(at) {
		return
	}
	time.AfterFunc(c.clk.real(max(c.delay(), c.delay())), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.book.Prove(at, c.clk.Now())
		c.dirty = true
	})
}

// publish hands the ledger to every node when it changed, as the ledger's
// ConfigMap update and each node's watch would.
func (c *simConsumer) publish(force bool) {
	c.mu.Lock()
	if !c.dirty && !force {
		c.mu.Unlock()
		return
	}
	c.dirty = false
	l := c.book.Ledger()
	c.mu.Unlock()
	for _, t := range c.trackers {
		t.Observe(c.uid, &l)
	}
}

// every calls f at every multiple of d (fleet time) from `from` until ctx
// ends.
func every(ctx context.Context, clk fleetClock, from time.Time, d time.Duration, f func(time.Time)) {
	for k := 0; ; k++ {
		at := from.Add(time.Duration(k) * d)
		clk.sleepUntil(at)
		if ctx.Err() != nil {
			return
		}
		f(at)
	}
}

// poisson calls f at the events of a Poisson process of rate(), per fleet
// second, until ctx ends. Events are placed on the fleet's clock and slept
// to, so that sleeping late (milliseconds of real time are seconds of the
// fleet's) does not lower the rate.
func poisson(ctx context.Context, clk fleetClock, rate func() float64, f func(time.Time)) {
	next := clk.Now()
	for ctx.Err() == nil {
		r := rate()
		if r <= 0 {
			return
		}
		next = next.Add(time.Duration(rand.ExpFloat64() / r * float64(time.Second)))
		clk.sleepUntil(next)
		if ctx.Err() == nil {
			f(next)
		}
	}
}

// eventsSim is one events run in progress.
type eventsSim struct {
	t     testing.TB
	p     eventsParams
	wd    *fleetWorld
	clk   fleetClock
	start time.Time // the first sweep's (fleet time)
	end   time.Time
	from  time.Time // the steady window's start
	poll  time.Duration
	cons  *simConsumer

	mu       sync.Mutex
	run      eventsRun
	comeUp   []time.Duration
	latency  []time.Duration
	delays   []time.Duration
	verdicts map[changes.Verdict]int
	// firstSamples are one error of each reason first mounts failed for.
	firstSamples map[string]string
}

type eventsNode struct {
	index  int
	mount  mountFunc
	offset time.Duration
	pods   []*eventsPod
}

// eventsPod is a pod and what its mounts served.
type eventsPod struct {
	*fleetPod
	// served is the index, in the world's versions, of each object's
	// version the pod last served.
	served map[string]int
	// stop ends the pod (replaced) at its next mount.
	stop chan struct{}
	up   bool
}

func (s *eventsSim) account() string { return s.wd.fake.AccountID() }

// subjects are the ledger's subjects of an object's name.
func (s *eventsSim) subjects(name string, param bool) []changes.Subject {
	if param {
		return changes.Parameter(s.account(), region, name)
	}
	return changes.Secrets(s.account(), region, name)
}

// change writes a new value of identity id's parameter or secret j, records
// what AWS holds from when, and announces it.
func (s *eventsSim) change(id, j int, param bool) {
	secrets, params := s.wd.names(id)
	var name string
	at := s.clk.Now()
	var version string
	if param {
		name = params[j%len(params)]
		version = fmt.Sprint(s.wd.fake.PutParameter(region, name, fmt.Sprintf("value-%d-%d-%d", id, j, at.UnixNano()), ""))
	} else {
		name = secrets[j%len(secrets)]
		_, version = s.wd.fake.PutSecretString(region, name, fmt.Sprintf("value-%d-%d-%d", id, j, at.UnixNano()))
	}
	s.wd.mu.Lock()
	s.wd.versions[name] = append(s.wd.versions[name], objectVersion{id: version, at: at})
	s.wd.mu.Unlock()
	s.mu.Lock()
	s.run.Changes++
	s.mu.Unlock()
	s.cons.announce(at, false, s.subjects(name, param)...)
}

// randomChange changes a random object of a random identity.
func (s *eventsSim) randomChange(time.Time) {
	w := s.p.workload
	k := rand.N(w.Secrets + w.Params)
	s.change(rand.N(s.wd.identities()), k, k >= w.Secrets)
}

// fillerRate is the announcements per fleet second of the nodes not
// simulated: the represented fleet's objects changing every
// accountChangeEvery, less what the simulated nodes' changes announce.
func (s *eventsSim) fillerRate() float64 {
	if s.p.accountChangeEvery <= 0 {
		return 0
	}
	w := s.p.workload
	objects := float64(s.wd.identities() * (w.Secrets + w.Params))
	rate := objects * float64(s.p.nodes) / float64(s.p.simNodes) / s.p.accountChangeEvery.Seconds()
	if s.p.changeEvery > 0 {
		rate -= objects / s.p.changeEvery.Seconds()
	}
	return max(rate, 0)
}

func (s *eventsSim) filler(at time.Time) {
	s.cons.announce(at, true, changes.Subject{Kind: changes.KindSecret, Account: s.account(), Region: region, Name: fmt.Sprintf("elsewhere/%d", rand.Uint64())})
}

// mount mounts pod once and records what it served; first marks a pod's
// first mount.
func (s *eventsSim) mount(n *eventsNode, pod *eventsPod) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.clk.real(30*time.Second))
	defer cancel()
	t0 := s.clk.Now()
	err := n.mount(ctx, pod.fleetPod)
	at := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	inWindow := !t0.Before(s.from) && t0.Before(s.end)
	if inWindow && pod.up {
		s.run.Mounts++
		s.latency = append(s.latency, at.Sub(t0))
	}
	if err != nil {
		if inWindow && pod.up {
			s.run.FailedMounts++
			if s.run.FailureSample == "" {
				s.run.FailureSample = err.Error()
			}
		}
		return at, err
	}
	s.served(pod, at)
	return at, nil
}

// served checks the versions pod's mount at `at` answered against what AWS
// held when, and records each change's delay to this pod.
func (s *eventsSim) served(pod *eventsPod, at time.Time) {
	s.wd.mu.Lock()
	defer s.wd.mu.Unlock()
	for path, v := range pod.versions {
		name, ok := s.wd.objectOf[path]
		if !ok {
			s.run.UnknownFiles++
			continue
		}
		hist := s.wd.versions[name]
		i := len(hist) - 1
		for i >= 0 && hist[i].id != v {
			i--
		}
		if i < 0 {
			s.run.UnknownFiles++
			continue
		}
		if i < len(hist)-1 {
			stale := at.Sub(hist[i+1].at)
			s.run.MaxStaleS = max(s.run.MaxStaleS, stale.Seconds())
			if stale > s.p.maxAge {
				s.run.StaleBeyondBound++
				if s.run.StaleSample == "" {
					s.run.StaleSample = fmt.Sprintf("%s served version %s at %v, replaced %v earlier", pod.name, v, at.Sub(s.start).Round(time.Second), stale.Round(time.Second))
				}
			}
		}
		last, seen := pod.served[name]
		if seen {
			for j := last + 1; j <= i; j++ {
				s.delays = append(s.delays, at.Sub(hist[j].at))
			}
		}
		if !seen || i > last {
			pod.served[name] = i
		}
	}
}

// runPod mounts pod at firstAt, retrying failed first mounts as the kubelet
// does (from 0.5 s, doubling to 2m2s), then remounts it at each of its
// node's sweeps until the run ends or the pod is replaced.
func (s *eventsSim) runPod(n *eventsNode, pod *eventsPod, firstAt time.Time, initial bool) {
	s.clk.sleepUntil(firstAt)
	backoff := 500 * time.Millisecond
	for {
		if !s.clk.Now().Before(s.end) {
			if initial {
				s.mu.Lock()
				s.run.NeverUp++
				s.mu.Unlock()
			}
			return
		}
		at, err := s.mount(n, pod)
		if err == nil {
			s.mu.Lock()
			pod.up = true
			if initial {
				s.comeUp = append(s.comeUp, at.Sub(s.start))
			}
			s.mu.Unlock()
			break
		}
		s.mu.Lock()
		if initial {
			reason := mountFailureReason(err)
			s.run.FirstFailures[reason]++
			if _, ok := s.firstSamples[reason]; !ok {
				s.firstSamples[reason] = err.Error()
			}
		}
		s.mu.Unlock()
		select {
		case <-pod.stop:
			return
		case <-time.After(s.clk.real(backoff)):
		}
		backoff = min(2*backoff, 122*time.Second)
	}
	dispatch := 2 * time.Second
	k := int(math.Ceil(float64(s.clk.Now().Sub(s.start.Add(n.offset))) / float64(s.poll)))
	for ; ; k++ {
		at := s.start.Add(n.offset + time.Duration(k)*s.poll + rand.N(dispatch))
		if !at.Before(s.end) {
			return
		}
		select {
		case <-pod.stop:
			return
		case <-time.After(s.clk.real(at.Sub(s.clk.Now()))):
		}
		_, _ = s.mount(n, pod)
	}
}

// mountFailureReason names why a mount failed: the fetch errors' kinds,
// "deadline" when the mount's context ended first, else "other".
func mountFailureReason(err error) string {
	var errs fetch.Errors
	if errors.As(err, &errs) {
		kinds := map[string]bool{}
		for _, e := range errs {
			kinds[string(e.Kind)] = true
		}
		var ks []string
		for k := range kinds {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return strings.Join(ks, "+")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline"
	}
	return "other"
}

// deadlineReason: the mount ran out of its deadline (its reads throttled
// until the deadline left no room, or timed out).
func deadlineReason(reason string) bool {
	for _, k := range strings.Split(reason, "+") {
		switch fetch.Kind(k) {
		case fetch.KindThrottled, fetch.KindTimeout, fetch.KindCanceled:
		default:
			if k != "deadline" {
				return false
			}
		}
	}
	return true
}

// replace replaces a random running pod by a new one on its node: of an
// identity the node has, or (half of the time) of a new identity.
func (s *eventsSim) replace(nodes []*eventsNode, at time.Time, wg *sync.WaitGroup) {
	n := nodes[rand.N(len(nodes))]
	s.mu.Lock()
	i := rand.N(len(n.pods))
	old := n.pods[i]
	s.mu.Unlock()
	close(old.stop)
	id := old.identity
	newIdentity := rand.N(2) == 0
	if newIdentity {
		var err error
		if id, err = s.wd.addIdentity(); err != nil {
			s.t.Error(err)
			return
		}
		// Creating the role is an IAM call the consumer announces, and so
		// are the new objects' creations.
		s.cons.announce(at, false, changes.Role(s.account(), s.wd.roleARN(id))...)
		secrets, params := s.wd.names(id)
		for _, name := range secrets {
			s.cons.announce(at, false, s.subjects(name, false)...)
		}
		for _, name := range params {
			s.cons.announce(at, false, s.subjects(name, true)...)
		}
	}
	pod := &eventsPod{fleetPod: s.wd.pod(fmt.Sprintf("new-n%04d-%d", n.index, rand.Uint32()), id), served: map[string]int{}, stop: make(chan struct{})}
	s.mu.Lock()
	n.pods[i] = pod
	s.run.Replaced++
	if newIdentity {
		s.run.NewIdentities++
	}
	s.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.runPod(n, pod, at, false)
	}()
}

// simulateEvents runs one fleet with change events (or, with p.events
// unset, the same fleet, changes and replacements without them).
func simulateEvents(t testing.TB, p eventsParams) eventsRun {
	w := p.workload
	wd := newFleetWorld(t, p.simNodes*w.IdentitiesPerNode, w, p.latency)
	wd.fake.SetQuotas(fakeaws.PublishedQuotas(p.higherThroughput, p.scale())...)
	t.Setenv("AWS_ENDPOINT_URL", wd.url)
	clk := newFleetClock(p.compress)
	// The consumer runs for a minute before the first sweep, as it would
	// run before pods mount.
	lead := p.lead
	if lead == 0 {
		lead = time.Minute
	}
	start := clk.Now().Add(lead)
	s := &eventsSim{t: t, p: p, wd: wd, clk: clk, start: start, from: start.Add(p.warmup), end: start.Add(p.warmup + p.window),
		poll: w.Poll, verdicts: map[changes.Verdict]int{}, firstSamples: map[string]string{}}
	subject := "coffer"
	if p.events {
		subject = "coffer-events"
	}
	s.run = eventsRun{Subject: subject, Pipeline: p.pipe, Nodes: p.nodes, SimNodes: p.simNodes, QuotaScale: p.scale(), Compress: p.compress,
		HigherThroughput: p.higherThroughput, Aligned: !p.spread, MaxAgeS: p.maxAge.Seconds(), ChangeEveryS: p.changeEvery.Seconds(), AccountChangeEveryS: p.accountChangeEvery.Seconds(), ReplacePerHour: p.replacePerHour, WindowFromS: p.warmup.Seconds(), WindowS: p.window.Seconds(),
		FirstFailures: map[string]int{}, Verdicts: map[string]int{}}
	if !p.events {
		s.run.Pipeline = pipeline{}
	}
	cons := &simConsumer{clk: clk, pipe: p.pipe, uid: "ledger-1", covers: []changes.Coverage{{Account: wd.fake.AccountID(), Region: region}}}
	// The consumer's --ledger-retention: 30 minutes by default, at least
	// the nodes' max age.
	cons.book = changes.NewBook(nil, cons.covers, max(30*time.Minute, p.maxAge), clk)
	if p.pipe.DownAfter > 0 {
		cons.downAt = start.Add(p.pipe.DownAfter)
	}
	s.cons = cons

	// Nodes scale the quota's durations by compress (fleetParams), as the
	// runs without events do.
	fp := p.fleetParams
	nodes := make([]*eventsNode, p.simNodes)
	for i := range nodes {
		var ev *nodeEvents
		if p.events {
			tr := changes.NewTracker(changes.Options{MaxAge: p.maxAge, ProofMaxAge: p.proofMaxAge, ClockSkew: p.clockSkew, Clock: clk})
			cons.trackers = append(cons.trackers, tr)
			ev = &nodeEvents{clock: clk, tracker: tr, maxAge: p.maxAge, verdict: func(v changes.Verdict) {
				s.mu.Lock()
				s.verdicts[v]++
				s.mu.Unlock()
			}}
		}
		nodes[i] = &eventsNode{index: i, mount: cofferNode(t, wd, fp, ev)}
		if p.spread {
			nodes[i].offset = rand.N(w.Poll)
		}
		for _, fp := range wd.pods(i, w) {
			nodes[i].pods = append(nodes[i].pods, &eventsPod{fleetPod: fp, served: map[string]int{}, stop: make(chan struct{})})
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	goBg := func(f func()) {
		bg.Add(1)
		go func() {
			defer bg.Done()
			f()
		}()
	}
	if p.events {
		cons.publish(true)
		goBg(func() { every(ctx, clk, clk.Now(), time.Second, func(time.Time) { cons.publish(false) }) })
		goBg(func() { every(ctx, clk, clk.Now(), p.canaryEvery, cons.canary) })
	}
	goBg(func() {
		clk.sleepUntil(start)
		if p.changeEvery > 0 {
			goBg(func() {
				poisson(ctx, clk, func() float64 {
					return float64(wd.identities()*(w.Secrets+w.Params)) / p.changeEvery.Seconds()
				}, s.randomChange)
			})
		}
		if p.accountChangeEvery > 0 {
			goBg(func() { poisson(ctx, clk, s.fillerRate, s.filler) })
		}
		for _, c := range p.planned {
			goBg(func() {
				clk.sleepUntil(start.Add(c.after))
				if ctx.Err() == nil {
					s.change(c.identity, 0, c.param)
				}
			})
		}
	})
	wall := time.Now()
	var pods sync.WaitGroup
	if p.replacePerHour > 0 {
		goBg(func() {
			clk.sleepUntil(start.Add(w.Poll))
			poisson(ctx, clk, func() float64 { return float64(p.simNodes*w.PodsPerNode) * p.replacePerHour / 3600 }, func(at time.Time) {
				if at.Before(s.end) {
					s.replace(nodes, at, &pods)
				}
			})
		})
	}
	for _, n := range nodes {
		for _, pod := range n.pods {
			pods.Add(1)
			go func() {
				defer pods.Done()
				s.runPod(n, pod, start.Add(n.offset+rand.N(2*time.Second)), true)
			}()
		}
	}
	clk.sleepUntil(s.end)
	pods.Wait()
	cancel()
	bg.Wait()
	s.run.WallS = time.Since(wall).Seconds()

	s.finish(nodes)
	return s.run
}

// finish computes the run's results.
func (s *eventsSim) finish(nodes []*eventsNode) {
	r := &s.run
	r.reads = map[string]int{}
	calls, throttled := map[string]int{}, map[string]int{}
	from, to := s.clk.realTime(s.from), s.clk.realTime(s.end)
	for _, c := range s.wd.fake.Calls() {
		if c.Time.Before(from) || !c.Time.Before(to) {
			continue
		}
		calls[c.Operation]++
		if c.Outcome == "ThrottlingException" || c.Outcome == "Throttling" {
			throttled[c.Operation]++
		}
		if _, rest, ok := strings.Cut(c.Identity, ":assumed-role/"); ok && c.Outcome == fakeaws.OutcomeOK && c.Service != fakeaws.ServiceSTS {
			role, _, _ := strings.Cut(rest, "/")
			r.reads[role+" "+c.Operation]++
		}
	}
	r.CallsPerSecond = perSecond(calls, to.Sub(from), 1/s.p.scale())
	r.Throttled = throttled
	r.MonthlyUSD = monthlyBill(perSecond(answered(calls, throttled), to.Sub(from), 1/s.p.scale()), s.p.higherThroughput)
	sort.Slice(s.comeUp, func(i, j int) bool { return s.comeUp[i] < s.comeUp[j] })
	if len(s.comeUp) > 0 {
		r.ComeUpP50S = percentile(s.comeUp, 0.5).Seconds()
		r.ComeUpS = s.comeUp[len(s.comeUp)-1].Seconds()
	}
	r.P50MountS, r.P99MountS = percentile(s.latency, 0.5).Seconds(), percentile(s.latency, 0.99).Seconds()
	r.Served = len(s.delays)
	r.ServeP50S = percentile(s.delays, 0.5).Seconds()
	r.ServeP99S = percentile(s.delays, 0.99).Seconds()
	for _, d := range s.delays {
		r.ServeMaxS = max(r.ServeMaxS, d.Seconds())
	}
	// Changes some running pod has not served yet.
	s.wd.mu.Lock()
	for _, n := range nodes {
		for _, pod := range n.pods {
			for name, i := range pod.served {
				hist := s.wd.versions[name]
				for j := i + 1; j < len(hist); j++ {
					r.Pending++
					r.PendingOldestS = max(r.PendingOldestS, s.end.Sub(hist[j].at).Seconds())
				}
			}
		}
	}
	s.wd.mu.Unlock()
	for reason, sample := range s.firstSamples {
		if !deadlineReason(reason) && r.FirstSample == "" {
			r.FirstSample = sample
		}
	}
	for v, n := range s.verdicts {
		r.Verdicts[v.String()] = n
	}
	s.cons.mu.Lock()
	r.Announced, r.Lost, r.Filler, r.LedgerEntries = s.cons.stats.announced, s.cons.stats.lost, s.cons.stats.filler, s.cons.stats.maxEntries
	r.AnnouncementsPerS = float64(r.Announced+r.Lost+r.Filler) / s.end.Sub(s.start).Seconds()
	s.cons.mu.Unlock()
}

// fleetPricesDate is when the prices monthlyBill uses were AWS's published
// ones: Secrets Manager $0.05 per 10,000 API calls; Parameter Store API
// interactions free with standard throughput, $0.05 per 10,000 with higher
// throughput; STS free.
const fleetPricesDate = "2026-12-06"

// answered are the calls AWS answered: calls less the throttled ones.
func answered(calls, throttled map[string]int) map[string]int {
	out := map[string]int{}
	for op, n := range calls {
		out[op] = n - throttled[op]
	}
	return out
}

// monthlyBill is 30 days of the calls per second given (those AWS
// answered: throttled calls are assumed not billed) at the prices of
// fleetPricesDate, a BatchGetSecretValue counted as one call.
func monthlyBill(perSecond map[string]float64, higherThroughput bool) float64 {
	const month = 30 * 24 * 3600
	sm := 0.05 / 10000
	var usd float64
	for api, rate := range perSecond {
		switch api {
		case "GetSecretValue", "BatchGetSecretValue", "DescribeSecret":
			usd += rate * month * sm
		case "GetParameters", "GetParameter", "GetParametersByPath":
			if higherThroughput {
				usd += rate * month * sm
			}
		}
	}
	return usd
}

// eventsLatency is the fake's latency per call in the events runs: at
// their compression, 5 ms is 300 ms of the fleet's time.
const eventsLatency = 5 * time.Millisecond

// eventsMaxSim is the most nodes an events run simulates: half the runs
// without events', as these runs are compressed six times more and the
// first sweep's mounts all start at once.
const eventsMaxSim = 25

// eventsGrid is the runs TestFleet makes with change events: the issue's
// workload at each count with the default max age, sweeps aligned and at
// random phases, the pipeline healthy; at 5,000 nodes and more again with
// a max age of 30 minutes, which fits standard throughput at random
// phases, and once more with the account announcing seven times as many
// changes, which the ledger cannot hold; and at the first count the same
// run without events, then the pipeline delayed, lossy and down (sweeps
// aligned, the worst case, and one max age long: what differs between
// pipelines shows within it).
//
// The simulated nodes' objects change once a day (the change-to-serve
// samples); the account's objects once a week (the ledger's load): every
// object of 5,000 nodes' workload once a week is 0.6 announcements per
// second, which the ledger's 2,048 entries hold for 59 minutes.
func eventsGrid(counts []int) []eventsParams {
	const compress = 60
	base := func(n int, maxAge time.Duration, spread bool, pipe pipeline) eventsParams {
		// Coming up is bound by GetParameters at 40/s (one per identity),
		// and takes about twice that with the kubelet's backoff; the
		// window starts one max age later and lasts two.
		comeUp := time.Duration(float64(n*issueWorkload.IdentitiesPerNode)/40*2) * time.Second
		warm := (comeUp + maxAge).Truncate(issueWorkload.Poll) + issueWorkload.Poll
		return eventsParams{
			fleetParams: fleetParams{nodes: n, simNodes: min(fleetSim(n), eventsMaxSim), compress: compress, spread: spread, latency: eventsLatency, workload: issueWorkload},
			events:      true, maxAge: maxAge, proofMaxAge: 2 * time.Minute, clockSkew: 2 * time.Second, canaryEvery: 30 * time.Second, pipe: pipe,
			warmup: warm, window: 2 * maxAge, changeEvery: 24 * time.Hour, accountChangeEvery: 7 * 24 * time.Hour, replacePerHour: 0.05,
		}
	}
	var grid []eventsParams
	for _, spread := range []bool{false, true} {
		for _, n := range counts {
			grid = append(grid, base(n, 15*time.Minute, spread, pipeHealthy))
			if n >= 5000 {
				grid = append(grid, base(n, 30*time.Minute, spread, pipeHealthy))
			}
		}
	}
	for _, n := range counts {
		if n >= 5000 {
			busy := base(n, 30*time.Minute, true, pipeHealthy)
			busy.accountChangeEvery = 24 * time.Hour
			grid = append(grid, busy)
		}
	}
	n := counts[0]
	off := base(n, 15*time.Minute, false, pipeHealthy)
	off.events = false
	down := base(n, 15*time.Minute, false, pipeline{Name: "down", Delay: 2 * time.Second, Spread: 4 * time.Second})
	down.pipe.DownAfter = down.warmup
	grid = append(grid, off, base(n, 15*time.Minute, false, pipeDelayed), base(n, 15*time.Minute, false, pipeLossy), down)
	for i := len(grid) - 3; i < len(grid); i++ {
		grid[i].window = grid[i].maxAge
	}
	return grid
}

// steadyGrid is the runs COFFER_FLEET_EVENT_RUNS names (MAXAGE/PHASE,
// comma-separated, e.g. "30m/random,60m/aligned"), healthy, at each count,
// with the steady window placed after the fleet is certainly up: the grid's
// estimate of coming up (twice GetParameters' bound) fell short at 5,000
// nodes, where the kubelet's backoff after throttled first mounts made it
// 82 to 99 minutes, so the window held pods still coming up. Here it
// starts five times that bound, plus one max age, after the first sweep.
func steadyGrid(counts []int, spec string) ([]eventsParams, error) {
	var grid []eventsParams
	for _, run := range strings.Split(spec, ",") {
		age, phase, ok := strings.Cut(strings.TrimSpace(run), "/")
		maxAge, err := time.ParseDuration(age)
		if !ok || err != nil || maxAge < time.Minute || (phase != "random" && phase != "aligned") {
			return nil, fmt.Errorf("COFFER_FLEET_EVENT_RUNS=%q: use MAXAGE/PHASE, e.g. 30m/random,60m/aligned", spec)
		}
		for _, n := range counts {
			p := eventsGrid([]int{n})[0]
			comeUp := time.Duration(float64(n*issueWorkload.IdentitiesPerNode)/40*5) * time.Second
			p.maxAge, p.spread = maxAge, phase == "random"
			p.warmup = (comeUp + maxAge).Truncate(issueWorkload.Poll) + issueWorkload.Poll
			p.window = 2 * maxAge
			grid = append(grid, p)
		}
	}
	return grid, nil
}

// renderEvents is the report's section on the runs with change events.
func renderEvents(r *fleetReport) string {
	var b strings.Builder
	b.WriteString("\n## With change events\n\n")
	if len(r.EventRuns) == 0 {
		return b.String()
	}
	e := r.EventRuns[0]
	fmt.Fprintf(&b, "coffer with `--events-ledger` (subject \"coffer-events\"): each simulated node's fetcher has a change tracker (`--event-proof-max-age` 2m, `--event-clock-skew` 2s, `--event-max-age` as listed) and a value cache that keeps values for the max age. "+
		"The pipeline (EventBridge, SQS, `coffer-controller events`) is modelled at the ledger, in process: one simulated consumer keeps the ledger (`changes.Book`, retention 30 minutes or the max age if longer); every write the simulation makes to AWS (changes, new teams' roles and objects) reaches it after the pipeline's delay, a canary round every 30 s is proven when both its events come back after the same delay, and the ledger is handed to every node's tracker at most once a second, as the ConfigMap watch would. "+
		"The real SQS queue and consumer are not in the fleet (one consumer's calls are negligible against these quotas: about one `ReceiveMessage` and one `DeleteMessageBatch` per 20 s to a few per second, two canary writes per 30 s; the consumer is tested on its own). "+
		"The ledger also receives the announcements of the nodes not simulated, at the represented fleet's rate, so that its bound of %d entries binds as in the real account. "+
		"Workload as above; each simulated node's object changes once a %s on average (a Poisson process: the change-to-serve samples), and the account announces changes at the rate of every object of the represented fleet changing once a %s (column \"announced\", the ledger's load; one run once per day); pods are replaced at %.0f%% per hour, half by pods of an identity the node has and half by pods of a new identity (a new role, ServiceAccount, secrets and parameters). "+
		"The first sweep starts every pod at once (aligned, or at each node's random phase); a failed first mount is retried as the kubelet does (0.5 s, doubling to 2m2s). "+
		"Time is compressed %gx for these runs (the quota's rates and durations and the mount deadline as above; the tracker, the cache and the ledger on a clock %gx fast, so every bound holds in the fleet's terms), N nodes are simulated by at most %d, %.0f ms per AWS call. "+
		"Steady state is the window after the fleet came up and one max age passed (column \"window\", from the first sweep), two max ages long. Durations are in the fleet's time.\n\n",
		changes.MaxEntries, period(e.ChangeEveryS), period(e.AccountChangeEveryS), 100*e.ReplacePerHour, e.Compress, e.Compress, eventsMaxSim, r.EventsLatencyMs)
	b.WriteString("| pipeline | max age | sweeps | nodes (simulated) | window | GetParameters /s | BatchGetSecretValue /s | GetSecretValue /s | AssumeRoleWithWebIdentity /s | throttled | failed mounts | API bill per month | change to served p50 / p99 / max | pending at end (oldest) | stale beyond max age (longest staleness) | answered by the rule | announced /s (ledger entries, most) | first sweep: half / all up | failed first attempts |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, run := range r.EventRuns {
		phase := "aligned"
		if !run.Aligned {
			phase = "random phase"
		}
		pipe, maxAge, rule, ledger := run.Pipeline.Name, minutes(run.MaxAgeS), "", fmt.Sprintf("%.2f (%d)", run.AnnouncementsPerS, run.LedgerEntries)
		checks, unchanged := 0, run.Verdicts[changes.Unchanged.String()]
		for _, n := range run.Verdicts {
			checks += n
		}
		rule = fmt.Sprintf("%d of %d", unchanged, checks)
		if run.Subject != "coffer-events" {
			pipe, maxAge, rule, ledger = "events off", "-", "-", "-"
		}
		up := fmt.Sprintf("%s / %s", minutes(run.ComeUpP50S), minutes(run.ComeUpS))
		if run.NeverUp > 0 {
			up = fmt.Sprintf("%s / %d pods not up by the end", minutes(run.ComeUpP50S), run.NeverUp)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d (%d) | %s + %s | %.1f | %.1f | %.1f | %.1f | %s | %d of %d | $%.0f | %.0f / %.0f / %.0f s | %d (%.0f s) | %d (%.0f s) | %s | %s | %s | %s |\n",
			pipe, maxAge, phase, run.Nodes, run.SimNodes, minutes(run.WindowFromS), minutes(run.WindowS),
			run.CallsPerSecond["GetParameters"], run.CallsPerSecond["BatchGetSecretValue"], run.CallsPerSecond["GetSecretValue"], run.CallsPerSecond["AssumeRoleWithWebIdentity"],
			throttleList(run.Throttled), run.FailedMounts, run.Mounts, run.MonthlyUSD,
			run.ServeP50S, run.ServeP99S, run.ServeMaxS, run.Pending, run.PendingOldestS, run.StaleBeyondBound, run.MaxStaleS,
			rule, ledger, up, throttleList(run.FirstFailures))
	}
	b.WriteString("\nColumns: \"throttled\" and \"failed mounts\" are the window's (remounts and replacement pods' first mounts); \"change to served\" is, for every change to an object and every running pod that mounts it, the time until that pod's remount served the new version (or a later one); \"stale beyond max age\" counts mounts answered with a version AWS had replaced more than the max age before (it must be 0), and the longest replaced-to-served interval seen; \"answered by the rule\" counts the tracker's verdicts that let a cached value answer a remount, of all it gave; \"failed first attempts\" are the first sweep's failed mount attempts by reason (throttled, timeout and deadline: the mount's own deadline ran out).\n")
	return b.String()
}

// period names a period of s seconds ("day", "week").
func period(s float64) string {
	switch d := time.Duration(s) * time.Second; d {
	case 24 * time.Hour:
		return "day"
	case 7 * 24 * time.Hour:
		return "week"
	default:
		return d.String()
	}
}

// minutes formats fleet seconds as minutes.
func minutes(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%.1fm", d.Minutes())
}

// fleetEventsSmoke runs two nodes with change events (TestFleetSmoke):
// with the pipeline healthy, unchanged remounts read nothing and a change
// is served at the first remount after its announcement; with the pipeline
// down, remounts read AWS again once the proof is too old, and a change
// nobody announced is served by those reads. No answer is ever older than
// the bound.
func fleetEventsSmoke(t *testing.T) {
	w := fleetWorkload{PodsPerNode: 4, IdentitiesPerNode: 2, Secrets: 3, Params: 1, Poll: 10 * time.Second}
	base := eventsParams{
		fleetParams: fleetParams{nodes: 2, simNodes: 2, compress: 40, latency: time.Millisecond, workload: w},
		events:      true, maxAge: 15 * time.Minute, proofMaxAge: 20 * time.Second, clockSkew: time.Second, canaryEvery: 2 * time.Second,
		pipe: pipeline{Name: "healthy", Delay: time.Second, Spread: time.Second}, lead: 10 * time.Second,
		warmup: 20 * time.Second, window: 40 * time.Second,
	}
	// The longest a remount may take to serve a change after it was
	// made: the announcement's delay, the ledger's publication, a poll
	// and the driver's dispatch, and the settling time of a read.
	const role0 = "team-0000-app"
	bound := base.pipe.Delay + base.pipe.Spread + time.Second + w.Poll + 2*time.Second

	t.Run("healthy", func(t *testing.T) {
		p := base
		p.planned = []plannedChange{{after: 25 * time.Second, identity: 0, param: true}}
		run := simulateEvents(t, p)
		checkEventsRun(t, run)
		for key, n := range run.reads {
			if key != role0+" GetParameters" {
				t.Errorf("%d reads %s: remounts of unchanged objects read AWS (reads %v, verdicts %v)", n, key, run.reads, run.Verdicts)
			}
		}
		// The read after the announcement, and one more when it came
		// within changes.Settle of the read.
		if n := run.reads[role0+" GetParameters"]; n < 1 || n > 2 {
			t.Errorf("the changed parameter was read %d times, want 1 or 2 (reads %v)", n, run.reads)
		}
		if run.Changes != 1 || run.Served != 2 || run.Pending != 0 || time.Duration(run.ServeMaxS*float64(time.Second)) > bound {
			t.Errorf("the change reached %d pods in at most %.1f s (%d pending), want both of its identity's within %v", run.Served, run.ServeMaxS, run.Pending, bound)
		}
		if run.Verdicts[changes.Unchanged.String()] == 0 {
			t.Errorf("no remount answered by the rule: %v", run.Verdicts)
		}
	})

	t.Run("down", func(t *testing.T) {
		p := base
		p.pipe.Name, p.pipe.DownAfter = "down", 20*time.Second
		p.planned = []plannedChange{{after: 45 * time.Second, identity: 1, param: true}}
		run := simulateEvents(t, p)
		checkEventsRun(t, run)
		// The last canary was written by 20 s, so from 40 s on the proof is
		// too old: the window's sweeps at 40 and 50 s read every identity's
		// objects.
		for i := range 4 {
			role, _ := fleetIdentity(i)
			if n := run.reads[role+"-app GetParameters"]; n < 2 {
				t.Errorf("%s read its parameter %d times with the pipeline down, want at least 2 (reads %v, verdicts %v)", role, n, run.reads, run.Verdicts)
			}
		}
		if run.Verdicts[changes.NotProven.String()] == 0 {
			t.Errorf("no verdict said the pipeline was not proven: %v", run.Verdicts)
		}
		if run.Announced != 0 || run.Lost != 1 || run.Served != 2 || run.Pending != 0 || time.Duration(run.ServeMaxS*float64(time.Second)) > w.Poll+2*time.Second+time.Second {
			t.Errorf("the unannounced change (%d lost, %d announced) reached %d pods in at most %.1f s (%d pending), want both within a poll", run.Lost, run.Announced, run.Served, run.ServeMaxS, run.Pending)
		}
	})
}

// checkEventsRun checks what holds in every events run: every pod came up
// and every mount succeeded, each file was an object's known version, and
// no answer was older than the bound.
func checkEventsRun(t *testing.T, run eventsRun) {
	t.Helper()
	if run.NeverUp != 0 || run.FailedMounts != 0 || run.Mounts == 0 || len(run.FirstFailures) != 0 {
		t.Errorf("%d pods never up, %d of %d mounts failed (%s), first attempts failed: %v", run.NeverUp, run.FailedMounts, run.Mounts, run.FailureSample, run.FirstFailures)
	}
	if run.UnknownFiles != 0 {
		t.Errorf("%d mounted files were not a known version of an object", run.UnknownFiles)
	}
	if run.StaleBeyondBound != 0 {
		t.Errorf("%d mounts answered with a version replaced more than %v earlier: %s", run.StaleBeyondBound, time.Duration(run.MaxAgeS)*time.Second, run.StaleSample)
	}
}
