package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/internal/kube/kubetest"
	"github.com/coffer-csi/coffer/internal/sdkhttp"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/awsapi"
	"github.com/coffer-csi/coffer/provider/cache"
	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// The fleet simulation: many nodes in one process, each with coffer's real
// Mounter (token verification, IRSA credentials from STS, per-pod credential
// reuse, the value cache, remount marks, quota budgets and planning, the
// SDK), and its own identities, against one AWS fake that enforces the
// account-wide quotas with token buckets. A model of AWS's provider's call
// pattern runs against the same fake as the baseline.
//
// Scaling, so that it runs in minutes on two cores: time is compressed by
// compress (the driver's 2-minute rotation poll takes 120 s / compress; so
// do coffer's remount jitter, throttle cooldown, mount deadline and the
// SDK's backoff; coffer's budgets run compress times faster), and a fleet
// of N nodes is simulated with N/k nodes against quotas scaled by
// compress/k. Rates per simulated node are those of a real node times
// compress, so the fleet's calls per second against its quotas are the
// real fleet's, scaled by compress/k: reports multiply them back.

// fleetWorkload is the issue's workload: per node 30 pods, 10 identities
// (3 pods each), 5 Secrets Manager secrets and 2 parameters per pod (the
// same for the pods of one identity), a 2-minute rotation poll.
type fleetWorkload struct {
	PodsPerNode, IdentitiesPerNode, Secrets, Params int
	Poll                                            time.Duration // the real poll interval
}

var issueWorkload = fleetWorkload{PodsPerNode: 30, IdentitiesPerNode: 10, Secrets: 5, Params: 2, Poll: 2 * time.Minute}

// fleetRun is one simulated fleet.
type fleetRun struct {
	Subject          string  `json:"subject"` // "coffer" or "ascp-model"
	Nodes            int     `json:"nodes"`   // the fleet represented
	SimNodes         int     `json:"simNodes"`
	QuotaScale       float64 `json:"quotaScale"`
	HigherThroughput bool    `json:"higherThroughput"`
	// Aligned is set when every node's sweep starts at the same instant;
	// unset, nodes sweep at random phases of the poll.
	Aligned bool `json:"aligned"`
	Sweeps  int  `json:"sweeps"`
	// CallsPerSecond are the steady-state calls per second (every sweep
	// after the first), per API, in the represented fleet's terms.
	CallsPerSecond map[string]float64 `json:"callsPerSecond"`
	// ColdCallsPerSecond are those of the first sweep (every pod's first
	// mount: STS, no cache).
	ColdCallsPerSecond map[string]float64 `json:"coldCallsPerSecond"`
	// Throttled are the calls AWS throttled in steady state, per API;
	// ThrottledLastSweep those of the last sweep (sustained throttling
	// shows in every sweep).
	Throttled          map[string]int `json:"throttled"`
	ThrottledLastSweep map[string]int `json:"throttledLastSweep"`
	// Mounts and FailedMounts are the steady state's remounts;
	// FailedColdMounts the first sweep's failures.
	Mounts           int `json:"mounts"`
	FailedMounts     int `json:"failedMounts"`
	FailedColdMounts int `json:"failedColdMounts"`
	// P99MountMs is the 99th percentile mount latency in steady state, in
	// the simulation's time (AWS latency is not compressed).
	P99MountMs float64 `json:"p99MountMs"`
	P50MountMs float64 `json:"p50MountMs"`
	// FailureSample is one failed mount's error (no secret values: the
	// fake's values are generated names).
	FailureSample string `json:"failureSample,omitempty"`
	// MonthlyUSD is the steady state's API bill for 30 days at AWS's
	// published prices (monthlyBill).
	MonthlyUSD float64 `json:"monthlyUSD"`
}

type fleetReport struct {
	Date      string             `json:"date"`
	Commit    string             `json:"commit"`
	CPUs      int                `json:"cpus"`
	Compress  float64            `json:"compress"`
	LatencyMs float64            `json:"awsLatencyMs"`
	Workload  fleetWorkload      `json:"workload"`
	Quotas    map[string]float64 `json:"quotas"`
	Runs      []fleetRun         `json:"runs"`
	// PricesDate is when the prices monthlyBill uses were AWS's.
	PricesDate string `json:"pricesDate"`
	// EventRuns are the runs with change events (events_test.go).
	EventRuns       []eventsRun `json:"eventRuns"`
	EventsLatencyMs float64     `json:"eventsAwsLatencyMs"`
}

