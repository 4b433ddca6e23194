package auth

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/internal/bounded"
	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/internal/kube/kubetest"
)

func serviceAccount(ns, name, role string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if role != "" {
		sa.Annotations = map[string]string{RoleAnnotation: role}
	}
	return sa
}

// countGets counts ServiceAccount reads against a fake clientset.
func countGets(cs *fake.Clientset) *atomic.Int64 {
	var n atomic.Int64
	cs.PrependReactor("get", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
		n.Add(1)
		return false, nil, nil
	})
	return &n
}

func TestRoleLookup(t *testing.T) {
	const role = "arn:aws:iam::111122223333:role/app"
	cs := fake.NewClientset(
		serviceAccount("team", "app", role),
		serviceAccount("team", "plain", ""),
		serviceAccount("team", "bad", "not-an-arn"),
	)
	gets := countGets(cs)
	clk := clocktesting.NewFakeClock(time.Now())
	l := newRoleLookup(kubetest.Wrap(cs), time.Minute, clk)
	ctx := context.Background()

	tests := map[string]struct {
		ns, name, want, wantErr string
	}{
		"annotated":       {"team", "app", role, ""},
		"no annotation":   {"team", "plain", "", "annotate it (kubectl annotate serviceaccount -n team plain eks.amazonaws.com/role-arn="},
		"bad annotation":  {"team", "bad", "", "is not an IAM role ARN"},
		"no such account": {"team", "ghost", "", "ServiceAccount team/ghost does not exist"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := l.Role(ctx, tc.ns, tc.name)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Role = %q, %v", got, err)
			}
		})
	}

	// Answers are reused: a burst and steady-state mounts make no more calls.
	before := gets.Load()
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := l.Role(ctx, "team", "app"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := gets.Load() - before; n != 0 {
		t.Errorf("cached lookups made %d API calls", n)
	}
	// After the TTL, one call refreshes it; a negative answer is retried sooner.
	clk.Step(2 * time.Minute)
	l.Role(ctx, "team", "app")
	l.Role(ctx, "team", "app")
	if n := gets.Load() - before; n != 1 {
		t.Errorf("after the TTL: %d API calls, want 1", n)
	}
}

func TestRoleLookupBurstMakesOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset(serviceAccount("team", "app", "arn:aws:iam::111122223333:role/app"))
		gets := countGets(cs)
		release := make(chan struct{})
		l := NewRoleLookup(heldGets{kubetest.Wrap(cs), release}, time.Minute)
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				if _, err := l.Role(context.Background(), "team", "app"); err != nil {
					t.Error(err)
				}
			})
		}
		synctest.Wait() // every caller is reading, or waiting for a read
		close(release)
		wg.Wait()
		if n := gets.Load(); n != 1 {
			t.Errorf("a burst of 100 made %d API calls, want 1", n)
		}
	})
}

// heldGets holds every read of a ServiceAccount until release is closed.
// It holds them before the fake clientset, whose reactors run under a
// lock: a caller blocked there would never count as blocked for
// synctest.Wait.
type heldGets struct {
	kube.ServiceAccountsGetter
	release <-chan struct{}
}

func (h heldGets) ServiceAccounts(ns string) kube.ServiceAccountInterface {
	return heldServiceAccounts{h.ServiceAccountsGetter.ServiceAccounts(ns), h.release}
}

type heldServiceAccounts struct {
	kube.ServiceAccountInterface
	release <-chan struct{}
}

func (h heldServiceAccounts) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.ServiceAccount, error) {
	<-h.release
	return h.ServiceAccountInterface.Get(ctx, name, opts)
}

func TestNodeRegion(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{RegionLabel: "eu-west-1"}}}
	unlabelled := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-2"}}
	cs := fake.NewClientset(node, unlabelled)
	var gets atomic.Int64
	cs.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		gets.Add(1)
		return false, nil, nil
	})
	ctx := context.Background()

	configured := &NodeRegion{Configured: "us-east-2", Client: kubetest.Wrap(cs), NodeName: "node-1"}
	if r, err := configured.Region(ctx); r != "us-east-2" || err != nil {
		t.Errorf("configured region: %q, %v", r, err)
	}
	fromNode := &NodeRegion{Client: kubetest.Wrap(cs), NodeName: "node-1"}
	for range 5 {
		if r, err := fromNode.Region(ctx); r != "eu-west-1" || err != nil {
			t.Fatalf("node region: %q, %v", r, err)
		}
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("node looked up %d times, want once per process", n)
	}
	if _, err := (&NodeRegion{Client: kubetest.Wrap(cs), NodeName: "node-2"}).Region(ctx); err == nil || !strings.Contains(err.Error(), "has no topology.kubernetes.io/region label") {
		t.Errorf("unlabelled node: %v", err)
	}
	if _, err := (&NodeRegion{}).Region(ctx); err == nil || !strings.Contains(err.Error(), "--node-name") {
		t.Errorf("no node name: %v", err)
	}
}

func TestCredentialCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clocktesting.NewFakeClock(time.Now())
		c := newCredentialCache(5*time.Minute, 3, clk)
		var fetches atomic.Int64
		fetch := func(exp time.Time) func(context.Context) (aws.Credentials, error) {
			return func(context.Context) (aws.Credentials, error) {
				fetches.Add(1)
				// In the bubble, this returns once every other caller
				// is blocked: the whole burst waits on this fetch.
				time.Sleep(10 * time.Millisecond)
				return aws.Credentials{AccessKeyID: "ASIA", CanExpire: true, Expires: exp}, nil
			}
		}
		ctx := context.Background()

		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				if _, err := c.get(ctx, "k1", fetch(clk.Now().Add(time.Hour))); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := fetches.Load(); n != 1 {
			t.Fatalf("a burst of 100 fetched %d times, want 1", n)
		}
		clk.Step(54 * time.Minute) // still 6 minutes left: reused
		c.get(ctx, "k1", fetch(clk.Now().Add(time.Hour)))
		if n := fetches.Load(); n != 1 {
			t.Errorf("fetched again %d with time left", n)
		}
		clk.Step(2 * time.Minute) // inside the refresh margin: refetched
		c.get(ctx, "k1", fetch(clk.Now().Add(time.Hour)))
		if n := fetches.Load(); n != 2 {
			t.Errorf("fetches = %d, want a refresh inside the margin", n)
		}

		// Bounded: a fourth identity evicts one.
		for _, k := range []string{"k2", "k3", "k4"} {
			c.get(ctx, k, fetch(clk.Now().Add(time.Hour)))
		}
		if n := c.len(); n > 3 {
			t.Errorf("cache holds %d entries, bound is 3", n)
		}

		// A caller's deadline is its own: it does not wait for a slow fetch.
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		slowDone := make(chan struct{})
		slow := func(context.Context) (aws.Credentials, error) {
			defer close(slowDone)
			time.Sleep(300 * time.Millisecond)
			return aws.Credentials{}, nil
		}
		start := time.Now()
		if _, err := c.get(short, "slow", slow); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want deadline exceeded", err)
		}
		if waited := time.Since(start); waited != 20*time.Millisecond {
			t.Errorf("caller waited %v, want its own deadline, 20ms", waited)
		}
		<-slowDone // the fetch goes on for whoever waits next
	})
}

// TestLongSessionNamesStillNameThePod: the pods of one ReplicaSet in a
// long namespace differ only past STS's 64 characters; each still gets its
// own session name (CloudTrail names the pod) and so its own credentials.
func TestLongSessionNamesStillNameThePod(t *testing.T) {
	ns := "payments-production-eu-west-1"
	a, b := sessionName(sessionPod, ns, "checkout-service-worker-5f7b9c8d6-x2x9k"), sessionName(sessionPod, ns, "checkout-service-worker-5f7b9c8d6-q8m4z")
	if a == b {
		t.Errorf("two pods share the session name %q", a)
	}
	for _, s := range []string{a, b} {
		if !validSession(s) {
			t.Errorf("session name %q is not a valid STS session name", s)
		}
	}
	if ka, kb := credentialKey("irsa|"+ns, a), credentialKey("irsa|"+ns, b); ka == kb {
		t.Errorf("two pods share the credential key %q", ka)
	}
}

// validSession: what STS accepts as a RoleSessionName.
func validSession(s string) bool {
	return len(s) >= 2 && len(s) <= maxSessionName && !sessionUnsafe.MatchString(s)
}

