package secretsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/coffer-csi/coffer/internal/kube/kubetest"
)

// tokenAPI answers TokenRequests with numbered tokens that live as long as
// asked, by clk, counting them.
func tokenAPI(clk *clocktesting.FakeClock) (*fake.Clientset, *atomic.Int64) {
	cs := fake.NewClientset()
	var n atomic.Int64
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		req := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest)
		life := time.Duration(*req.Spec.ExpirationSeconds) * time.Second
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{
			Token:               fmt.Sprint("token-", n.Add(1)),
			ExpirationTimestamp: metav1.NewTime(clk.Now().Add(life)),
		}}, nil
	})
	return cs, &n
}

func TestTokenSourceReusesUntilHalfLife(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	cs, minted := tokenAPI(clk)
	ts := &TokenSource{ServiceAccounts: kubetest.Wrap(cs), TTL: time.Hour, Clock: clk}
	token := func() string {
		t.Helper()
		out, err := ts.Tokens(context.Background(), "team", "reader", []string{"sts.amazonaws.com"})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]authenticationv1.TokenRequestStatus
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		return m["sts.amazonaws.com"].Token
	}
	for _, tc := range []struct {
		step time.Duration
		want string
	}{
		{0, "token-1"},
		{30*time.Minute - time.Second, "token-1"},
		{time.Second, "token-2"}, // half of the hour gone
		{time.Minute, "token-2"},
	} {
		clk.Step(tc.step)
		if got := token(); got != tc.want {
			t.Errorf("after %v more: %s, want %s", tc.step, got, tc.want)
		}
	}
	if n := minted.Load(); n != 2 {
		t.Errorf("%d tokens minted, want 2", n)
	}
}

// TestTokenSourceEvictsLeastRecentlyUsed: a full cache drops the token used
// least recently; before, it emptied itself, and every ServiceAccount's next
// sync minted a token again.
func TestTokenSourceEvictsLeastRecentlyUsed(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	cs, minted := tokenAPI(clk)
	ts := &TokenSource{ServiceAccounts: kubetest.Wrap(cs), Clock: clk, maxTokens: 2}
	get := func(sa string) {
		t.Helper()
		if _, err := ts.Tokens(context.Background(), "team", sa, []string{"sts.amazonaws.com"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sa := range []string{"a", "b", "a", "c"} {
		get(sa)
	}
	if n := minted.Load(); n != 3 {
		t.Fatalf("%d tokens minted for three ServiceAccounts, want 3", n)
	}
	for _, tc := range []struct {
		sa     string
		minted int64
	}{{"a", 0}, {"c", 0}, {"b", 1}} {
		before := minted.Load()
		get(tc.sa)
		if n := minted.Load() - before; n != tc.minted {
			t.Errorf("%s: %d tokens minted, want %d", tc.sa, n, tc.minted)
		}
	}
}

// TestTokenSourceSaysWhoRefused: a TokenRequest refused by RBAC names the
// permission; one refused by an admission policy (the chart's allows only
// sync.controller.tokenAudiences) says so, and names the audience, rather
// than sending the operator to RBAC.
func TestTokenSourceSaysWhoRefused(t *testing.T) {
	sas := schema.GroupResource{Resource: "serviceaccounts"}
	for name, tc := range map[string]struct {
		refusal  error
		want     string
		wantRBAC bool
	}{
		"by RBAC": {
			apierrors.NewForbidden(sas, "reader", errors.New(`User "system:serviceaccount:coffer:coffer-sync" cannot create resource "serviceaccounts/token" in API group "" in the namespace "team"`)),
			"coffer may not request tokens of ServiceAccount team/reader (RBAC: coffer-controller sync needs create on serviceaccounts/token)", true,
		},
		"by an admission policy": {
			apierrors.NewForbidden(sas, "reader", errors.New("ValidatingAdmissionPolicy 'coffer-sync-token-audiences' with binding 'coffer-sync-token-audiences' denied request: coffer-controller sync may request ServiceAccount tokens only for the audiences it exchanges with AWS (sts.amazonaws.com)")),
			"an admission policy or webhook refused a token of ServiceAccount team/reader for audience pods.eks.amazonaws.com: ", false,
		},
	} {
		t.Run(name, func(t *testing.T) {
			cs := fake.NewClientset()
			cs.PrependReactor("create", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, tc.refusal
			})
			ts := &TokenSource{ServiceAccounts: kubetest.Wrap(cs)}
			_, err := ts.Tokens(context.Background(), "team", "reader", []string{"pods.eks.amazonaws.com"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "(RBAC:") != tc.wantRBAC {
				t.Errorf("Tokens = %v, want %q", err, tc.want)
			}
		})
	}
}