// fleetParams are the simulation's knobs.
type fleetParams struct {
	nodes, simNodes  int
	compress         float64
	sweeps           int
	higherThroughput bool
	spread           bool
	latency          time.Duration
	workload         fleetWorkload
}

func (p fleetParams) scale() float64 { return p.compress * float64(p.simNodes) / float64(p.nodes) }

// poll is the simulated rotation poll interval.
func (p fleetParams) poll() time.Duration {
	return time.Duration(float64(p.workload.Poll) / p.compress)
}

func (p fleetParams) compressed(d time.Duration) time.Duration {
	return time.Duration(float64(d) / p.compress)
}

// fleetWorld is the fake AWS account and the cluster's ServiceAccounts.
// Identities may be added while the fleet runs (new teams' pods), so its
// tables are guarded by mu.
type fleetWorld struct {
	fake   *fakeaws.Server
	url    string
	issuer *fakeaws.Issuer
	kube   *fake.Clientset
	w      fleetWorkload

	mu sync.Mutex
	// objects of identity i, as a SecretProviderClass objects list.
	objects []string
	secrets [][]string
	params  [][]string
	// versions are every object's versions, oldest first, with when each
	// was written (zero: before the run): what AWS held when.
	versions map[string][]objectVersion
	// objectOf maps a mounted file's path to its object's name.
	objectOf map[string]string
}

// objectVersion is one version of an object and when it was written.
type objectVersion struct {
	id string
	at time.Time
}

func fleetIdentity(i int) (ns, sa string) { return fmt.Sprintf("team-%04d", i), "app" }

func newFleetWorld(t testing.TB, identities int, w fleetWorkload, latency time.Duration) *fleetWorld {
	fk, ts := fakeaws.NewTestServer(t)
	issuer := fakeaws.NewTestIssuer(t, "https://oidc.fleet")
	if err := fk.SetJWKS(issuer.JWKS()); err != nil {
		t.Fatal(err)
	}
	fk.SetLatency(latency)
	wd := &fleetWorld{fake: fk, url: ts.URL, issuer: issuer, kube: fake.NewClientset(), w: w,
		versions: map[string][]objectVersion{}, objectOf: map[string]string{}}
	for range identities {
		if _, err := wd.addIdentity(); err != nil {
			t.Fatal(err)
		}
	}
	return wd
}

// addIdentity creates the next identity: its role, ServiceAccount, secrets
// and parameters (a new team), and returns its number.
func (wd *fleetWorld) addIdentity() (int, error) {
	wd.mu.Lock()
	i := len(wd.objects)
	wd.objects = append(wd.objects, "")
	wd.secrets = append(wd.secrets, nil)
	wd.params = append(wd.params, nil)
	wd.mu.Unlock()
	ns, sa := fleetIdentity(i)
	if err := wd.fake.AddRole(fakeaws.Role{ARN: wd.roleARN(i), TrustedSubjects: []string{"system:serviceaccount:" + ns + ":" + sa},
		Actions:   []string{"secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue", "secretsmanager:DescribeSecret", "ssm:GetParameters"},
		Resources: []string{"*"}}); err != nil {
		return 0, err
	}
	if _, err := wd.kube.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa, Annotations: map[string]string{auth.RoleAnnotation: wd.roleARN(i)}},
	}, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	var b strings.Builder
	var secrets, params []string
	versions := map[string]string{}
	for j := range wd.w.Secrets {
		name := fmt.Sprintf("fleet/%s/secret-%d", ns, j)
		_, versions[name] = wd.fake.PutSecretString(region, name, fmt.Sprintf("value-%d-%d", i, j))
		fmt.Fprintf(&b, "- {objectName: %s, objectType: secretsmanager}\n", name)
		secrets = append(secrets, name)
	}
	for j := range wd.w.Params {
		name := fmt.Sprintf("/fleet/%s/param-%d", ns, j)
		versions[name] = strconv.FormatInt(wd.fake.PutParameter(region, name, fmt.Sprintf("value-%d-%d", i, j), "SecureString"), 10)
		fmt.Fprintf(&b, "- {objectName: %s, objectType: ssmparameter}\n", name)
		params = append(params, name)
	}
	wd.mu.Lock()
	defer wd.mu.Unlock()
	wd.objects[i], wd.secrets[i], wd.params[i] = b.String(), secrets, params
	for name, v := range versions {
		wd.versions[name] = []objectVersion{{id: v}}
		wd.objectOf[spc.TranslatePath(name, "_")] = name
	}
	return i, nil
}

