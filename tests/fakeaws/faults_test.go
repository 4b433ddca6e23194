package fakeaws_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// getSecret and getParam are the calls the fault tests poke at.
func getSecret(ctx context.Context, c *secretsmanager.Client) error {
	_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
	return err
}

func getParam(ctx context.Context, c *ssm.Client) error {
	_, err := c.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/p"}})
	return err
}

func faultEnv(t *testing.T) *env {
	e := newEnv(t)
	for _, r := range []string{east, west} {
		e.srv.PutSecretString(r, "s", "v")
		e.srv.PutParameter(r, "/p", "v", "String")
	}
	return e
}

func TestFaultKinds(t *testing.T) {
	tests := []struct {
		name        string
		fault       fakeaws.Fault
		smCode      string
		ssmCode     string
		status      int
		wantOutcome string
	}{
		{"throttle", fakeaws.Fault{Kind: fakeaws.FaultThrottle}, "ThrottlingException", "ThrottlingException", 400, "ThrottlingException"},
		{"server error", fakeaws.Fault{Kind: fakeaws.FaultServerError}, "InternalServiceError", "InternalServerError", 500, ""},
		{"decryption failure", fakeaws.Fault{Kind: fakeaws.FaultDecryptionFailure}, "DecryptionFailure", "InvalidKeyId", 400, ""},
		{"custom error", fakeaws.Fault{Kind: fakeaws.FaultError, Code: "LimitExceededException", Status: 400, Message: "too many"}, "LimitExceededException", "LimitExceededException", 400, "LimitExceededException"},
		{"reset", fakeaws.Fault{Kind: fakeaws.FaultReset}, "<non-API>", "<non-API>", 0, fakeaws.OutcomeReset},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := faultEnv(t)
			e.srv.InjectFault(tc.fault)
			ctx := context.Background()

			err := getSecret(ctx, e.sm(east, admin))
			wantCode(t, err, tc.smCode)
			if httpStatus(err) != tc.status {
				t.Errorf("status = %d, want %d", httpStatus(err), tc.status)
			}
			wantCode(t, getParam(ctx, e.ssm(east, admin)), tc.ssmCode)

			// Times == 0 keeps failing until cleared.
			wantCode(t, getSecret(ctx, e.sm(east, admin)), tc.smCode)
			e.srv.ClearFaults()
			if err := getSecret(ctx, e.sm(east, admin)); err != nil {
				t.Errorf("after ClearFaults: %v", err)
			}
			if tc.wantOutcome != "" {
				if n := e.srv.CountCalls(func(c fakeaws.Call) bool { return c.Outcome == tc.wantOutcome }); n != 3 {
					t.Errorf("%d calls with outcome %s, want 3", n, tc.wantOutcome)
				}
			}
		})
	}
}

func TestFaultSelectorsAndTimes(t *testing.T) {
	e := faultEnv(t)
	ctx := context.Background()
	e.srv.InjectFault(fakeaws.Fault{Region: west, Service: fakeaws.ServiceSecretsManager, Operation: "GetSecretValue", Kind: fakeaws.FaultThrottle, Times: 2})

	// Other regions, services and operations are unaffected.
	if err := getSecret(ctx, e.sm(east, admin)); err != nil {
		t.Errorf("east: %v", err)
	}
	if err := getParam(ctx, e.ssm(west, admin)); err != nil {
		t.Errorf("ssm west: %v", err)
	}
	if _, err := e.sm(west, admin).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("s")}); err != nil {
		t.Errorf("describe west: %v", err)
	}
	// Exactly Times matching calls fail.
	west := e.sm(west, admin)
	for i, want := range []string{"ThrottlingException", "ThrottlingException", "", ""} {
		if got := errCode(getSecret(ctx, west)); got != want {
			t.Errorf("call %d: %q, want %q", i, got, want)
		}
	}

	// A fault for one access key only.
	e.srv.AddIdentity(fakeaws.AllowAll("AKIDOTHER", "other"))
	e.srv.InjectFault(fakeaws.Fault{AccessKeyID: "AKIDOTHER", Kind: fakeaws.FaultServerError, Times: 1})
	if err := getSecret(ctx, e.sm(east, admin)); err != nil {
		t.Errorf("admin: %v", err)
	}
	wantCode(t, getSecret(ctx, e.sm(east, creds{"AKIDOTHER", "other", ""})), "InternalServiceError")
}

