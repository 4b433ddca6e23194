package socket_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/server"
	"github.com/coffer-csi/coffer/tests/fakeaws"
	"github.com/coffer-csi/coffer/wiring"
)

// Fault injection through the AWS fake: what AWS and the network do to a
// provider on a bad day, and what the user sees.

func TestThrottlingStormIsBoundedAndNamed(t *testing.T) {
	h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Server.MountTimeout = 5 * time.Second }})
	h.fake.PutSecretString(primary, "storm/a", "v")
	h.fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultThrottle})
	_, err := h.mount(t, map[string]string{"objects": "- {objectName: storm/a, objectType: secretsmanager}"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("err = %v, want ResourceExhausted", err)
	}
	for _, want := range []string{"throttled by AWS after retries", "secretsmanager:GetSecretValue", "ThrottlingException"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// With the node's quota, as coffer serve runs, the SDK does not retry
	// a throttled call at once: coffer sends it again after a jittered
	// backoff (at least a tenth of the quota's 500 ms) while the mount's
	// deadline leaves room for twice the wait. Retried, never in a burst.
	var sent []time.Time
	for _, c := range h.fake.Calls() {
		if c.Service == fakeaws.ServiceSecretsManager && c.Operation == "GetSecretValue" {
			sent = append(sent, c.Time)
		}
	}
	if len(sent) < 2 {
		t.Errorf("attempts = %d, want the call sent again", len(sent))
	}
	for i := 1; i < len(sent); i++ {
		if gap := sent[i].Sub(sent[i-1]); gap < 50*time.Millisecond {
			t.Errorf("attempt %d was sent %v after the one before, want at least 50ms (the quota's backoff)", i+1, gap)
		}
	}
}

func TestTransientFaultsAreRetried(t *testing.T) {
	for name, kind := range map[string]fakeaws.FaultKind{"connection reset": fakeaws.FaultReset, "5xx": fakeaws.FaultServerError, "throttled once": fakeaws.FaultThrottle} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.fake.PutSecretString(primary, "flaky/a", "v")
			h.fake.PutParameter(primary, "/flaky/p", "v", "String")
			h.fake.InjectFault(fakeaws.Fault{Kind: kind, Times: 2})
			if _, err := h.mount(t, map[string]string{"objects": "- {objectName: flaky/a, objectType: secretsmanager}\n- {objectName: /flaky/p, objectType: ssmparameter}"}); err != nil {
				t.Fatalf("one failure per call, then success: %v", err)
			}
		})
	}
	t.Run("persistent 5xx", func(t *testing.T) {
		h := newHarness(t)
		h.fake.PutSecretString(primary, "flaky/a", "v")
		h.fake.InjectFault(fakeaws.Fault{Kind: fakeaws.FaultServerError})
		_, err := h.mount(t, map[string]string{"objects": "- {objectName: flaky/a, objectType: secretsmanager}"})
		if err == nil || !strings.Contains(err.Error(), "the service did not answer") || !strings.Contains(err.Error(), "set failoverRegion") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestRegionOutageDuringRotation(t *testing.T) {
	objects := "- {objectName: app/db, objectType: secretsmanager, objectAlias: db}\n- {objectName: /app/host, objectType: ssmparameter, objectAlias: host}"
	seed := func(h *harness) {
		for _, r := range []string{primary, failover} {
			h.fake.PutSecretString(r, "app/db", "db-"+r)
			h.fake.PutParameter(r, "/app/host", "host-"+r, "String")
		}
	}
	t.Run("with a failover region the rotation succeeds", func(t *testing.T) {
		h := newHarness(t)
		seed(h)
		params := map[string]string{"objects": objects, "failoverRegion": failover}
		first, err := h.mount(t, params)
		if err != nil {
			t.Fatal(err)
		}
		h.fake.SetRegionDown(primary, true)
		second, err := h.mount(t, params, first.ObjectVersion...)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := files(second)
		if string(got["db"].Contents) != "db-"+failover || string(got["host"].Contents) != "host-"+failover {
			t.Errorf("rotation during the outage: %q %q", got["db"].Contents, got["host"].Contents)
		}
	})
	t.Run("without one it fails whole, so the driver keeps the files", func(t *testing.T) {
		h := newHarness(t)
		seed(h)
		params := map[string]string{"objects": objects}
		first, err := h.mount(t, params)
		if err != nil {
			t.Fatal(err)
		}
		h.fake.SetRegionDown(primary, true)
		resp, err := h.mount(t, params, first.ObjectVersion...)
		if err == nil || resp != nil {
			t.Fatalf("rotation during an outage returned %v, %v", resp, err)
		}
	})
}

func TestHangingCredentialSources(t *testing.T) {
	t.Run("STS hangs", func(t *testing.T) {
		h, c := newWorkloadHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Server.MountTimeout = 2 * time.Second }})
		seedTeams(h.fake)
		h.fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSTS, Kind: fakeaws.FaultHang})
		start := time.Now()
		_, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "p", secretOf("team-a")))
		// Whichever ends first, the mount's wait or the STS call, says so.
		if status.Code(err) != codes.DeadlineExceeded || !(strings.Contains(err.Error(), "waiting for AWS credentials") || strings.Contains(err.Error(), "STS did not answer")) {
			t.Errorf("err = %v", err)
		}
		if waited := time.Since(start); waited > 10*time.Second {
			t.Errorf("a hanging STS held the mount %v, past its deadline", waited)
		}
		// STS recovers: the next mount works.
		h.fake.ClearFaults()
		if _, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "p", secretOf("team-a"))); err != nil {
			t.Errorf("after STS recovered: %v", err)
		}
	})
	t.Run("Pod Identity agent hangs", func(t *testing.T) {
		// The agent's rounds (--pod-identity-timeout, --pod-identity-attempts;
		// 12 s by default) shortened to fit in the mount's deadline, so that
		// the agent's own timeout is what the user sees.
		h, c := newWorkloadHarness(t, harnessOptions{config: func(c *wiring.Config) {
			c.Server.MountTimeout = 5 * time.Second
			c.Identity.PodIdentityTimeout, c.Identity.PodIdentityAttempts = 500*time.Millisecond, 2
		}})
		seedTeams(h.fake)
		h.fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceEKSAuth, Kind: fakeaws.FaultHang})
		params := secretOf("team-p")
		params["usePodIdentity"] = "true"
		_, err := h.mountAttrs(t, c.podAttrs("team-p", "app", "p", params))
		if err == nil || !strings.Contains(err.Error(), "Pod Identity agent did not answer") {
			t.Errorf("err = %v", err)
		}
	})
}

