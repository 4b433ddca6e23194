package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

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
	l := NewRoleLookup(kubetest.Wrap(cs), time.Minute)
	now := time.Now()
	l.now = func() time.Time { return now }
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
	now = now.Add(2 * time.Minute)
	l.Role(ctx, "team", "app")
	l.Role(ctx, "team", "app")
	if n := gets.Load() - before; n != 1 {
		t.Errorf("after the TTL: %d API calls, want 1", n)
	}
}

func TestRoleLookupBurstMakesOneCall(t *testing.T) {
	cs := fake.NewClientset(serviceAccount("team", "app", "arn:aws:iam::111122223333:role/app"))
	gets := countGets(cs)
	release := make(chan struct{})
	cs.PrependReactor("get", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil
	})
	l := NewRoleLookup(kubetest.Wrap(cs), time.Minute)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := l.Role(context.Background(), "team", "app"); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := gets.Load(); n != 1 {
		t.Errorf("a burst of 100 made %d API calls, want 1", n)
	}
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
	now := time.Now()
	c := newCredentialCache(5*time.Minute, 3)
	c.now = func() time.Time { return now }
	var fetches atomic.Int64
	fetch := func(exp time.Time) func(context.Context) (aws.Credentials, error) {
		return func(context.Context) (aws.Credentials, error) {
			fetches.Add(1)
			time.Sleep(10 * time.Millisecond) // let a burst pile up
			return aws.Credentials{AccessKeyID: "ASIA", CanExpire: true, Expires: exp}, nil
		}
	}
	ctx := context.Background()

	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := c.get(ctx, "k1", fetch(now.Add(time.Hour))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("a burst of 100 fetched %d times, want 1", n)
	}
	now = now.Add(54 * time.Minute) // still 6 minutes left: reused
	c.get(ctx, "k1", fetch(now.Add(time.Hour)))
	if n := fetches.Load(); n != 1 {
		t.Errorf("fetched again %d with time left", n)
	}
	now = now.Add(2 * time.Minute) // inside the refresh margin: refetched
	c.get(ctx, "k1", fetch(now.Add(time.Hour)))
	if n := fetches.Load(); n != 2 {
		t.Errorf("fetches = %d, want a refresh inside the margin", n)
	}

	// Bounded: a fourth identity evicts one.
	for _, k := range []string{"k2", "k3", "k4"} {
		c.get(ctx, k, fetch(now.Add(time.Hour)))
	}
	if n := c.len(); n > 3 {
		t.Errorf("cache holds %d entries, bound is 3", n)
	}

	// A caller's deadline is its own: it does not wait for a slow fetch.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	slow := func(context.Context) (aws.Credentials, error) {
		time.Sleep(300 * time.Millisecond)
		return aws.Credentials{}, nil
	}
	start := time.Now()
	if _, err := c.get(short, "slow", slow); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	if waited := time.Since(start); waited > 200*time.Millisecond {
		t.Errorf("caller waited %v past its deadline", waited)
	}
}

// TestLongSessionNamesStillNameThePod: the pods of one ReplicaSet in a
// long namespace differ only past STS's 64 characters; each still gets its
// own session name (CloudTrail names the pod) and so its own credentials.
func TestLongSessionNamesStillNameThePod(t *testing.T) {
	ns := "payments-production-eu-west-1"
	a, b := sessionName(ns, "checkout-service-worker-5f7b9c8d6-x2x9k"), sessionName(ns, "checkout-service-worker-5f7b9c8d6-q8m4z")
	if a == b {
		t.Errorf("two pods share the session name %q", a)
	}
	for _, s := range []string{a, b} {
		if len(s) > 64 || sessionUnsafe.MatchString(s) {
			t.Errorf("session name %q is not a valid STS session name", s)
		}
	}
	if ka, kb := credentialKey("irsa|"+ns, a), credentialKey("irsa|"+ns, b); ka == kb {
		t.Errorf("two pods share the credential key %q", ka)
	}
}

func TestSessionName(t *testing.T) {
	tests := map[string]struct{ ns, pod, want string }{
		"plain":    {"team", "app-0", "coffer-team-app-0"},
		"too long": {"n", strings.Repeat("p", 100), ("coffer-n-" + strings.Repeat("p", 100))[:55] + "-ce5fceed"},
		"unsafe":   {"team", "a/b c", "coffer-team-a-b-c"},
	}
	// coffer sync reads as pod sync-<ServiceAccount>: two long
	// ServiceAccounts that differ only at the end get two sessions.
	long := strings.Repeat("a", 60)
	one, two := sessionName("team", "sync-"+long+"-one"), sessionName("team", "sync-"+long+"-two")
	if one == two || len(one) != maxSessionName || !strings.HasPrefix(one, "coffer-team-sync-aaa") {
		t.Errorf("long sync session names %q and %q", one, two)
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := sessionName(tc.ns, tc.pod); got != tc.want {
				t.Errorf("sessionName = %q, want %q", got, tc.want)
			}
		})
	}
}
