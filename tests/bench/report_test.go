package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// awsLatency is the injected latency of every AWS call, STS included.
const awsLatency = 20 * time.Millisecond

// Result is one measured row of the report.
type Result struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	// Baseline is what the AWS provider would do (a model from its
	// documented behaviour, not a measurement), where it applies.
	Baseline string `json:"baseline,omitempty"`
	Target   string `json:"target,omitempty"`
}

type report struct {
	Date    string   `json:"date"`
	GoOS    string   `json:"goos"`
	CPUs    int      `json:"cpus"`
	Latency string   `json:"awsLatencyPerCall"`
	Results []Result `json:"results"`
	mu      sync.Mutex
}

func (r *report) add(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Results = append(r.Results, res)
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := int(float64(len(s)-1) * p)
	return s[idx]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// TestReport runs the scenarios and writes results.md and results.json.
// It runs only under `make bench` (COFFER_BENCH_REPORT names the output
// prefix): it takes minutes and its numbers need a quiet machine.
func TestReport(t *testing.T) {
	out := os.Getenv("COFFER_BENCH_REPORT")
	if out == "" {
		t.Skip("set COFFER_BENCH_REPORT=<output prefix> (make bench does)")
	}
	r := &report{Date: time.Now().UTC().Format("2006-01-02"), GoOS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(), Latency: awsLatency.String()}
	t.Run("S1 cold pod start", func(t *testing.T) { coldStart(t, r) })
	t.Run("S2 rotation sweep", func(t *testing.T) { rotationSweep(t, r) })
	t.Run("S3 burst", func(t *testing.T) { burst(t, r) })
	t.Run("S4 many mounts", func(t *testing.T) { manyMounts(t, r) })
	t.Run("S5 extensions", func(t *testing.T) { extensions(t, r) })
	t.Run("S6 leaks and load", func(t *testing.T) { leaks(t, r) })
	t.Run("S7 restart under load", func(t *testing.T) { restartUnderLoad(t, r) })

	md := renderMarkdown(r)
	fmt.Println(md)
	js, _ := json.MarshalIndent(r, "", "  ")
	fmt.Println(string(js))
	if err := os.WriteFile(out+".md", []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out+".json", append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func renderMarkdown(r *report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Benchmark of %s, %d CPUs, %s per AWS call (STS included), coffer as a separate process over its Unix socket.\n\n", r.Date, r.CPUs, r.Latency)
	b.WriteString("| scenario | metric | coffer | AWS provider (model) | target |\n|---|---|---|---|---|\n")
	for _, res := range r.Results {
		v := fmt.Sprintf("%.2f %s", res.Value, res.Unit)
		if res.Unit == "calls" || res.Unit == "errors" {
			v = fmt.Sprintf("%.0f %s", res.Value, res.Unit)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", res.Scenario, res.Metric, v, res.Baseline, res.Target)
	}
	return b.String()
}

// coldStart: a pod of a ServiceAccount seen for the first time mounts 10
// Secrets Manager and 10 Parameter Store entries: credentials and values are
// cold. Three AWS round trips: STS, then both batches in parallel.
func coldStart(t *testing.T, r *report) {
	e := newEnv(t, awsLatency)
	c := startCoffer(t, e)
	objects := e.objects("s1", 10, 10)
	const pods = 40
	var lat []time.Duration
	e.fake.ResetCalls()
	for i := range pods {
		sa := fmt.Sprintf("sa-%02d", i)
		e.serviceAccount(t, "s1", sa)
		resp, d, err := c.mount(e.attrs("s1", sa, "pod-"+sa, objects), nil)
		if err != nil || len(resp.Files) != 20 {
			t.Fatalf("mount %d: %v", i, err)
		}
		lat = append(lat, d)
	}
	calls := float64(e.calls("", "")) / pods
	r.add(Result{"S1 cold pod start (10 SM + 10 SSM)", "p50 Mount latency", ms(percentile(lat, 0.5)), "ms", "~240 ms (1 STS + 10 sequential GetSecretValue + 1 GetParameters)", "≤ 3 round trips (~60 ms) + < 5 ms"})
	r.add(Result{"S1 cold pod start (10 SM + 10 SSM)", "p99 Mount latency", ms(percentile(lat, 0.99)), "ms", "", ""})
	r.add(Result{"S1 cold pod start (10 SM + 10 SSM)", "AWS calls per mount", calls, "calls", "12", "3"})

	// The same pods mounting again (a rotation poll within the cache window).
	var warm []time.Duration
	e.fake.ResetCalls()
	for i := range pods {
		sa := fmt.Sprintf("sa-%02d", i)
		_, d, err := c.mount(e.attrs("s1", sa, "pod-"+sa, objects), nil)
		if err != nil {
			t.Fatal(err)
		}
		warm = append(warm, d)
	}
	r.add(Result{"S1 warm remount (same identity, within cache window)", "p50 Mount latency", ms(percentile(warm, 0.5)), "ms", "~240 ms", ""})
	r.add(Result{"S1 warm remount (same identity, within cache window)", "AWS calls per mount", float64(e.calls("", "")) / pods, "calls", "12", "0"})
}

// rotationSweep: 100 pods of one ServiceAccount mount the same 5 secrets;
// the driver polls each of them for rotation. Each poll falls in a new
// cache window (cache TTL 1s, polls 1.2s apart): the worst case.
func rotationSweep(t *testing.T, r *report) {
	e := newEnv(t, awsLatency)
	c := startCoffer(t, e, "--cache-ttl", "1s")
	objects := e.objects("s2", 5, 0)
	e.serviceAccount(t, "s2", "app")
	const pods, polls = 100, 5
	current := make([][]*v1alpha1.ObjectVersion, pods)
	poll := func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 20)
		for p := range pods {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				resp, _, err := c.mount(e.attrs("s2", "app", fmt.Sprintf("pod-%03d", p), objects), current[p])
				if err != nil || len(resp.Files) != 5 {
					t.Errorf("pod %d: %v", p, err)
					return
				}
				current[p] = resp.ObjectVersion
			})
		}
		wg.Wait()
	}
	e.fake.ResetCalls()
	poll()
	first := e.calls("", "")
	var steady []int
	for range polls {
		time.Sleep(1200 * time.Millisecond)
		e.fake.ResetCalls()
		poll()
		steady = append(steady, e.calls(fakeaws.ServiceSecretsManager, ""))
	}
	worst := 0
	for _, n := range steady {
		worst = max(worst, n)
	}
	r.add(Result{"S2 rotation sweep (100 pods x 5 secrets, 1 identity)", "AWS calls, first poll", float64(first), "calls", "600 (100 STS + 500 GetSecretValue)", ""})
	r.add(Result{"S2 rotation sweep (100 pods x 5 secrets, 1 identity)", "AWS calls per later poll (worst of 5, new cache window each)", float64(worst), "calls", "600", "≤ 1 per 20 secrets per identity per window (100x fewer)"})
}

