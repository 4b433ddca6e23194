package fakeaws_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

func noRetrySM(o *secretsmanager.Options) { o.Retryer = aws.NopRetryer{} }
func noRetrySSM(o *ssm.Options)           { o.Retryer = aws.NopRetryer{} }

// TestQuotasThrottleAsAWS: with quotas set, each region's bucket of a
// quota lets Burst requests through, then answers ThrottlingException as
// AWS does (HTTP 400, "Rate exceeded", a code the SDK's retryer retries),
// refills at Rate, is shared by the operations of one quota and by every
// caller, and leaves other operations and regions alone. Without quotas
// nothing is throttled.
func TestQuotasThrottleAsAWS(t *testing.T) {
	e := faultEnv(t)
	ctx := context.Background()
	batch := func(region string) error {
		_, err := e.sm(region, admin).BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"s"}}, noRetrySM)
		return err
	}
	for range 5 {
		if err := batch(east); err != nil {
			t.Fatalf("quotas off: %v", err)
		}
	}
	e.srv.SetQuotas(
		fakeaws.Quota{Service: fakeaws.ServiceSecretsManager, Operations: []string{"BatchGetSecretValue"}, Rate: 20, Burst: 2},
		fakeaws.Quota{Service: fakeaws.ServiceSSM, Operations: []string{"GetParameters", "GetParametersByPath"}, Rate: 0.001, Burst: 1},
	)
	e.srv.ResetCalls()
	if err := batch(east); err != nil {
		t.Fatal(err)
	}
	if err := batch(east); err != nil {
		t.Fatal(err)
	}
	err := batch(east)
	wantCode(t, err, "ThrottlingException")
	if httpStatus(err) != 400 || errMessage(err) != "Rate exceeded" {
		t.Errorf("throttle answer: status %d, message %q; want 400, Rate exceeded", httpStatus(err), errMessage(err))
	}
	if !isThrottle(err) {
		t.Error("the SDK does not see the answer as throttling")
	}
	if err := batch(west); err != nil {
		t.Errorf("another region's bucket: %v", err)
	}
	if err := getSecret(ctx, e.sm(east, admin)); err != nil {
		t.Errorf("an operation without a quota: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // 20 per second: refilled
	if err := batch(east); err != nil {
		t.Errorf("after the bucket refilled: %v", err)
	}
	if n := e.srv.CountCalls(func(c fakeaws.Call) bool { return c.Outcome == "ThrottlingException" }); n != 1 {
		t.Errorf("%d throttled calls recorded, want 1", n)
	}

	// SSM: GetParameters and GetParametersByPath share one bucket.
	if _, err := e.ssm(east, admin).GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/p"}}, noRetrySSM); err != nil {
		t.Fatal(err)
	}
	_, err = e.ssm(east, admin).GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: aws.String("/")}, noRetrySSM)
	wantCode(t, err, "ThrottlingException")
	if errMessage(err) != "Rate exceeded" {
		t.Errorf("SSM throttle message %q", errMessage(err))
	}

	e.srv.SetQuotas()
	for range 3 {
		if err := batch(east); err != nil {
			t.Fatalf("quotas turned off: %v", err)
		}
	}
}

func isThrottle(err error) bool {
	for _, c := range retry.DefaultThrottles {
		if c.IsErrorThrottle(err).Bool() {
			return true
		}
	}
	return false
}

func TestPublishedQuotas(t *testing.T) {
	rates := func(qs []fakeaws.Quota) map[string]float64 {
		m := map[string]float64{}
		for _, q := range qs {
			for _, op := range q.Operations {
				m[op] = q.Rate
			}
		}
		return m
	}
	std := rates(fakeaws.PublishedQuotas(false, 1))
	if std["BatchGetSecretValue"] != 100 || std["GetSecretValue"] != 10000 || std["DescribeSecret"] != 40000 || std["GetParameters"] != 40 || std["GetParametersByPath"] != 40 {
		t.Errorf("standard: %v", std)
	}
	high := rates(fakeaws.PublishedQuotas(true, 0.5))
	if high["GetParameters"] != 1500 || high["GetParametersByPath"] != 50 || high["BatchGetSecretValue"] != 50 {
		t.Errorf("higher throughput, half scale: %v", high)
	}
}