// offsetClock is a clock running ahead of real time by an adjustable offset.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func TestExpiredCredentialsRefreshedOnce(t *testing.T) {
	clock := &offsetClock{}
	h, c := newWorkloadHarness(t, harnessOptions{fakeNow: clock.now, credentialLifetime: time.Minute, config: func(c *wiring.Config) { c.Identity.RefreshMargin = time.Second }})
	seedTeams(h.fake)
	mount := func() error {
		_, err := h.mountAttrs(t, c.podAttrs("team-a", "app", "p", secretOf("team-a")))
		return err
	}
	if err := mount(); err != nil {
		t.Fatal(err)
	}
	// AWS's clock says the session is over while coffer still holds it
	// (a clock skew, a revoked session): refreshed once, and it works.
	clock.advance(61 * time.Second)
	if err := mount(); err != nil {
		t.Fatalf("after the credentials expired: %v", err)
	}
	if n := stsCalls(h.fake, "AssumeRoleWithWebIdentity"); n != 2 {
		t.Errorf("STS calls = %d, want 2", n)
	}
	// Credentials refused every time: one refresh, then the error.
	h.fake.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSecretsManager, Kind: fakeaws.FaultError, Code: "ExpiredTokenException", Message: "The security token included in the request is expired"})
	err := mount()
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "AWS refused the credentials") {
		t.Errorf("err = %v", err)
	}
	if n := stsCalls(h.fake, "AssumeRoleWithWebIdentity"); n != 3 {
		t.Errorf("STS calls = %d, want 3: one refresh, not a loop", n)
	}
}

func TestLimits(t *testing.T) {
	t.Run("attributes size", func(t *testing.T) {
		h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Limits.MaxAttributesBytes = 2048 }})
		_, err := h.mount(t, map[string]string{"objects": "- {objectName: a, objectType: secretsmanager}", "padding": strings.Repeat("x", 4096)})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "--max-attributes-bytes") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("value size", func(t *testing.T) {
		h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Limits.MaxValueBytes = 100 }})
		h.fake.PutSecretString(primary, "big", strings.Repeat("b", 101))
		h.fake.PutSecretString(primary, "small", "s")
		_, err := h.mount(t, map[string]string{"objects": "- {objectName: big, objectType: secretsmanager}\n- {objectName: small, objectType: secretsmanager}"})
		if err == nil || !strings.Contains(err.Error(), "objects[0] (big): a value is 101 bytes, over the limit of 100 (--max-value-bytes)") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("concurrent mounts queue for a slot", func(t *testing.T) {
		h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Server.MaxConcurrentMounts = 1 }})
		h.fake.PutSecretString(primary, "q", "v")
		h.fake.SetLatency(50 * time.Millisecond)
		var wg sync.WaitGroup
		errs := make(chan error, 5)
		for range 5 {
			wg.Go(func() {
				if _, err := h.mount(t, map[string]string{"objects": "- {objectName: q, objectType: secretsmanager}"}); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("queued mount failed: %v", err)
		}
	})
}

// blockingMounter holds every Mount until released: the slot logic under
// test is the server's own, independent of what a mount does. It tells
// entered of each Mount it holds (a mount in it has its slot).
type blockingMounter struct{ release, entered chan struct{} }

func (b blockingMounter) Mount(ctx context.Context, _ provider.Request) (*provider.Result, error) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return &provider.Result{}, nil
}

func TestMountWithoutASlotInTime(t *testing.T) {
	m := blockingMounter{release: make(chan struct{}), entered: make(chan struct{}, 2)}
	srv := &server.Server{Mounter: m, MountTimeout: time.Minute, Slots: server.NewSlots(1)}
	go srv.Mount(context.Background(), &v1alpha1.MountRequest{})
	<-m.entered // it has the only slot
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := srv.Mount(ctx, &v1alpha1.MountRequest{})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--max-concurrent-mounts") {
		t.Errorf("err = %v", err)
	}
	close(m.release)
}