func TestSessionName(t *testing.T) {
	long := strings.Repeat("p", 100)
	tests := map[string]struct {
		kind         sessionKind
		ns, name     string
		want         string
		wantDigestOf string // want the digested form starting so
	}{
		"pod":                  {kind: sessionPod, ns: "team", name: "app-0", want: "coffer-team.app-0"},
		"pod with dots":        {kind: sessionPod, ns: "team", name: "web.v2-0", want: "coffer-team.web.v2-0"},
		"serviceaccount scope": {kind: sessionServiceAccount, ns: "team", name: "app", want: "coffer-team@sa.app"},
		"sync":                 {kind: sessionSync, ns: "team", name: "app", want: "coffer-team@sync.app"},
		"exactly 64":           {kind: sessionPod, ns: "n", name: strings.Repeat("p", 55), want: "coffer-n." + strings.Repeat("p", 55)},
		"too long":             {kind: sessionPod, ns: "n", name: long, wantDigestOf: ("coffer-n." + long)[:47]},
		"unsafe":               {kind: sessionPod, ns: "team", name: "a/b c", wantDigestOf: "coffer-team.a-b-c="},
		"uppercase":            {kind: sessionPod, ns: "team", name: "App", wantDigestOf: "coffer-team.App="},
		"empty pod":            {kind: sessionPod, ns: "team", name: "", wantDigestOf: "coffer-team.="},
		"not UTF-8":            {kind: sessionPod, ns: "team", name: "\xff\xfe", wantDigestOf: "coffer-team.-="},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := sessionName(tc.kind, tc.ns, tc.name)
			if !validSession(got) {
				t.Errorf("sessionName = %q, not a valid STS session name", got)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("sessionName = %q, want %q", got, tc.want)
			}
			if tc.wantDigestOf != "" && (!strings.HasPrefix(got, tc.wantDigestOf) || !strings.Contains(got, sessionDigestMark)) {
				t.Errorf("sessionName = %q, want a digested name starting %q", got, tc.wantDigestOf)
			}
		})
	}
}

// TestSessionNamesDoNotCollide: pairs that the former coffer-<ns>-<pod>
// gave one name (so one CloudTrail identity and one set of cached
// credentials) get two. Each pair failed before the encoding changed.
func TestSessionNamesDoNotCollide(t *testing.T) {
	type who struct {
		kind     sessionKind
		ns, name string
	}
	long := strings.Repeat("a", 60)
	for name, pair := range map[string][2]who{
		"namespace and pod split differently":    {{sessionPod, "team-a", "web"}, {sessionPod, "team", "a-web"}},
		"sync controller and a pod sync-<sa>":    {{sessionSync, "team", "app"}, {sessionPod, "team", "sync-app"}},
		"sync controller and a pod <sa>":         {{sessionSync, "team", "app"}, {sessionPod, "team", "app"}},
		"serviceaccount scope and a pod sa-<sa>": {{sessionServiceAccount, "team", "app"}, {sessionPod, "team", "sa-app"}},
		"serviceaccount scope and sync":          {{sessionServiceAccount, "team", "app"}, {sessionSync, "team", "app"}},
		"unsafe characters folded":               {{sessionPod, "team", "a/b"}, {sessionPod, "team", "a-b"}},
		"unsafe characters folded alike":         {{sessionPod, "team", "a/b"}, {sessionPod, "team", "a b"}},
		"trailing dash trimmed":                  {{sessionPod, "team", "a-"}, {sessionPod, "team", "a"}},
		"long sync names differing at the end":   {{sessionSync, "team", long + "-one"}, {sessionSync, "team", long + "-two"}},
		"long names split differently":           {{sessionPod, "team-" + long, "web"}, {sessionPod, "team", long + "-web"}},
		// A readable name shaped like a digested one: readable names never
		// hold the digest mark.
		"readable name shaped like a digest": {{sessionPod, "n", strings.Repeat("p", 38) + "-AAAAAAAAAAAAAAAA"}, {sessionPod, "n", strings.Repeat("p", 100)}},
	} {
		a, b := sessionName(pair[0].kind, pair[0].ns, pair[0].name), sessionName(pair[1].kind, pair[1].ns, pair[1].name)
		if a == b {
			t.Errorf("%s: %+v and %+v share the session name %q", name, pair[0], pair[1], a)
		}
		for _, s := range []string{a, b} {
			if !validSession(s) {
				t.Errorf("%s: %q is not a valid STS session name", name, s)
			}
		}
	}
}

