package fakeaws_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// agentEnv is a fedEnv plus Pod Identity agents on two listeners, named
// like the agent's IPv4 and IPv6 addresses.
type agentEnv struct {
	*fedEnv
	v4, v6 *httptest.Server
}

func newAgentEnv(t *testing.T) *agentEnv {
	e := &agentEnv{fedEnv: newFedEnv(t)}
	e.v4 = serveHandler(t, e.srv, e.srv.PodIdentityAgentNamed("ipv4"))
	e.v6 = serveHandler(t, e.srv, e.srv.PodIdentityAgentNamed("ipv6"))
	e.srv.AddPodIdentityAssociation("team-a", "app", roleA)
	e.srv.AddPodIdentityAssociation("team-b", "app", roleB)
	e.srv.AddPodIdentityAssociation("team-c", "app", "arn:aws:iam::"+account+":role/deleted")
	return e
}

// fetch gets credentials the way the SDK's container provider does, without
// retries so that every fault is visible.
func (e *agentEnv) fetch(ctx context.Context, agent *httptest.Server, token string) (aws.Credentials, error) {
	p := endpointcreds.New(agent.URL+"/v1/credentials", func(o *endpointcreds.Options) {
		o.AuthorizationToken = token
		o.Retryer = aws.NopRetryer{}
	})
	return p.Retrieve(ctx)
}

func (e *agentEnv) podToken(sub string) string {
	return e.iss.Token(sub, []string{podAud}, time.Hour)
}

// agentStatus is the HTTP status of an agent error.
func agentStatus(err error) int {
	var s interface{ HTTPStatusCode() int }
	if errors.As(err, &s) {
		return s.HTTPStatusCode()
	}
	return 0
}

func TestPodIdentityAgent(t *testing.T) {
	e := newAgentEnv(t)
	ctx := context.Background()

	got, err := e.fetch(ctx, e.v4, e.podToken(subA))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.AccessKeyID, "ASIA") || got.SessionToken == "" || got.AccountID != account ||
		!got.CanExpire || time.Until(got.Expires) < 5*time.Hour {
		t.Errorf("credentials = %+v", got)
	}
	a := creds{got.AccessKeyID, got.SecretAccessKey, got.SessionToken}
	if _, err := getSecretAs(ctx, e.env, a, "team-a/db"); err != nil {
		t.Errorf("own secret: %v", err)
	}
	_, err = getSecretAs(ctx, e.env, a, "team-b/db")
	wantCode(t, err, "AccessDeniedException")
	if msg := errMessage(err); !strings.Contains(msg, ":assumed-role/team-a/eks-fakeaws-app-pod-") {
		t.Errorf("session name not EKS-like: %s", msg)
	}
	b, err := e.fetch(ctx, e.v6, e.podToken(subB))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := getSecretAs(ctx, e.env, creds{b.AccessKeyID, b.SecretAccessKey, b.SessionToken}, "team-b/db"); err != nil {
		t.Errorf("team B: %v", err)
	}

	calls := e.srv.CountCalls(func(c fakeaws.Call) bool {
		return c.Service == fakeaws.ServiceEKSAuth && c.Operation == "AssumeRoleForPodIdentity" && c.Outcome == fakeaws.OutcomeOK &&
			c.Region == "ipv4" && c.Subject == subA && slices.Equal(c.Resources, []string{roleA})
	})
	if calls != 1 || e.srv.Count(fakeaws.ServiceEKSAuth, "") != 2 {
		t.Errorf("recorded calls: %+v", e.srv.Calls())
	}
}