func TestRetryingClientRecoversFromTransientFaults(t *testing.T) {
	e := faultEnv(t)
	e.srv.InjectFault(fakeaws.Fault{Kind: fakeaws.FaultThrottle, Times: 1})
	e.srv.InjectFault(fakeaws.Fault{Kind: fakeaws.FaultReset, Times: 1})
	client := secretsmanager.NewFromConfig(fakeaws.AWSConfig(e.ts.URL, east, adminKey, adminPass, ""), func(o *secretsmanager.Options) {
		o.RetryMaxAttempts = 3
	})
	if err := getSecret(context.Background(), client); err != nil {
		t.Fatalf("with retries: %v", err)
	}
	if n := e.srv.Count(fakeaws.ServiceSecretsManager, "GetSecretValue"); n != 3 {
		t.Errorf("%d attempts recorded, want 3", n)
	}
}

func TestFaultHang(t *testing.T) {
	e := faultEnv(t)
	e.srv.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSSM, Kind: fakeaws.FaultHang, Times: 1})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := getParam(ctx, e.ssm(east, admin))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("returned after %v, before the deadline", d)
	}
	if n := e.srv.CountCalls(func(c fakeaws.Call) bool { return c.Outcome == fakeaws.OutcomeHang }); n != 1 {
		t.Errorf("%d hung calls recorded, want 1", n)
	}
	// The fault was used up: the next call works.
	if err := getParam(context.Background(), e.ssm(east, admin)); err != nil {
		t.Error(err)
	}
}

func TestFaultHangReleasedByClose(t *testing.T) {
	srv := fakeaws.New(fakeaws.Options{})
	srv.AddIdentity(fakeaws.AllowAll(adminKey, adminPass))
	srv.InjectFault(fakeaws.Fault{Kind: fakeaws.FaultHang})
	e := &env{srv: srv}
	e.ts = httptestServer(t, srv)

	done := make(chan error, 1)
	go func() { done <- getSecret(context.Background(), e.sm(east, admin)) }()
	waitFor(t, func() bool { return srv.Count(fakeaws.ServiceSecretsManager, "") == 1 })
	srv.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a released hang should not look like success")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hung request")
	}
}

func TestRegionDown(t *testing.T) {
	e := faultEnv(t)
	ctx := context.Background()
	e.srv.SetRegionDown(east, true)

	err := getSecret(ctx, e.sm(east, admin))
	if httpStatus(err) != http.StatusServiceUnavailable || errCode(err) != "ServiceUnavailableException" {
		t.Errorf("east: status %d (%v), want 503 ServiceUnavailableException", httpStatus(err), err)
	}
	if httpStatus(getParam(ctx, e.ssm(east, admin))) != http.StatusServiceUnavailable {
		t.Error("ssm east should be down too")
	}
	// Even bad credentials get the outage: the endpoint is gone before auth.
	if httpStatus(getSecret(ctx, e.sm(east, creds{"AKIDNOBODY", "x", ""}))) != http.StatusServiceUnavailable {
		t.Error("unauthenticated call to a down region should get 503")
	}
	if err := getSecret(ctx, e.sm(west, admin)); err != nil {
		t.Errorf("west should be up: %v", err)
	}
	if n := e.srv.CountCalls(func(c fakeaws.Call) bool { return c.Outcome == fakeaws.OutcomeDown }); n != 3 {
		t.Errorf("%d calls recorded as region-down, want 3", n)
	}

	e.srv.SetRegionDown(east, false)
	if err := getSecret(ctx, e.sm(east, admin)); err != nil {
		t.Errorf("east after recovery: %v", err)
	}
}