// burst: 200 pods across 5 ServiceAccounts start at once.
func burst(t *testing.T, r *report) {
	e := newEnv(t, awsLatency)
	c := startCoffer(t, e)
	objects := e.objects("s3", 5, 5)
	for i := range 5 {
		e.serviceAccount(t, "s3", fmt.Sprintf("sa-%d", i))
	}
	e.fake.ResetCalls()
	const pods = 200
	lat := make([]time.Duration, pods)
	errs := make([]error, pods)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for p := range pods {
		sa := fmt.Sprintf("sa-%d", p%5)
		attrs := e.attrs("s3", sa, fmt.Sprintf("pod-%03d", p), objects)
		wg.Go(func() {
			<-start
			_, lat[p], errs[p] = c.mount(attrs, nil)
		})
	}
	close(start)
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			t.Log(err)
		}
	}
	r.add(Result{"S3 burst (200 pods, 5 ServiceAccounts, 5 SM + 5 SSM)", "p99 Mount latency", ms(percentile(lat, 0.99)), "ms", "", ""})
	r.add(Result{"S3 burst (200 pods, 5 ServiceAccounts, 5 SM + 5 SSM)", "errors", float64(failed), "errors", "", "0"})
	r.add(Result{"S3 burst (200 pods, 5 ServiceAccounts, 5 SM + 5 SSM)", "STS calls", float64(e.calls(fakeaws.ServiceSTS, "")), "calls", "200", "200 (one per pod: each session names its pod in CloudTrail)"})
	r.add(Result{"S3 burst (200 pods, 5 ServiceAccounts, 5 SM + 5 SSM)", "AWS calls in all", float64(e.calls("", "")), "calls", "1400", ""})
	if failed > 0 {
		t.Errorf("%d mounts failed", failed)
	}
}