func TestPodIdentityAgentRejections(t *testing.T) {
	e := newAgentEnv(t)
	now := time.Now()
	tests := []struct {
		name   string
		token  string
		code   string
		status int
	}{
		{"no token", "", "InvalidRequestException", 400},
		{"bearer prefix", "Bearer " + e.podToken(subA), "InvalidTokenException", 400},
		{"STS audience", e.iss.Token(subA, []string{stsAud}, time.Hour), "InvalidTokenException", 400},
		{"expired", e.iss.TokenWithClaims(fakeaws.TokenClaims{Subject: subA, Audiences: []string{podAud}, IssuedAt: now.Add(-2 * time.Hour), Expiry: now.Add(-time.Hour)}),
			"ExpiredTokenException", 400},
		{"foreign key", fakeaws.NewTestIssuer(t, issuerURL).Token(subA, []string{podAud}, time.Hour), "InvalidTokenException", 400},
		{"not a service account", e.podToken("user:alice"), "InvalidTokenException", 400},
		{"no association", e.podToken("system:serviceaccount:team-x:app"), "ResourceNotFoundException", 404},
		{"associated role missing", e.podToken("system:serviceaccount:team-c:app"), "AccessDeniedException", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.fetch(context.Background(), e.v4, tc.token)
			wantCode(t, err, tc.code)
			if agentStatus(err) != tc.status {
				t.Errorf("status %d, want %d", agentStatus(err), tc.status)
			}
		})
	}

	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/v2/credentials", 404},
		{http.MethodPost, "/v1/credentials", 405},
	} {
		req, _ := http.NewRequest(tc.method, e.v4.URL+tc.path, nil)
		req.Header.Set("Authorization", e.podToken(subA))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"code":`) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, body)
		}
	}
}

func TestPodIdentityAgentFaults(t *testing.T) {
	e := newAgentEnv(t)
	ctx := context.Background()
	token := e.podToken(subA)
	ipv6 := fakeaws.Fault{Service: fakeaws.ServiceEKSAuth, Region: "ipv6"}

	// The IPv6 listener resets connections; IPv4 keeps working.
	f := ipv6
	f.Kind = fakeaws.FaultReset
	e.srv.InjectFault(f)
	if _, err := e.fetch(ctx, e.v6, token); err == nil || errCode(err) != "<non-API>" {
		t.Errorf("reset: %v", err)
	}
	if _, err := e.fetch(ctx, e.v4, token); err != nil {
		t.Errorf("IPv4 affected by an IPv6 fault: %v", err)
	}
	e.srv.ClearFaults()

	for _, tc := range []struct {
		kind   fakeaws.FaultKind
		code   string
		status int
	}{
		{fakeaws.FaultThrottle, "ThrottlingException", 429},
		{fakeaws.FaultServerError, "InternalServerException", 500},
	} {
		f := ipv6
		f.Kind, f.Times = tc.kind, 1
		e.srv.InjectFault(f)
		_, err := e.fetch(ctx, e.v6, token)
		wantCode(t, err, tc.code)
		if agentStatus(err) != tc.status {
			t.Errorf("%v: status %d", tc.kind, agentStatus(err))
		}
	}

	f = ipv6
	f.Kind, f.Times = fakeaws.FaultHang, 1
	e.srv.InjectFault(f)
	hangCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := e.fetch(hangCtx, e.v6, token); err == nil {
		t.Error("hung agent answered")
	}

	e.srv.SetRegionDown("ipv4", true)
	_, err := e.fetch(ctx, e.v4, token)
	wantCode(t, err, "ServiceUnavailableException")
	e.srv.SetRegionDown("ipv4", false)

	e.srv.SetOperationLatency(fakeaws.ServiceEKSAuth, "AssumeRoleForPodIdentity", 100*time.Millisecond)
	start := time.Now()
	if _, err := e.fetch(ctx, e.v4, token); err != nil || time.Since(start) < 100*time.Millisecond {
		t.Errorf("slow agent: %v after %v", err, time.Since(start))
	}

	byListener := func(name string) int {
		return e.srv.CountCalls(func(c fakeaws.Call) bool { return c.Service == fakeaws.ServiceEKSAuth && c.Region == name })
	}
	if byListener("ipv6") != 4 || byListener("ipv4") != 3 {
		t.Errorf("calls: ipv6 %d, ipv4 %d", byListener("ipv6"), byListener("ipv4"))
	}
}