func TestLatency(t *testing.T) {
	e := faultEnv(t)
	ctx := context.Background()
	const d = 150 * time.Millisecond

	e.srv.SetLatency(d)
	start := time.Now()
	if err := getSecret(ctx, e.sm(east, admin)); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got < d {
		t.Errorf("call took %v, want >= %v", got, d)
	}

	// Per-operation latency overrides the global one.
	e.srv.SetLatency(0)
	e.srv.SetOperationLatency(fakeaws.ServiceSSM, "GetParameters", d)
	start = time.Now()
	if err := getSecret(ctx, e.sm(east, admin)); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got >= d {
		t.Errorf("unaffected operation took %v", got)
	}

	// Latency honours cancellation: the client gives up and the server
	// abandons the request.
	tctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := getParam(tctx, e.ssm(east, admin)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	waitFor(t, func() bool {
		return e.srv.CountCalls(func(c fakeaws.Call) bool { return c.Outcome == fakeaws.OutcomeCanceled }) == 1
	})

	e.srv.SetOperationLatency(fakeaws.ServiceSSM, "GetParameters", 0)
	start = time.Now()
	if err := getParam(ctx, e.ssm(east, admin)); err != nil || time.Since(start) >= d {
		t.Errorf("after removing latency: %v in %v", err, time.Since(start))
	}
}

func TestCallRecording(t *testing.T) {
	e := faultEnv(t)
	ctx := context.Background()
	e.srv.AddIdentity(fakeaws.Identity{AccessKeyID: "AKIDRO", SecretAccessKey: "ro", ARN: "arn:aws:iam::123456789012:user/ro", Actions: []string{"ssm:GetParameters"}, Resources: []string{"*"}})

	_ = getSecret(ctx, e.sm(east, admin))
	_ = getSecret(ctx, e.sm(west, admin))
	_ = getParam(ctx, e.ssm(east, creds{"AKIDRO", "ro", ""}))
	_ = getSecret(ctx, e.sm(east, creds{"AKIDRO", "ro", ""}))
	_ = getSecret(ctx, e.sm(east, creds{"AKIDRO", "wrong", ""}))

	if n := e.srv.Count(fakeaws.ServiceSecretsManager, "GetSecretValue"); n != 4 {
		t.Errorf("Count(GetSecretValue) = %d, want 4", n)
	}
	if n := e.srv.Count(fakeaws.ServiceSSM, ""); n != 1 {
		t.Errorf("Count(ssm) = %d, want 1", n)
	}
	if n := e.srv.CountCalls(func(c fakeaws.Call) bool { return c.Region == west }); n != 1 {
		t.Errorf("west calls = %d, want 1", n)
	}

	calls := e.srv.Calls()
	want := []fakeaws.Call{
		{Service: "secretsmanager", Operation: "GetSecretValue", Region: east, AccessKeyID: adminKey, Identity: "arn:aws:iam::123456789012:user/" + adminKey, Outcome: "ok", Resources: []string{"s"}},
		{Service: "secretsmanager", Operation: "GetSecretValue", Region: west, AccessKeyID: adminKey, Identity: "arn:aws:iam::123456789012:user/" + adminKey, Outcome: "ok", Resources: []string{"s"}},
		{Service: "ssm", Operation: "GetParameters", Region: east, AccessKeyID: "AKIDRO", Identity: "arn:aws:iam::123456789012:user/ro", Outcome: "ok", Resources: []string{"/p"}},
		{Service: "secretsmanager", Operation: "GetSecretValue", Region: east, AccessKeyID: "AKIDRO", Identity: "arn:aws:iam::123456789012:user/ro", Outcome: "AccessDeniedException", Resources: []string{"s"}},
		// Unauthenticated: no identity, and the body was never interpreted.
		{Service: "secretsmanager", Operation: "GetSecretValue", Region: east, AccessKeyID: "AKIDRO", Outcome: "InvalidSignatureException"},
	}
	if len(calls) != len(want) {
		t.Fatalf("%d calls recorded, want %d: %+v", len(calls), len(want), calls)
	}
	for i := range want {
		got := calls[i]
		if got.Time.IsZero() {
			t.Errorf("call %d has no time", i)
		}
		got.Time = time.Time{}
		if !equalCall(got, want[i]) {
			t.Errorf("call %d = %+v\nwant     %+v", i, got, want[i])
		}
	}

	e.srv.ResetCalls()
	if len(e.srv.Calls()) != 0 || e.srv.Count(fakeaws.ServiceSecretsManager, "") != 0 {
		t.Error("ResetCalls left calls behind")
	}
}

func equalCall(a, b fakeaws.Call) bool {
	return slices.Equal(a.Resources, b.Resources) &&
		a.Time.Equal(b.Time) && a.Service == b.Service && a.Operation == b.Operation &&
		a.Region == b.Region && a.AccessKeyID == b.AccessKeyID && a.Identity == b.Identity &&
		a.Outcome == b.Outcome
}

// TestConcurrentUse hammers one server with readers, writers and
// reconfiguration at once; it is mostly a target for the race detector.
func TestConcurrentUse(t *testing.T) {
	e := faultEnv(t)
	ctx := context.Background()
	const workers, iterations = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*iterations)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			smc, ssmc := e.sm(east, admin), e.ssm(east, admin)
			for i := range iterations {
				switch (w + i) % 4 {
				case 0:
					if err := getSecret(ctx, smc); err != nil && errCode(err) != "ThrottlingException" {
						errs <- err
					}
				case 1:
					if err := getParam(ctx, ssmc); err != nil && errCode(err) != "ThrottlingException" {
						errs <- err
					}
				case 2:
					e.srv.PutSecretString(east, "s", "v")
					e.srv.PutParameter(east, "/p", "v", "")
				case 3:
					e.srv.InjectFault(fakeaws.Fault{Kind: fakeaws.FaultThrottle, Times: 1})
					e.srv.AddIdentity(fakeaws.AllowAll("AKIDROT", "x"))
					_ = e.srv.Calls()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