// manyMounts: 1,000 distinct pods across 50 ServiceAccounts, each mounting
// 10 objects of its namespace; the provider's peak memory and CPU.
func manyMounts(t *testing.T, r *report) {
	e := newEnv(t, awsLatency)
	c := startCoffer(t, e)
	const pods, accounts = 1000, 50
	objects := make([]string, accounts)
	for a := range accounts {
		ns := fmt.Sprintf("s4-%02d", a)
		e.serviceAccount(t, ns, "app")
		objects[a] = e.objects(ns, 5, 5)
	}
	// Sample anonymous (heap and stacks) memory while mounting: the peak
	// RSS includes the binary's file-backed pages, which the kernel can
	// reclaim, so both are reported.
	stopSampling := make(chan struct{})
	sampled := make(chan float64)
	go func() {
		peak := 0.0
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				peak = max(peak, c.anonMiB())
			case <-stopSampling:
				sampled <- max(peak, c.anonMiB())
				return
			}
		}
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	var mu sync.Mutex
	failed := 0
	for p := range pods {
		a := p % accounts
		attrs := e.attrs(fmt.Sprintf("s4-%02d", a), "app", fmt.Sprintf("pod-%04d", p), objects[a])
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, _, err := c.mount(attrs, nil); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stopSampling)
	anon := <-sampled
	rss, cpu := c.usage(t)
	r.add(Result{"S4 1,000 mounts (50 identities x 10 objects)", "provider peak RSS", rss, "MiB", "", "< 64 MiB"})
	r.add(Result{"S4 1,000 mounts (50 identities x 10 objects)", "provider peak anonymous memory (heap, stacks)", anon, "MiB", "", ""})
	r.add(Result{"S4 1,000 mounts (50 identities x 10 objects)", "provider CPU time", cpu, "s", "", ""})
	r.add(Result{"S4 1,000 mounts (50 identities x 10 objects)", "errors", float64(failed), "errors", "", "0"})
	if failed > 0 {
		t.Errorf("%d mounts failed", failed)
	}
}

// extensions: the AWS calls of coffer's selection extensions, cold and
// within the cache window.
func extensions(t *testing.T, r *report) {
	e := newEnv(t, awsLatency)
	c := startCoffer(t, e)
	e.serviceAccount(t, "s5", "app")
	for i := range 45 {
		e.fake.PutParameter(region, fmt.Sprintf("/bench/s5/path/p%02d", i), "v", "String")
		e.fake.PutSecretString(region, fmt.Sprintf("bench/s5/filter/s%02d", i), "v")
	}
	e.fake.PutSecretString(region, "bench/s5/json", `{"a":"1","b":"2","c":"3","d":"4","e":"5"}`)
	// Warm the identity's credentials, so latencies below are AWS calls only.
	if _, _, err := c.mount(e.attrs("s5", "app", "pod", e.objects("s5-warm", 1, 0)), nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, objects, model string
		files                int
	}{
		{"Parameter Store path, 45 parameters", "- {path: /bench/s5/path/, objectAlias: p}", "45 GetParameters names listed by hand: 5 calls", 45},
		{"Secrets Manager filter, 45 secrets", "- {objectAlias: s, filters: [{key: name, values: [bench/s5/filter/]}]}", "45 GetSecretValue", 45},
		{"expandJSON, 5 keys", "- {objectName: bench/s5/json, objectType: secretsmanager, objectAlias: j, expandJSON: true}", "1 GetSecretValue + 5 jmesPath entries by hand", 5},
	}
	for _, tc := range cases {
		e.fake.ResetCalls()
		resp, d, err := c.mount(e.attrs("s5", "app", "pod", tc.objects), nil)
		if err != nil || len(resp.Files) != tc.files {
			t.Fatalf("%s: %v", tc.name, err)
		}
		cold := e.calls(fakeaws.ServiceSecretsManager, "") + e.calls(fakeaws.ServiceSSM, "")
		e.fake.ResetCalls()
		if _, _, err := c.mount(e.attrs("s5", "app", "pod", tc.objects), nil); err != nil {
			t.Fatal(err)
		}
		warm := e.calls("", "")
		r.add(Result{"S5 " + tc.name, "AWS calls, cold (warm: " + fmt.Sprint(warm) + ")", float64(cold), "calls", tc.model, ""})
		r.add(Result{"S5 " + tc.name, "Mount latency, cold", ms(d), "ms", "", ""})
	}
}