func (wd *fleetWorld) roleARN(i int) string {
	ns, sa := fleetIdentity(i)
	return fmt.Sprintf("arn:aws:iam::%s:role/%s-%s", wd.fake.AccountID(), ns, sa)
}

// identities returns how many identities the world has.
func (wd *fleetWorld) identities() int {
	wd.mu.Lock()
	defer wd.mu.Unlock()
	return len(wd.objects)
}

// names returns identity id's secrets and parameters.
func (wd *fleetWorld) names(id int) (secrets, params []string) {
	wd.mu.Lock()
	defer wd.mu.Unlock()
	return wd.secrets[id], wd.params[id]
}

// fleetPod is one pod on a simulated node.
type fleetPod struct {
	identity int
	ns, sa   string
	name     string
	uid      string
	token    string
	attrs    string
	// versions are the files' versions after the last successful mount
	// (the driver's SecretProviderClassPodStatus).
	versions map[string]string
}

func (wd *fleetWorld) pods(node int, w fleetWorkload) []*fleetPod {
	var pods []*fleetPod
	for j := range w.PodsPerNode {
		pods = append(pods, wd.pod(fmt.Sprintf("app-n%04d-%02d", node, j), node*w.IdentitiesPerNode+j%w.IdentitiesPerNode))
	}
	return pods
}

// pod returns a pod of identity id with the mount attributes the driver
// sends.
func (wd *fleetWorld) pod(name string, id int) *fleetPod {
	ns, sa := fleetIdentity(id)
	wd.mu.Lock()
	objects := wd.objects[id]
	wd.mu.Unlock()
	uid := "uid-" + name
	tok := wd.issuer.TokenWithClaims(fakeaws.TokenClaims{Subject: "system:serviceaccount:" + ns + ":" + sa, Audiences: []string{"sts.amazonaws.com"},
		PodName: name, PodUID: uid, Expiry: time.Now().Add(2 * time.Hour)})
	tokens, _ := json.Marshal(map[string]map[string]string{"sts.amazonaws.com": {"token": tok, "expirationTimestamp": time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)}})
	a, _ := json.Marshal(map[string]string{
		"secretProviderClass":                      "fleet",
		"objects":                                  objects,
		"region":                                   region,
		"csi.storage.k8s.io/pod.name":              name,
		"csi.storage.k8s.io/pod.namespace":         ns,
		"csi.storage.k8s.io/pod.uid":               uid,
		"csi.storage.k8s.io/serviceAccount.name":   sa,
		"csi.storage.k8s.io/serviceAccount.tokens": string(tokens),
		"csi.storage.k8s.io/ephemeral":             "true",
	})
	return &fleetPod{identity: id, ns: ns, sa: sa, name: name, uid: uid, token: tok, attrs: string(a)}
}

// mountFunc mounts (or remounts) one pod and reports the error.
type mountFunc func(ctx context.Context, p *fleetPod) error

