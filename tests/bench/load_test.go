package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// goroutines reads go_goroutines from the provider's /metrics.
func goroutines(t testing.TB, metricsAddr string) int {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	t.Fatal("no go_goroutines in /metrics")
	return 0
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The HTTP keep-alive pool to AWS may hold up to 16 idle connections
// (provider/awsapi), each an open descriptor with two goroutines; anything
// beyond that after the load has settled is a leak.
const (
	fdSlack        = 16 + 4
	goroutineSlack = 2*16 + 8
)

// leaks: 10,000 mounts across 200 identities, then the provider must be back
// to its resting goroutines and file descriptors (give or take the HTTP
// keep-alive pool to AWS), with bounded memory.
func leaks(t *testing.T, r *report) {
	e := newEnv(t, 5*time.Millisecond)
	metricsAddr := freeAddr(t)
	c := startCoffer(t, e, "--metrics-addr", metricsAddr, "--cache-ttl", "2s")
	const identities, mounts = 200, 10000
	objects := e.objects("s6", 3, 2)
	for i := range identities {
		e.serviceAccount(t, "s6", fmt.Sprintf("sa-%03d", i))
	}
	if _, _, err := c.mount(e.attrs("s6", "sa-000", "warm", objects), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	baseG, baseFD := goroutines(t, metricsAddr), c.openFDs()

	var failed atomic.Int64
	run := func(n, concurrency int, attrs func(i int) string) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, concurrency)
		for i := range n {
			a := attrs(i)
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if _, _, err := c.mount(a, nil); err != nil {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
	}
	tokens := make([]string, identities)
	for i := range identities {
		tokens[i] = e.attrs("s6", fmt.Sprintf("sa-%03d", i), fmt.Sprintf("pod-%03d", i), objects)
	}
	start := time.Now()
	run(mounts, 50, func(i int) string { return tokens[i%identities] })
	elapsed := time.Since(start)
	time.Sleep(3 * time.Second) // let in-flight work and idle timers settle
	afterG, afterFD := goroutines(t, metricsAddr), c.openFDs()
	rss, cpu := c.usage(t)

	r.add(Result{"S6 10,000 mounts, 200 identities", "failed mounts", float64(failed.Load()), "errors", "0"})
	r.add(Result{"S6 10,000 mounts, 200 identities", "mounts per second (50 at a time)", float64(mounts) / elapsed.Seconds(), "/s", ""})
	r.add(Result{"S6 10,000 mounts, 200 identities", fmt.Sprintf("goroutines after (before: %d)", baseG), float64(afterG), "goroutines", fmt.Sprintf("≤ %d (baseline + the keep-alive pool, 2 per connection)", baseG+goroutineSlack)})
	r.add(Result{"S6 10,000 mounts, 200 identities", fmt.Sprintf("open file descriptors after (before: %d)", baseFD), float64(afterFD), "fds", fmt.Sprintf("≤ %d (baseline + the keep-alive pool)", baseFD+fdSlack)})
	r.add(Result{"S6 10,000 mounts, 200 identities", "provider peak RSS", rss, "MiB", "< 96 MiB"})
	r.add(Result{"S6 10,000 mounts, 200 identities", "provider CPU time", cpu, "s", ""})
	if failed.Load() > 0 {
		t.Errorf("%d mounts failed", failed.Load())
	}
	if afterG > baseG+goroutineSlack {
		t.Errorf("goroutines %d -> %d: a leak", baseG, afterG)
	}
	if afterFD > baseFD+fdSlack {
		t.Errorf("file descriptors %d -> %d: a leak", baseFD, afterFD)
	}
	if rss >= 96 {
		t.Errorf("peak RSS %.1f MiB over the documented 96 MiB", rss)
	}
}

// restartUnderLoad: the provider restarts while mounts keep coming; the
// driver's retries (waitForReady, UNAVAILABLE retried) carry them over.
func restartUnderLoad(t *testing.T, r *report) {
	e := newEnv(t, 5*time.Millisecond)
	c := startCoffer(t, e)
	objects := e.objects("s7", 3, 2)
	for i := range 10 {
		e.serviceAccount(t, "s7", fmt.Sprintf("sa-%d", i))
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var done atomic.Int64
	for w := range 10 {
		attrs := e.attrs("s7", fmt.Sprintf("sa-%d", w), fmt.Sprintf("pod-%d", w), objects)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := c.mount(attrs, nil); err != nil {
					failed.Add(1)
					t.Logf("mount during restart: %v", err)
				}
				done.Add(1)
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	c.restart(t)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	r.add(Result{"S7 provider restart under load (10 pods mounting in a loop)", fmt.Sprintf("failed mounts of %d", done.Load()), float64(failed.Load()), "errors", "0"})
	if failed.Load() > 0 {
		t.Errorf("%d mounts failed across the restart", failed.Load())
	}
}

// nodePods is a node's default pod limit (kubelet's --max-pods).
const nodePods = 110

// atOnce: a node's worth of pods, each of its own ServiceAccount, all
// starting at once, must all mount; past that (1,000 mounts at once, nine
// nodes' worth) the node's AWS budget paces them, and what counts is that
// every mount is answered (served, or refused in time for the driver to
// retry) within its deadline, none left hanging.
func atOnce(t *testing.T, r *report) {
	e := newEnv(t, 5*time.Millisecond)
	c := startCoffer(t, e)
	objects := e.objects("s6b", 3, 2)
	burst := func(n int, attrs func(i int) string) (failed int64, slowest time.Duration) {
		var fails atomic.Int64
		var mu sync.Mutex
		var wg sync.WaitGroup
		startLine := make(chan struct{})
		for i := range n {
			a := attrs(i)
			wg.Go(func() {
				<-startLine
				_, d, err := c.mount(a, nil)
				if err != nil {
					fails.Add(1)
				}
				mu.Lock()
				slowest = max(slowest, d)
				mu.Unlock()
			})
		}
		close(startLine)
		wg.Wait()
		return fails.Load(), slowest
	}
	for i := range nodePods {
		e.serviceAccount(t, "s6b", fmt.Sprintf("sa-%03d", i))
	}
	failed, slowest := burst(nodePods, func(i int) string {
		return e.attrs("s6b", fmt.Sprintf("sa-%03d", i), fmt.Sprintf("pod-%03d", i), objects)
	})
	name := fmt.Sprintf("S6 %d new pods of %d ServiceAccounts at once (a node's pod limit, cold)", nodePods, nodePods)
	r.add(Result{name, "failed mounts", float64(failed), "errors", "0"})
	r.add(Result{name, "slowest mount", ms(slowest), "ms", ""})
	if failed > 0 {
		t.Errorf("%d of %d mounts at once failed", failed, nodePods)
	}

	const overload = 1000
	failed, slowest = burst(overload, func(i int) string {
		sa := fmt.Sprintf("sa-%03d", i%nodePods)
		return e.attrs("s6b", sa, fmt.Sprintf("pod-x%04d", i), objects)
	})
	name = fmt.Sprintf("S6 overload: %d new pods at once (%d ServiceAccounts; nine nodes' worth)", overload, nodePods)
	r.add(Result{name, "failed mounts (refused in time; the driver retries them)", float64(failed), "errors", ""})
	r.add(Result{name, "slowest answer", ms(slowest), "ms", "≤ 30000 ms (--mount-timeout: none left hanging)"})
	if slowest > 30*time.Second+5*time.Second {
		t.Errorf("a mount took %s to be answered, past its 30 s deadline", slowest)
	}
}
