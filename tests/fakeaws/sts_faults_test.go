package fakeaws_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

func TestSTSFaults(t *testing.T) {
	e := newFedEnv(t)
	ctx := context.Background()
	token := e.iss.Token(subA, []string{stsAud}, time.Hour)
	webIdentity := fakeaws.Fault{Service: fakeaws.ServiceSTS, Operation: "AssumeRoleWithWebIdentity", Times: 1}

	for _, tc := range []struct {
		kind   fakeaws.FaultKind
		code   string
		status int
	}{
		{fakeaws.FaultThrottle, "Throttling", 400},
		{fakeaws.FaultServerError, "InternalFailure", 500},
		{fakeaws.FaultReset, "<non-API>", 0},
	} {
		f := webIdentity
		f.Kind = tc.kind
		e.srv.InjectFault(f)
		_, err := e.federate(ctx, roleA, token)
		wantCode(t, err, tc.code)
		if httpStatus(err) != tc.status {
			t.Errorf("%v: status %d, want %d", tc.kind, httpStatus(err), tc.status)
		}
	}
	if _, err := e.federate(ctx, roleA, token); err != nil {
		t.Fatalf("after the faults ran out: %v", err)
	}

	// The SDK's standard retryer rides out throttling.
	f := webIdentity
	f.Kind, f.Times = fakeaws.FaultThrottle, 2
	e.srv.InjectFault(f)
	cfg := fakeaws.AWSConfig(e.ts.URL, east, "", "", "")
	cfg.Credentials, cfg.RetryMaxAttempts = aws.AnonymousCredentials{}, 0
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	}
	before := e.srv.Count(fakeaws.ServiceSTS, "AssumeRoleWithWebIdentity")
	_, err := sts.NewFromConfig(cfg).AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(roleA), RoleSessionName: aws.String("retry"), WebIdentityToken: aws.String(token),
	})
	if err != nil || e.srv.Count(fakeaws.ServiceSTS, "AssumeRoleWithWebIdentity")-before != 3 {
		t.Errorf("retried call: %v after %d attempts", err, e.srv.Count(fakeaws.ServiceSTS, "AssumeRoleWithWebIdentity")-before)
	}

	// A hang holds the caller until it gives up.
	f = webIdentity
	f.Kind = fakeaws.FaultHang
	e.srv.InjectFault(f)
	hangCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := e.federate(hangCtx, roleA, token); err == nil {
		t.Error("hung call succeeded")
	}
	if n := e.srv.CountCalls(func(c fakeaws.Call) bool { return c.Outcome == fakeaws.OutcomeHang }); n != 1 {
		t.Errorf("%d hangs recorded", n)
	}

	// Signed STS calls can be targeted by access key.
	a := e.mustFederate(t, roleA, subA)
	e.srv.InjectFault(fakeaws.Fault{Service: fakeaws.ServiceSTS, AccessKeyID: a.key, Kind: fakeaws.FaultError,
		Code: "RegionDisabledException", Status: http.StatusForbidden, Message: "STS is not activated in this region"})
	_, err = e.sts(east, a).GetCallerIdentity(ctx, nil)
	wantCode(t, err, "RegionDisabledException")
	if _, err := e.sts(east, admin).GetCallerIdentity(ctx, nil); err != nil {
		t.Errorf("another caller: %v", err)
	}
	e.srv.ClearFaults()
}

func TestSTSLatencyAndRegionalEndpoints(t *testing.T) {
	e := newFedEnv(t)
	ctx := context.Background()
	token := e.iss.Token(subA, []string{stsAud}, time.Hour)

	e.srv.SetOperationLatency(fakeaws.ServiceSTS, "AssumeRoleWithWebIdentity", 100*time.Millisecond)
	start := time.Now()
	if _, err := e.federate(ctx, roleA, token); err != nil || time.Since(start) < 100*time.Millisecond {
		t.Errorf("slow STS: %v after %v", err, time.Since(start))
	}
	e.srv.SetOperationLatency(fakeaws.ServiceSTS, "AssumeRoleWithWebIdentity", 0)

	// Unsigned calls carry no region; a RegionalHandler supplies one, so
	// that a regional STS outage can be simulated.
	westEnv := &env{srv: e.srv, ts: serveHandler(t, e.srv, e.srv.RegionalHandler(west))}
	e.srv.SetRegionDown(west, true)
	_, err := westEnv.federate(ctx, roleA, token)
	wantCode(t, err, "ServiceUnavailable")
	if httpStatus(err) != http.StatusServiceUnavailable {
		t.Errorf("status %d", httpStatus(err))
	}
	if _, err := e.federate(ctx, roleA, token); err != nil {
		t.Errorf("the regionless endpoint is up: %v", err)
	}
	e.srv.SetRegionDown(west, false)
	if _, err := westEnv.federate(ctx, roleA, token); err != nil {
		t.Errorf("west is back: %v", err)
	}
	byRegion := func(region string) int {
		return e.srv.CountCalls(func(c fakeaws.Call) bool {
			return c.Operation == "AssumeRoleWithWebIdentity" && c.Region == region
		})
	}
	if byRegion(west) != 2 || byRegion("") != 2 {
		t.Errorf("calls by region: west %d, none %d", byRegion(west), byRegion(""))
	}
}

func TestMintedCredentialsExpire(t *testing.T) {
	var skew atomic.Int64 // server clock ahead of real time
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	e := newFedEnv(t, fakeaws.Options{Now: clock})
	const short = "arn:aws:iam::" + account + ":role/short"
	mustAddRole(t, e.srv, fakeaws.Role{ARN: short, TrustedSubjects: []string{subA}, CredentialLifetime: 2 * time.Minute,
		Actions: []string{"secretsmanager:GetSecretValue"}, Resources: []string{"*"}})
	ctx := context.Background()

	out, err := e.anonSTS(east).AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(short), RoleSessionName: aws.String("short"),
		WebIdentityToken: aws.String(e.iss.Token(subA, []string{stsAud}, time.Hour)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(aws.ToTime(out.Credentials.Expiration)); left > 2*time.Minute || left < time.Minute {
		t.Errorf("credentials expire in %v, want the role's 2m lifetime", left)
	}
	c := creds{aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken)}
	if _, err := getSecretAs(ctx, e.env, c, "team-a/db"); err != nil {
		t.Fatal(err)
	}

	skew.Store(int64(3 * time.Minute)) // within SigV4's 15-minute tolerance
	_, err = getSecretAs(ctx, e.env, c, "team-a/db")
	wantCode(t, err, "ExpiredTokenException")
	_, err = e.sts(east, c).GetCallerIdentity(ctx, nil)
	wantCode(t, err, "ExpiredToken") // STS's spelling
	if httpStatus(err) != http.StatusForbidden {
		t.Errorf("status %d", httpStatus(err))
	}

	// Long-expired sessions are garbage-collected when new ones are minted.
	skew.Store(int64(30 * time.Minute))
	e.mustFederate(t, roleA, subA)
	_, err = getSecretAs(ctx, e.env, c, "team-a/db")
	wantCode(t, err, "UnrecognizedClientException")
}