// cofferNode is one node's coffer: the provider, fetcher, quota and caches
// coffer serve builds, with its default limits, assembled here rather than
// by wiring.New because the simulation runs time p.compress times faster:
// the quota's rates, backoff, cooldown and jitter and the SDK's backoff
// are scaled, which wiring.Config does not set, and the node share is the
// committed results' 0.1. With ev set, the node has change events on, as
// coffer serve --events-ledger builds it (see nodeEvents).
func cofferNode(t testing.TB, wd *fleetWorld, p fleetParams, ev *nodeEvents) mountFunc {
	awsCfg, err := awsapi.LoadConfig(context.Background(), awsapi.Settings{MaxAttempts: 3, MaxBackoff: p.compressed(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	pub := quota.Published(p.higherThroughput)
	rates := map[quota.API]float64{}
	for _, api := range quota.APIs {
		// The node's budget (--aws-quota-node-share 0.1 of the real
		// quota), compress times faster.
		rates[api] = 0.1 * pub.Of(api) * p.compress
	}
	// A node share of 0.1, as the committed results were measured (the
	// default, 0.5, suits a node starting pods on its own).
	q, err := quota.New(quota.Options{Quotas: pub, NodeShare: 0.1, Rates: rates, Cooldown: p.compressed(30 * time.Second), Backoff: p.compressed(500 * time.Millisecond), Jitter: p.compressed(time.Second)}, quota.Events{})
	if err != nil {
		t.Fatal(err)
	}
	reuse := 5 * time.Second
	values := cache.New(reuse, 64<<20)
	marks := cache.NewMarks(reuse, 8192)
	f := &fetch.Fetcher{Concurrency: 8, Cache: values, Reuse: reuse, MaxCallsPerIdentity: 16, MaxBytes: 8 << 20, Quota: q}
	keys := func(context.Context) ([]byte, error) { return wd.issuer.JWKS(), nil }
	m := &provider.Mounter{
		Identities: auth.NewResolver(auth.ResolverOptions{
			AWS: awsCfg, Kubernetes: kubetest.Wrap(wd.kube), Verifier: auth.NewVerifier(auth.VerifierOptions{Keys: keys, Issuers: []string{wd.issuer.URL()}}),
		}),
		Clients:          provider.SharedClients(awsapi.NewClientCache(awsCfg, 0)),
		Fetcher:          f,
		Marks:            marks,
		Region:           provider.StaticRegion(region),
		MaxObjects:       256,
		MaxResponseBytes: 4 << 20,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if ev != nil {
		// What wiring.New does with --events-ledger: the value cache keeps
		// values for the tracker's max age, and the cache, the marks and
		// the fetcher's read times run on one clock, the tracker's.
		values = cache.New(max(reuse, ev.maxAge), 64<<20)
		values.SetClock(ev.clock)
		marks.SetClock(ev.clock)
		f.Cache, f.Clock, f.Changes, f.OnEventVerdict = values, ev.clock, ev.tracker, ev.verdict
		m.Clock = ev.clock
	}
	return func(ctx context.Context, pod *fleetPod) error {
		res, err := m.Mount(ctx, provider.Request{Attributes: pod.attrs, Permission: "420", CurrentVersions: pod.versions})
		if err != nil {
			return err
		}
		v := map[string]string{}
		for _, f := range res.Files {
			v[f.Path] = f.Version
		}
		pod.versions = v
		return nil
	}
}

// ascpNode models AWS's provider's calls for one mount, as its source
// (v3.1.1) makes them: credentials from STS for every mount; per secret,
// GetSecretValue on the first mount, and on later mounts DescribeSecret,
// with GetSecretValue only when the version changed (it reads unchanged
// files back from the mount); GetParameters per 10 parameters on every
// mount. Sequential, with the SDK's standard retryer (3 attempts).
func ascpNode(wd *fleetWorld, p fleetParams) mountFunc {
	retryer := func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.MaxBackoff = p.compressed(20 * time.Second)
		})
	}
	// One connection pool per node, as one process per node has (the
	// model's mounts build new SDK clients, as AWS's provider does).
	httpClient := sdkhttp.New()
	base := aws.Config{Region: region, BaseEndpoint: aws.String(wd.url), Retryer: retryer, Credentials: aws.AnonymousCredentials{}, HTTPClient: httpClient}
	stsClient := sts.NewFromConfig(base)
	return func(ctx context.Context, pod *fleetPod) error {
		role := fmt.Sprintf("arn:aws:iam::%s:role/%s-%s", wd.fake.AccountID(), pod.ns, pod.sa)
		out, err := stsClient.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
			RoleArn: aws.String(role), RoleSessionName: aws.String("ascp-" + pod.name), WebIdentityToken: aws.String(pod.token)})
		if err != nil {
			return fmt.Errorf("sts: %w", err)
		}
		cfg := fakeaws.AWSConfig(wd.url, region, aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken))
		cfg.Retryer, cfg.HTTPClient = retryer, httpClient
		sm, ps := secretsmanager.NewFromConfig(cfg), ssm.NewFromConfig(cfg)
		secrets, names := wd.names(pod.identity)
		versions := map[string]string{}
		for _, name := range secrets {
			if cur, ok := pod.versions[name]; ok {
				d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
				if err != nil {
					return fmt.Errorf("DescribeSecret: %w", err)
				}
				if slices.Contains(d.VersionIdsToStages[cur], "AWSCURRENT") {
					versions[name] = cur
					continue
				}
			}
			v, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
			if err != nil {
				return fmt.Errorf("GetSecretValue: %w", err)
			}
			versions[name] = aws.ToString(v.VersionId)
		}
		for start := 0; start < len(names); start += 10 {
			if _, err := ps.GetParameters(ctx, &ssm.GetParametersInput{Names: names[start:min(start+10, len(names))], WithDecryption: aws.Bool(true)}); err != nil {
				return fmt.Errorf("GetParameters: %w", err)
			}
		}
		pod.versions = versions
		return nil
	}
}

