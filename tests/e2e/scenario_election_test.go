package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// 15. Leader election: two coffer-controller sync replicas (client-go's
// Lease election, with short timings) hold one leader at a time. The
// class they sync refreshes every second, so a leader logs a sync every
// second and any second leader would show in the logs. The leader's
// connection to the apiserver goes through a TCP proxy the test controls:
// when the proxy stops forwarding bytes (a hung apiserver, for that
// replica), the leader stops within its renew deadline and exits, and the
// standby takes over once the Lease has expired. Then the new leader is
// paused (SIGSTOP): a third replica takes over only once the Lease has
// expired, and the paused one, resumed (SIGCONT), exits without syncing
// and without clearing its successor's Lease.
func TestLeaderElectionTwoReplicas(t *testing.T) {
	const (
		ns, region, lease, provider  = "e2e-election", "us-east-1", "e2e-election", "e2e-election"
		leaseDuration, renewDeadline = 4 * time.Second, 3 * time.Second
	)
	ctx := setup(t, ns)
	createSecret(ctx, t, region, "el/value", "canary-el-1")
	createServiceAccount(ctx, t, ns, "reader", roleARN("election-reader"))
	// A provider name of its own: the suite's coffer-controller sync
	// leaves this class alone.
	createSPC(ctx, t, ns, spcSpec{name: "el", provider: provider, params: map[string]string{"region": region,
		"objects": "- {objectName: el/value, objectType: secretsmanager}",
		"syncSecrets": `
- secretName: el-value
  refreshInterval: 1s
  serviceAccountName: reader
  data:
    - {key: value, objectName: el/value}
`}})

	proxy := startFreezableProxy(t, env.apiURL)
	proxied := env.path("election-proxied.kubeconfig")
	cfg, err := clientcmd.LoadFromFile(env.cofferSyncKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + proxy.addr
	}
	if err := clientcmd.WriteToFile(*cfg, proxied); err != nil {
		t.Fatal(err)
	}
	start := func(name, kubeconfig string) *replica {
		t.Helper()
		p, err := env.spawn(name, env.bins.controller, append(env.awsEnv(), "POD_NAMESPACE="+cofferNamespace),
			"sync", "--kubeconfig="+kubeconfig, "--region=", "--log-level=debug",
			"--provider-name="+provider, "--namespaces="+ns, "--leader-election-id="+lease,
			"--leader-election-lease-duration="+leaseDuration.String(),
			"--leader-election-renew-deadline="+renewDeadline.String(),
			"--leader-election-retry-period=1s")
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{p: p}
		t.Cleanup(func() { _ = syscall.Kill(p.Pid(), syscall.SIGCONT); p.Stop(10 * time.Second) })
		eventually(ctx, t, 30*time.Second, name+" competing for the Lease", func(context.Context) error {
			if r.identity = r.logged("waiting for the Lease", "identity"); r.identity == "" {
				return errors.New("no identity logged yet")
			}
			return nil
		})
		return r
	}
	holder := func() (string, time.Time) {
		l, err := env.kube.CoordinationV1().Leases(cofferNamespace).Get(ctx, lease, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading the Lease: %v", err)
		}
		var renewed time.Time
		if l.Spec.RenewTime != nil {
			renewed = l.Spec.RenewTime.Time
		}
		return ptr.Deref(l.Spec.HolderIdentity, ""), renewed
	}
	waitLeads := func(r *replica) {
		t.Helper()
		eventually(ctx, t, 30*time.Second, r.p.Name+" leading and syncing", func(context.Context) error {
			if h, _ := holder(); h != r.identity {
				return fmt.Errorf("the Lease's holder is %q", h)
			}
			if len(r.spans()) == 0 || len(r.reconciles()) == 0 {
				return errors.New("no reconcile logged as leader yet")
			}
			return nil
		})
	}
	waitExit := func(r *replica, within time.Duration) {
		t.Helper()
		eventually(ctx, t, within, r.p.Name+" exiting", func(context.Context) error {
			if exited, _ := r.p.Exited(); !exited {
				return errors.New("still running")
			}
			return nil
		})
		if !strings.Contains(r.p.LogSince(0), "lost the leader Lease; exiting so that a restart competes again") {
			t.Errorf("%s exited without saying it lost the Lease:\n%s", r.p.Name, tail(r.p))
		}
	}

	// Two replicas: the first (through the proxy) leads, the second waits.
	a := start("election-a", proxied)
	waitLeads(a)
	b := start("election-b", env.cofferSyncKubeconfig)
	time.Sleep(3 * leaseDuration)
	if h, _ := holder(); h != a.identity || len(b.spans()) != 0 || len(b.reconciles()) != 0 {
		t.Fatalf("with two replicas: holder %q, b led %d times and reconciled %d times; want a only", h, len(b.spans()), len(b.reconciles()))
	}

	t.Run("a hung apiserver: the leader gives up within its renew deadline, the standby takes over after the Lease", func(t *testing.T) {
		proxy.freeze()
		_, renewed := holder() // a's renewals no longer arrive
		waitLeads(b)
		waitExit(a, 2*renewDeadline+5*time.Second)
		aSpans, bSpans := a.spans(), b.spans()
		aStop := aSpans[len(aSpans)-1].end
		if aStop.IsZero() || aStop.Sub(renewed) > renewDeadline+time.Second {
			t.Errorf("a stopped leading at %v, %v after its last renewal; want within the renew deadline (%v)", aStop, aStop.Sub(renewed), renewDeadline)
		}
		if got := bSpans[0].start.Sub(renewed); got < leaseDuration-100*time.Millisecond {
			t.Errorf("b took over %v after a's last renewal, before the Lease (%v) expired", got, leaseDuration)
		}
		t.Logf("hung apiserver: a stopped leading %v after its last renewal (renew deadline %v), b took over %v after it (Lease %v)",
			aStop.Sub(renewed).Round(time.Millisecond), renewDeadline, bSpans[0].start.Sub(renewed).Round(time.Millisecond), leaseDuration)
		oneLeaderAtATime(t, a, b)
	})

	var c *replica
	t.Run("a paused leader: the standby takes over after the Lease, the paused one exits without syncing", func(t *testing.T) {
		c = start("election-c", env.cofferSyncKubeconfig)
		if err := syscall.Kill(b.p.Pid(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		paused := time.Now()
		_, renewed := holder()
		waitLeads(c)
		if got := c.spans()[0].start.Sub(renewed); got < leaseDuration-100*time.Millisecond {
			t.Errorf("c took over %v after b's last renewal, before the Lease (%v) expired", got, leaseDuration)
		}
		t.Logf("paused leader: c took over %v after b's last renewal (Lease %v)", c.spans()[0].start.Sub(renewed).Round(time.Millisecond), leaseDuration)
		time.Sleep(leaseDuration) // c leads, and the paused b's timers are all due
		resumed := time.Now()
		if err := syscall.Kill(b.p.Pid(), syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		waitExit(b, 2*renewDeadline+5*time.Second)
		// A sync b had in flight when paused ends, cancelled, when it
		// resumes: nothing written (the Secret left as it is, the status
		// not written), no sync counted as done.
		for _, e := range b.after(paused) {
			switch {
			case e.msg == "secret synced" || e.msg == "secret in sync":
				t.Errorf("b synced a Secret at %v, after it was paused at %v (resumed at %v): %s %s", e.at, paused, resumed, e.msg, e.attrs)
			case e.msg == "secret sync: reconciled" && !strings.Contains(e.attrs, " ready=False"):
				t.Errorf("b completed a reconcile at %v, after it was paused at %v (resumed at %v): %s", e.at, paused, resumed, e.attrs)
			}
		}
		if h, _ := holder(); h != c.identity {
			t.Errorf("after b resumed and exited, the Lease's holder is %q, want c (%q)", h, c.identity)
		}
		if cs := c.spans(); len(cs) != 1 || !cs[0].end.IsZero() {
			t.Errorf("c's leading spans %v, want one, still open", cs)
		}
		// b's span is open in its log from before the pause until it
		// resumed; what matters is that it synced nothing in c's.
		cStart := c.spans()[0].start
		for _, r := range b.reconciles() {
			if !r.Before(cStart) {
				t.Errorf("b reconciled at %v, while c led (since %v)", r, cStart)
			}
		}
		oneLeaderAtATime(t, a, c)
	})

	t.Run("SIGTERM releases the Lease", func(t *testing.T) {
		if c == nil {
			t.Skip("no third replica")
		}
		c.p.Stop(10 * time.Second)
		if h, _ := holder(); h != "" {
			t.Errorf("after SIGTERM, the Lease's holder is %q, want none (released)", h)
		}
		if log := c.p.LogSince(0); !strings.Contains(log, "stopped leading") || strings.Contains(log, "lost the leader Lease") {
			t.Errorf("c's log after SIGTERM:\n%s", tail(c.p))
		}
	})

	// What each binary costs, idle plus syncing one class: a fresh
	// controller replica, alone, once it has synced; and the node's coffer
	// serve once it has answered one mount whose class syncs a Secret.
	t.Run("peak memory of both binaries", func(t *testing.T) {
		d := start("election-d", env.cofferSyncKubeconfig)
		waitLeads(d)
		time.Sleep(2 * time.Second)
		ctlPeak, err := peakRSS(d.p.Pid())
		if err != nil {
			t.Fatal(err)
		}
		createSPC(ctx, t, ns, spcSpec{name: "node", params: map[string]string{"region": region,
			"objects":     "- {objectName: el/value, objectType: secretsmanager, objectAlias: value}",
			"syncSecrets": "- {secretName: el-node, serviceAccountName: reader, refreshInterval: \"0\", data: [{key: value, objectName: value}]}"}})
		pod := createPod(ctx, t, ns, "node-0", "reader", "node")
		pod.mount(ctx)
		waitSecretData(ctx, t, ns, "el-node", map[string]string{"value": "canary-el-1"})
		time.Sleep(2 * time.Second)
		nodePeak, err := peakRSS(env.coffer.Pid())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("peak RSS (VmHWM): coffer-controller sync %.1f MiB (leading, %d syncs); coffer serve %.1f MiB (one mount, its Secret synced)",
			float64(ctlPeak)/(1<<20), len(d.reconciles()), float64(nodePeak)/(1<<20))
	})
}

// replica is one coffer-controller sync process of the scenario.
type replica struct {
	p        *process
	identity string
}

// logLine is one slog text line: its time, message and attributes.
var logLine = regexp.MustCompile(`^time=(\S+) level=\S+ msg=("(?:[^"\\]|\\.)*"|\S+)(.*)$`)

type entry struct {
	at    time.Time
	msg   string
	attrs string
}

func (r *replica) entries() []entry {
	var out []entry
	for _, line := range strings.Split(r.p.LogSince(0), "\n") {
		m := logLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		msg := m[2]
		if uq, err := strconv.Unquote(msg); err == nil {
			msg = uq
		}
		out = append(out, entry{at: at, msg: msg, attrs: m[3]})
	}
	return out
}

// logged is the value of attribute attr of the first line saying msg.
func (r *replica) logged(msg, attr string) string {
	for _, e := range r.entries() {
		if e.msg == msg {
			if m := regexp.MustCompile(` ` + attr + `=(\S+)`).FindStringSubmatch(e.attrs); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

// span is one term of leading, by the replica's log: from "leading" to
// "stopped leading" (zero: still leading).
type span struct{ start, end time.Time }

func (r *replica) spans() []span {
	var out []span
	for _, e := range r.entries() {
		switch e.msg {
		case "leading: syncing Secrets":
			out = append(out, span{start: e.at})
		case "stopped leading":
			if len(out) > 0 && out[len(out)-1].end.IsZero() {
				out[len(out)-1].end = e.at
			}
		}
	}
	return out
}

// reconciles are when the replica synced a Secret: read AWS and wrote the
// Secret, or found it unchanged. A sync cut short (its context cancelled)
// logs neither.
func (r *replica) reconciles() []time.Time {
	var out []time.Time
	for _, e := range r.entries() {
		if e.msg == "secret synced" || e.msg == "secret in sync" {
			out = append(out, e.at)
		}
	}
	return out
}

// after are the replica's log entries from t on.
func (r *replica) after(t time.Time) []entry {
	var out []entry
	for _, e := range r.entries() {
		if !e.at.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// oneLeaderAtATime fails if two replicas' terms overlap, or one reconciled
// outside its terms.
func oneLeaderAtATime(t *testing.T, rs ...*replica) {
	t.Helper()
	type term struct {
		who        string
		start, end time.Time
	}
	var all []term
	for _, r := range rs {
		spans := r.spans()
		for _, s := range spans {
			end := s.end
			if end.IsZero() {
				end = time.Now()
			}
			all = append(all, term{r.p.Name, s.start, end})
		}
		for _, at := range r.reconciles() {
			inside := false
			for _, s := range spans {
				inside = inside || !at.Before(s.start) && (s.end.IsZero() || !at.After(s.end))
			}
			if !inside {
				t.Errorf("%s reconciled at %v, outside its terms as leader %v", r.p.Name, at, spans)
			}
		}
	}
	for i, x := range all {
		for _, y := range all[i+1:] {
			if x.start.Before(y.end) && y.start.Before(x.end) {
				t.Errorf("two leaders: %s from %v to %v, %s from %v to %v", x.who, x.start, x.end, y.who, y.start, y.end)
			}
		}
	}
}

func tail(p *process) string { return strings.Join(lastLines(p.LogSince(0), 30), "\n") }

func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}

// freezableProxy forwards TCP connections to an upstream address until
// freeze, after which it forwards no byte more, either way, on any
// connection, old or new, and closes none: to whoever connects through
// it, the upstream hangs.
type freezableProxy struct {
	addr   string
	mu     sync.Mutex
	frozen chan struct{} // closed when the proxy stops: nothing waits then
	isFrz  bool
}

func startFreezableProxy(t *testing.T, upstreamURL string) *freezableProxy {
	t.Helper()
	u, err := url.Parse(upstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezableProxy{addr: lis.Addr().String(), frozen: make(chan struct{})}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		close(p.frozen) // release whatever waits
		lis.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	})
	go func() {
		for {
			down, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", u.Host)
			if err != nil {
				down.Close()
				continue
			}
			mu.Lock()
			open = append(open, down, up)
			mu.Unlock()
			conns.Add(2)
			go func() { defer conns.Done(); p.pipe(up, down) }()
			go func() { defer conns.Done(); p.pipe(down, up) }()
		}
	}()
	return p
}

// pipe copies src to dst while the proxy is not frozen.
func (p *freezableProxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.hold() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold waits, while the proxy is frozen, until it is stopped, and says
// whether it was.
func (p *freezableProxy) hold() bool {
	p.mu.Lock()
	frozen := p.isFrz
	p.mu.Unlock()
	if !frozen {
		return false
	}
	<-p.frozen
	return true
}

func (p *freezableProxy) freeze() {
	p.mu.Lock()
	p.isFrz = true
	p.mu.Unlock()
}