// TestSessionNameIsInjective: over generated workloads (namespaces and
// names from alphabets rich in separators, short and long, every kind),
// no two distinct workloads share a session name, and every name is one
// STS accepts. The generator is seeded: the same names every run.
func TestSessionNameIsInjective(t *testing.T) {
	rng := rand.New(rand.NewPCG(26, 64))
	const nsAlphabet, nameAlphabet, oddAlphabet = "ab-0", "ab-.0", "a-._@=/ A\x00"
	gen := func(alphabet string, max int) string {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	kinds := []sessionKind{sessionPod, sessionServiceAccount, sessionSync}
	seen := map[string]string{}
	for i := range 200000 {
		ns, name := gen(nsAlphabet, 8), gen(nameAlphabet, 8)
		switch i % 10 {
		case 0: // long: the digested form
			ns, name = gen(nsAlphabet, 40), gen(nameAlphabet, 60)
		case 1: // anything at all
			ns, name = gen(oddAlphabet, 6), gen(oddAlphabet, 6)
		}
		kind := kinds[rng.IntN(len(kinds))]
		who := fmt.Sprintf("%q %q %q", kind, ns, name)
		s := sessionName(kind, ns, name)
		if !validSession(s) {
			t.Fatalf("%s: %q is not a valid STS session name", who, s)
		}
		if other, ok := seen[s]; ok && other != who {
			t.Fatalf("%s and %s share the session name %q", who, other, s)
		}
		seen[s] = who
	}
}

// TestCredentialCacheEvictsLeastRecentlyUsed: a full cache drops the
// identity used least recently, not the one expiring soonest (as it did
// before): a busy identity whose credentials expire first keeps them, and
// an idle one goes.
func TestCredentialCacheEvictsLeastRecentlyUsed(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	c := newCredentialCache(5*time.Minute, 2, clk)
	creds := func(life time.Duration) aws.Credentials {
		return aws.Credentials{AccessKeyID: "ASIA", CanExpire: true, Expires: clk.Now().Add(life)}
	}
	c.store("idle", creds(10*time.Hour))
	c.store("busy", creds(time.Hour))
	if _, ok := c.lookup("busy"); !ok {
		t.Fatal("busy identity not cached")
	}
	c.store("new", creds(10*time.Hour))
	for key, want := range map[string]bool{"idle": false, "busy": true, "new": true} {
		if _, ok := c.lookup(key); ok != want {
			t.Errorf("%s cached = %v, want %v", key, ok, want)
		}
	}
	// Credentials too close to expiry are not stored at all.
	c.store("lapsing", creds(time.Minute))
	if _, ok := c.lookup("lapsing"); ok {
		t.Error("credentials within the refresh margin cached")
	}
}

// TestRoleLookupEvictsLeastRecentlyUsed: a full cache drops the
// ServiceAccount looked up least recently; before, it emptied itself, so
// every ServiceAccount's next mount read the API again.
func TestRoleLookupEvictsLeastRecentlyUsed(t *testing.T) {
	const role = "arn:aws:iam::111122223333:role/app"
	cs := fake.NewClientset(serviceAccount("team", "a", role), serviceAccount("team", "b", role), serviceAccount("team", "c", role))
	gets := countGets(cs)
	clk := clocktesting.NewFakeClock(time.Now())
	l := newRoleLookup(kubetest.Wrap(cs), time.Minute, clk)
	l.entries = bounded.NewLRU[roleEntry](2, clk)
	ctx := context.Background()
	for _, name := range []string{"a", "b", "a", "c"} {
		if _, err := l.Role(ctx, "team", name); err != nil {
			t.Fatal(err)
		}
	}
	if n := gets.Load(); n != 3 {
		t.Fatalf("%d API calls for three ServiceAccounts, want 3", n)
	}
	for _, tc := range []struct {
		name  string
		calls int64
	}{{"a", 0}, {"c", 0}, {"b", 1}} {
		before := gets.Load()
		if _, err := l.Role(ctx, "team", tc.name); err != nil {
			t.Fatal(err)
		}
		if n := gets.Load() - before; n != tc.calls {
			t.Errorf("%s: %d API calls, want %d", tc.name, n, tc.calls)
		}
	}
}