// simulate runs p.sweeps rotation sweeps of the fleet: each node's pods
// are (re)mounted at the start of each poll, each pod dispatched within 2 s
// of it (as the driver walks its pods), compressed like everything else.
// With p.spread unset every node's sweep starts at the same instant (sweeps
// line up: the worst case); with it set, each node's sweeps start at a
// random phase of the poll.
func simulate(t testing.TB, subject string, p fleetParams) fleetRun {
	w := p.workload
	wd := newFleetWorld(t, p.simNodes*w.IdentitiesPerNode, w, p.latency)
	wd.fake.SetQuotas(fakeaws.PublishedQuotas(p.higherThroughput, p.scale())...)
	t.Setenv("AWS_ENDPOINT_URL", wd.url)
	poll, dispatch, deadline := p.poll(), p.compressed(2*time.Second), p.compressed(30*time.Second)
	type node struct {
		mount  mountFunc
		pods   []*fleetPod
		offset time.Duration
	}
	nodes := make([]node, p.simNodes)
	for i := range nodes {
		var mf mountFunc
		if subject == "coffer" {
			mf = cofferNode(t, wd, p, nil)
		} else {
			mf = ascpNode(wd, p)
		}
		nodes[i] = node{mount: mf, pods: wd.pods(i, w)}
		if p.spread {
			nodes[i].offset = rand.N(poll)
		}
	}
	run := fleetRun{Subject: subject, Nodes: p.nodes, SimNodes: p.simNodes, QuotaScale: p.scale(), HigherThroughput: p.higherThroughput, Sweeps: p.sweeps,
		Aligned: !p.spread, Throttled: map[string]int{}, ThrottledLastSweep: map[string]int{}}
	var mu sync.Mutex
	var latencies []time.Duration
	start := time.Now().Add(100 * time.Millisecond)
	var wg sync.WaitGroup
	for _, n := range nodes {
		for _, pod := range n.pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s := range p.sweeps {
					// One mount of a pod at a time, as the driver does.
					time.Sleep(time.Until(start.Add(time.Duration(s)*poll + n.offset + rand.N(dispatch))))
					ctx, cancel := context.WithTimeout(context.Background(), deadline)
					t0 := time.Now()
					err := n.mount(ctx, pod)
					d := time.Since(t0)
					cancel()
					mu.Lock()
					switch {
					case s == 0 && err != nil:
						run.FailedColdMounts++
					case s > 0:
						latencies = append(latencies, d)
						run.Mounts++
						if err != nil {
							run.FailedMounts++
							if run.FailureSample == "" {
								run.FailureSample = err.Error()
							}
						}
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()

	// The steady-state window: every sweep after the first; with random
	// phases, one poll that holds one sweep of every node (the tails of the
	// sweeps before and after it balance).
	from, to := start.Add(poll), start.Add(time.Duration(p.sweeps)*poll)
	if p.spread {
		from, to = start.Add(time.Duration(p.sweeps-1)*poll), start.Add(time.Duration(p.sweeps)*poll)
	}
	last := to.Add(-poll)
	time.Sleep(time.Until(to))
	toFleet := 1 / p.scale()
	steady, cold := map[string]int{}, map[string]int{}
	for _, c := range wd.fake.Calls() {
		op := c.Operation
		if c.Time.Before(start.Add(poll)) {
			cold[op]++
		}
		if c.Time.Before(from) || !c.Time.Before(to) {
			continue
		}
		steady[op]++
		if c.Outcome == "ThrottlingException" || c.Outcome == "Throttling" {
			run.Throttled[op]++
			if !c.Time.Before(last) {
				run.ThrottledLastSweep[op]++
			}
		}
	}
	run.CallsPerSecond = perSecond(steady, to.Sub(from), toFleet)
	run.MonthlyUSD = monthlyBill(perSecond(answered(steady, run.Throttled), to.Sub(from), toFleet), p.higherThroughput)
	run.ColdCallsPerSecond = perSecond(cold, poll, toFleet)
	run.P99MountMs = ms(percentile(latencies, 0.99))
	run.P50MountMs = ms(percentile(latencies, 0.5))
	return run
}

func perSecond(counts map[string]int, window time.Duration, scale float64) map[string]float64 {
	out := map[string]float64{}
	for op, n := range counts {
		out[op] = float64(n) / window.Seconds() * scale
	}
	return out
}

// fleetNodeCounts are the swept fleet sizes, and how many nodes simulate
// each (at most 50, so the machine keeps up).
func fleetSim(nodes int) int { return min(max(nodes/20, 1), 50) }

// TestFleet runs the fleet simulation and writes the report
// (COFFER_FLEET_REPORT=<output prefix>: .md and .json; make bench-fleet).
func TestFleet(t *testing.T) {
	out := os.Getenv("COFFER_FLEET_REPORT")
	if out == "" {
		t.Skip("set COFFER_FLEET_REPORT=<output prefix> (make bench-fleet does)")
	}
	counts := []int{1000, 2000, 5000}
	if v := os.Getenv("COFFER_FLEET_NODES"); v != "" {
		counts = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 100000 {
				t.Fatalf("COFFER_FLEET_NODES=%q: use node counts such as 100,500", v)
			}
			counts = append(counts, n)
		}
	}
	only := os.Getenv("COFFER_FLEET_SUBJECTS") // e.g. "coffer" (default: all)
	const compress = 10
	lat := 20 * time.Millisecond
	setFleetEnv(t)
	pub := quota.Published(false)
	r := &fleetReport{Date: time.Now().UTC().Format("2006-01-02"), Commit: gitCommit(), CPUs: runtime.NumCPU(), Compress: compress,
		LatencyMs: ms(lat), Workload: issueWorkload, Quotas: map[string]float64{}, PricesDate: fleetPricesDate}
	for _, api := range quota.APIs {
		r.Quotas[string(api)] = pub.Of(api)
	}
	r.Quotas["DescribeSecret"] = 40000
	r.Quotas["GetParameters (higher throughput)"] = quota.Published(true).GetParameters
	for _, subject := range []struct {
		name         string
		high, spread bool
	}{{"coffer", false, false}, {"ascp-model", false, false}, {"coffer", true, false}, {"coffer", false, true}} {
		if only != "" && !slices.Contains(strings.Split(only, ","), subject.name) {
			continue
		}
		for _, n := range counts {
			p := fleetParams{nodes: n, simNodes: fleetSim(n), compress: compress, sweeps: 3, higherThroughput: subject.high, spread: subject.spread, latency: lat, workload: issueWorkload}
			run := simulate(t, subject.name, p)
			t.Logf("%s (higher throughput %v, spread %v) %d nodes: %+v", subject.name, subject.high, subject.spread, n, run)
			r.Runs = append(r.Runs, run)
		}
	}
	if only == "" || slices.Contains(strings.Split(only, ","), "coffer-events") {
		r.EventsLatencyMs = ms(eventsLatency)
		grid := eventsGrid(counts)
		if spec := os.Getenv("COFFER_FLEET_EVENT_RUNS"); spec != "" {
			var err error
			if grid, err = steadyGrid(counts, spec); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range grid {
			run := simulateEvents(t, p)
			run.reads = nil
			t.Logf("coffer-events (%s, max age %v, spread %v) %d nodes: %+v", p.pipe.Name, p.maxAge, p.spread, p.nodes, run)
			r.EventRuns = append(r.EventRuns, run)
		}
	}
	js, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(out+".json", append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out+".md", []byte(renderFleet(r)), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Println(renderFleet(r))
}

// setFleetEnv points coffer's SDK configuration at nothing but the fake
// (set per simulated world through the endpoint below).
func setFleetEnv(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

var fleetAPIs = []string{"BatchGetSecretValue", "GetSecretValue", "DescribeSecret", "GetParameters", "AssumeRoleWithWebIdentity"}

func renderFleet(r *fleetReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Fleet simulation of %s at commit %s, %d CPUs. Workload per node: %d pods, %d identities, %d Secrets Manager secrets and %d parameters per pod, rotation poll %v. Sweeps \"aligned\": every node's sweep starts at the same instant (the worst case); \"random phase\": each node's at a random point of the poll. %.0f ms per AWS call. ",
		r.Date, r.Commit, r.CPUs, r.Workload.PodsPerNode, r.Workload.IdentitiesPerNode, r.Workload.Secrets, r.Workload.Params, r.Workload.Poll, r.LatencyMs)
	fmt.Fprintf(&b, "Time is compressed %gx (poll, jitter, cooldown, deadlines, backoff), and N nodes are simulated by at most 50 against quotas scaled by %gx simulated/N (column \"quota scale\"); calls per second are given in the real fleet's terms. Steady state is every sweep after the first.\n\n", r.Compress, r.Compress)
	b.WriteString("| subject | Parameter Store | sweeps | nodes (simulated) | quota scale |")
	for _, api := range fleetAPIs {
		fmt.Fprintf(&b, " %s /s |", api)
	}
	b.WriteString(" throttled (last sweep) | failed remounts | failed first mounts | p50 / p99 remount | API bill per month |\n|---|---|---|---|---|")
	for range fleetAPIs {
		b.WriteString("---|")
	}
	b.WriteString("---|---|---|---|---|\n")
	for _, run := range r.Runs {
		tp := "standard"
		if run.HigherThroughput {
			tp = "higher"
		}
		phase := "aligned"
		if !run.Aligned {
			phase = "random phase"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d (%d) | %.2f |", run.Subject, tp, phase, run.Nodes, run.SimNodes, run.QuotaScale)
		for _, api := range fleetAPIs {
			fmt.Fprintf(&b, " %.1f |", run.CallsPerSecond[api])
		}
		fmt.Fprintf(&b, " %s (%s) | %d of %d | %d of %d | %.0f / %.0f ms | $%.0f |\n", throttleList(run.Throttled), throttleList(run.ThrottledLastSweep), run.FailedMounts, run.Mounts,
			run.FailedColdMounts, run.SimNodes*r.Workload.PodsPerNode, run.P50MountMs, run.P99MountMs, run.MonthlyUSD)
	}
	b.WriteString("\nQuotas (account-wide, per region, per second): ")
	var qs []string
	for api, v := range r.Quotas {
		qs = append(qs, fmt.Sprintf("%s %g", api, v))
	}
	sort.Strings(qs)
	b.WriteString(strings.Join(qs, ", ") + ".\n")
	fmt.Fprintf(&b, "\nAPI bill per month: the steady state's calls AWS answered (throttled calls are assumed not billed), per second, for 30 days at AWS's published prices as of %s: Secrets Manager $0.05 per 10,000 API calls (a `BatchGetSecretValue` counted as one call); Parameter Store API interactions free with standard throughput, $0.05 per 10,000 with higher throughput; STS free. Storage ($0.40 per secret per month, the same for every subject), KMS and data transfer are not included.\n", r.PricesDate)
	if len(r.EventRuns) > 0 {
		b.WriteString(renderEvents(r))
	}
	return b.String()
}

func throttleList(m map[string]int) string {
	var parts []string
	for op, n := range m {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", op, n))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// TestFleetSmoke runs a tiny fleet through the simulation in every test
// run: two nodes, a quota that binds, both subjects; every mount
// succeeds and the report counts what the fake saw. Then the same with
// change events (fleetEventsSmoke).
func TestFleetSmoke(t *testing.T) {
	setFleetEnv(t)
	w := fleetWorkload{PodsPerNode: 4, IdentitiesPerNode: 2, Secrets: 3, Params: 1, Poll: 10 * time.Second}
	for _, subject := range []string{"coffer", "ascp-model"} {
		p := fleetParams{nodes: 2, simNodes: 2, compress: 10, sweeps: 2, latency: time.Millisecond, workload: w}
		run := simulate(t, subject, p)
		if run.FailedMounts != 0 || run.Mounts != 2*w.PodsPerNode {
			t.Errorf("%s: %d of %d steady mounts failed (%s)", subject, run.FailedMounts, run.Mounts, run.FailureSample)
		}
		if run.CallsPerSecond["GetParameters"] <= 0 {
			t.Errorf("%s: no GetParameters counted: %+v", subject, run.CallsPerSecond)
		}
		if subject == "coffer" && run.CallsPerSecond["DescribeSecret"] != 0 {
			t.Errorf("coffer made DescribeSecret calls: %+v", run.CallsPerSecond)
		}
		if subject == "ascp-model" && run.CallsPerSecond["DescribeSecret"] == 0 {
			t.Errorf("the ASCP model made no DescribeSecret calls on remounts: %+v", run.CallsPerSecond)
		}
	}
	fleetEventsSmoke(t)
}
