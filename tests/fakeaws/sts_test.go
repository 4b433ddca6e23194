package fakeaws_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/coffer-csi/coffer/tests/fakeaws"
)

func TestWebIdentityFederation(t *testing.T) {
	e := newFedEnv(t)
	ctx := context.Background()
	token := e.iss.Token(subA, []string{stsAud}, time.Hour)

	out, err := e.anonSTS(east).AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(roleA),
		RoleSessionName:  aws.String("pod-1"),
		WebIdentityToken: aws.String(token),
		DurationSeconds:  aws.Int32(900),
	})
	if err != nil {
		t.Fatal(err)
	}
	wantARN := "arn:aws:sts::" + account + ":assumed-role/team-a/pod-1"
	c := out.Credentials
	switch {
	case !strings.HasPrefix(aws.ToString(c.AccessKeyId), "ASIA"), aws.ToString(c.SecretAccessKey) == "", aws.ToString(c.SessionToken) == "":
		t.Errorf("credentials = %+v", c)
	case time.Until(aws.ToTime(c.Expiration)) < 14*time.Minute || time.Until(aws.ToTime(c.Expiration)) > 15*time.Minute:
		t.Errorf("expiration %v is not 15 minutes away", c.Expiration)
	case aws.ToString(out.AssumedRoleUser.Arn) != wantARN:
		t.Errorf("AssumedRoleUser.Arn = %s, want %s", aws.ToString(out.AssumedRoleUser.Arn), wantARN)
	case !strings.HasPrefix(aws.ToString(out.AssumedRoleUser.AssumedRoleId), "AROA") || !strings.HasSuffix(aws.ToString(out.AssumedRoleUser.AssumedRoleId), ":pod-1"):
		t.Errorf("AssumedRoleId = %s", aws.ToString(out.AssumedRoleUser.AssumedRoleId))
	case aws.ToString(out.SubjectFromWebIdentityToken) != subA, aws.ToString(out.Audience) != stsAud:
		t.Errorf("subject %q audience %q", aws.ToString(out.SubjectFromWebIdentityToken), aws.ToString(out.Audience))
	case aws.ToString(out.Provider) != "arn:aws:iam::"+account+":oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/FAKE":
		t.Errorf("Provider = %s", aws.ToString(out.Provider))
	}
	calls := e.srv.Calls()
	last := calls[len(calls)-1]
	if last.Service != fakeaws.ServiceSTS || last.Operation != "AssumeRoleWithWebIdentity" || last.Outcome != fakeaws.OutcomeOK ||
		last.Subject != subA || !slices.Equal(last.Resources, []string{roleA}) || last.Region != "" || last.AccessKeyID != "" {
		t.Errorf("recorded %+v", last)
	}

	// The minted credentials are the role's: its own secret, nothing else.
	a := creds{aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)}
	if v, err := getSecretAs(ctx, e.env, a, "team-a/db"); err != nil || v != "value of team-a/db" {
		t.Errorf("own secret: %q, %v", v, err)
	}
	_, err = getSecretAs(ctx, e.env, a, "team-b/db")
	wantCode(t, err, "AccessDeniedException")
	if !strings.HasPrefix(errMessage(err), "User: "+wantARN+" is not authorized") {
		t.Errorf("denial names %q", errMessage(err))
	}
	_, err = e.sm(east, creds{a.key, a.secret, ""}).ListSecrets(ctx, nil)
	wantCode(t, err, "UnrecognizedClientException") // the session token is part of the credentials

	id, err := e.sts(west, a).GetCallerIdentity(ctx, nil)
	if err != nil || aws.ToString(id.Arn) != wantARN || aws.ToString(id.Account) != account ||
		aws.ToString(id.UserId) != aws.ToString(out.AssumedRoleUser.AssumedRoleId) {
		t.Errorf("GetCallerIdentity = %+v, %v", id, err)
	}
	if n := e.srv.CountCalls(func(c fakeaws.Call) bool {
		return c.Operation == "GetCallerIdentity" && c.Region == west && c.Identity == wantARN
	}); n != 1 {
		t.Errorf("%d GetCallerIdentity calls recorded with region and identity", n)
	}
}

func TestWebIdentityIsolatesRoles(t *testing.T) {
	e := newFedEnv(t)
	ctx := context.Background()
	a, b := e.mustFederate(t, roleA, subA), e.mustFederate(t, roleB, subB)
	for _, tc := range []struct {
		who    creds
		secret string
		code   string
	}{
		{a, "team-a/db", ""}, {a, "team-b/db", "AccessDeniedException"},
		{b, "team-b/db", ""}, {b, "team-a/db", "AccessDeniedException"},
	} {
		_, err := getSecretAs(ctx, e.env, tc.who, tc.secret)
		wantCode(t, err, tc.code)
	}
	// Team B's token cannot federate into team A's role.
	_, err := e.federate(ctx, roleA, e.iss.Token(subB, []string{stsAud}, time.Hour))
	wantCode(t, err, "AccessDenied")

	perRole := func(role string) int {
		return e.srv.CountCalls(func(c fakeaws.Call) bool {
			return c.Service == fakeaws.ServiceSTS && slices.Contains(c.Resources, role)
		})
	}
	if perRole(roleA) != 2 || perRole(roleB) != 1 || e.srv.Count(fakeaws.ServiceSTS, "AssumeRoleWithWebIdentity") != 3 {
		t.Errorf("STS calls: role A %d, role B %d", perRole(roleA), perRole(roleB))
	}
}

func TestWebIdentityRejections(t *testing.T) {
	e := newFedEnv(t)
	mustAddRole(t, e.srv, fakeaws.Role{ARN: "arn:aws:iam::" + account + ":role/custom-aud", TrustedSubjects: []string{"*"}, TrustedAudiences: []string{"vault"}})
	other := fakeaws.NewTestIssuer(t, issuerURL) // same issuer name, different key
	now := time.Now()
	tok := func(c fakeaws.TokenClaims) string {
		if c.Subject == "" {
			c.Subject = subA
		}
		if c.Audiences == nil {
			c.Audiences = []string{stsAud}
		}
		return e.iss.TokenWithClaims(c)
	}
	good := tok(fakeaws.TokenClaims{})
	tampered := good[:strings.LastIndexByte(good, '.')+1] + "AAAA" + good[strings.LastIndexByte(good, '.')+5:]

	tests := []struct {
		name     string
		role     string
		session  string
		duration int32
		token    string
		code     string
		status   int
		msg      string
		typed    func(error) bool
	}{
		{name: "wrong audience", token: tok(fakeaws.TokenClaims{Audiences: []string{podAud}}),
			code: "InvalidIdentityToken", status: 400, msg: "Incorrect token audience", typed: errorAs[*types.InvalidIdentityTokenException]},
		{name: "audience of another role", role: "arn:aws:iam::" + account + ":role/custom-aud",
			token: good, code: "InvalidIdentityToken", status: 400},
		{name: "expired", token: tok(fakeaws.TokenClaims{IssuedAt: now.Add(-2 * time.Hour), Expiry: now.Add(-time.Hour)}),
			code: "ExpiredTokenException", status: 400, msg: "Token expired: current date/time ", typed: errorAs[*types.ExpiredTokenException]},
		{name: "no exp", token: tok(fakeaws.TokenClaims{Extra: map[string]any{"exp": nil}}), code: "InvalidIdentityToken", status: 400},
		{name: "not yet valid", token: tok(fakeaws.TokenClaims{NotBefore: now.Add(time.Hour)}), code: "InvalidIdentityToken", status: 400},
		{name: "signed by another key under our kid", token: other.TokenWithClaims(fakeaws.TokenClaims{Subject: subA, Audiences: []string{stsAud}, KeyID: e.iss.KeyID()}),
			code: "InvalidIdentityToken", status: 400, msg: "could not be validated"},
		{name: "tampered signature", token: tampered, code: "InvalidIdentityToken", status: 400},
		{name: "unknown kid", token: other.Token(subA, []string{stsAud}, time.Hour),
			code: "InvalidIdentityToken", status: 400, msg: "Couldn't retrieve verification key"},
		{name: "wrong issuer", token: tok(fakeaws.TokenClaims{Issuer: "https://evil.example"}),
			code: "InvalidIdentityToken", status: 400, msg: "No OpenIDConnect provider found in your account for https://evil.example"},
		{name: "not a JWT", token: "not.a-jwt", code: "InvalidIdentityToken", status: 400},
		{name: "wrong subject", token: tok(fakeaws.TokenClaims{Subject: "system:serviceaccount:team-a:other"}),
			code: "AccessDenied", status: 403, msg: "Not authorized to perform sts:AssumeRoleWithWebIdentity"},
		{name: "unknown role", role: "arn:aws:iam::" + account + ":role/nope", token: good, code: "AccessDenied", status: 403},
		{name: "bad session name", session: "has space", token: good, code: "ValidationError", status: 400,
			msg: "1 validation error detected: Value 'has space' at 'roleSessionName' failed to satisfy constraint"},
		{name: "short session name", session: "x", token: good, code: "ValidationError", status: 400},
		{name: "duration too short", duration: 60, token: good, code: "ValidationError", status: 400, msg: "greater than or equal to 900"},
		{name: "duration above the role's maximum", duration: 7200, token: good, code: "ValidationError", status: 400,
			msg: "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := &sts.AssumeRoleWithWebIdentityInput{
				RoleArn:          aws.String(roleA),
				RoleSessionName:  aws.String("s1"),
				WebIdentityToken: aws.String(tc.token),
			}
			if tc.role != "" {
				in.RoleArn = aws.String(tc.role)
			}
			if tc.session != "" {
				in.RoleSessionName = aws.String(tc.session)
			}
			if tc.duration != 0 {
				in.DurationSeconds = aws.Int32(tc.duration)
			}
			_, err := e.anonSTS(east).AssumeRoleWithWebIdentity(context.Background(), in)
			wantCode(t, err, tc.code)
			if httpStatus(err) != tc.status {
				t.Errorf("status = %d, want %d", httpStatus(err), tc.status)
			}
			if !strings.Contains(errMessage(err), tc.msg) {
				t.Errorf("message %q does not contain %q", errMessage(err), tc.msg)
			}
			if tc.typed != nil && !tc.typed(err) {
				t.Errorf("error %T is not the modeled type", err)
			}
		})
	}
	if n := e.srv.CountCalls(func(c fakeaws.Call) bool { return c.Outcome == "ExpiredTokenException" && c.Subject == subA }); n != 1 {
		t.Errorf("expired-token call recorded %d times with its subject", n)
	}
}

func TestWebIdentityRS256AndWildcardSubjects(t *testing.T) {
	iss, err := fakeaws.NewIssuer("https://kubernetes.default.svc")
	if err != nil {
		t.Fatal(err)
	}
	srv, ts := fakeaws.NewTestServer(t)
	if err := srv.SetJWKS(iss.JWKS()); err != nil {
		t.Fatal(err)
	}
	mustAddRole(t, srv, fakeaws.Role{ARN: "arn:aws:iam::" + account + ":role/path/team", TrustedSubjects: []string{"system:serviceaccount:team-*:*"}})
	e := &env{srv: srv, ts: ts}
	ctx := context.Background()
	if _, err := e.federate(ctx, "arn:aws:iam::"+account+":role/path/team", iss.Token("system:serviceaccount:team-x:y", []string{stsAud}, time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err = e.federate(ctx, "arn:aws:iam::"+account+":role/path/team", iss.Token("system:serviceaccount:ops:y", []string{stsAud}, time.Hour))
	wantCode(t, err, "AccessDenied")
}

func TestAssumeRoleChaining(t *testing.T) {
	e := newFedEnv(t)
	ctx := context.Background()
	const (
		target      = "arn:aws:iam::210987654321:role/cross-account"
		withExtID   = "arn:aws:iam::210987654321:role/with-external-id"
		fromUser    = "arn:aws:iam::210987654321:role/from-user"
		userARN     = "arn:aws:iam::" + account + ":user/ci"
		crossSecret = "arn:aws:secretsmanager:*:*:secret:team-a/db-*"
	)
	mustAddRole(t, e.srv, fakeaws.Role{ARN: target, TrustedRoles: []string{roleA}, Actions: []string{"secretsmanager:*"}, Resources: []string{crossSecret}})
	mustAddRole(t, e.srv, fakeaws.Role{ARN: withExtID, TrustedRoles: []string{roleA}, ExternalID: "tenant-42"})
	mustAddRole(t, e.srv, fakeaws.Role{ARN: fromUser, TrustedRoles: []string{userARN}})
	e.srv.AddIdentity(fakeaws.Identity{AccessKeyID: "AKIDCI", SecretAccessKey: "ci-secret", ARN: userARN})

	a, b := e.mustFederate(t, roleA, subA), e.mustFederate(t, roleB, subB)
	assume := func(c creds, role, extID string, seconds int32) (*sts.AssumeRoleOutput, error) {
		in := &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("chained")}
		if extID != "" {
			in.ExternalId = aws.String(extID)
		}
		if seconds != 0 {
			in.DurationSeconds = aws.Int32(seconds)
		}
		return e.sts(east, c).AssumeRole(ctx, in)
	}

	out, err := assume(a, target, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.AssumedRoleUser.Arn); got != "arn:aws:sts::210987654321:assumed-role/cross-account/chained" {
		t.Errorf("AssumedRoleUser.Arn = %s", got)
	}
	chained := creds{aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken)}
	if _, err := getSecretAs(ctx, e.env, chained, "team-a/db"); err != nil {
		t.Errorf("chained session cannot use its grants: %v", err)
	}
	if id, err := e.sts(east, chained).GetCallerIdentity(ctx, nil); err != nil || aws.ToString(id.Account) != "210987654321" {
		t.Errorf("GetCallerIdentity = %+v, %v", id, err)
	}
	if n := e.srv.CountCalls(func(c fakeaws.Call) bool {
		return c.Operation == "AssumeRole" && slices.Equal(c.Resources, []string{target}) && c.Region == east &&
			c.Identity == "arn:aws:sts::"+account+":assumed-role/team-a/coffer-test" && c.Outcome == fakeaws.OutcomeOK
	}); n != 1 {
		t.Errorf("%d matching AssumeRole calls recorded: %+v", n, e.srv.Calls())
	}

	tests := []struct {
		name    string
		caller  creds
		role    string
		extID   string
		seconds int32
		code    string
	}{
		{"untrusted role session", b, target, "", 0, "AccessDenied"},
		{"missing external id", a, withExtID, "", 0, "AccessDenied"},
		{"wrong external id", a, withExtID, "tenant-43", 0, "AccessDenied"},
		{"right external id", a, withExtID, "tenant-42", 0, ""},
		{"chaining is capped at one hour", a, target, "", 7200, "ValidationError"},
		{"trusted IAM user", creds{"AKIDCI", "ci-secret", ""}, fromUser, "", 0, ""},
		{"unknown role", a, "arn:aws:iam::" + account + ":role/none", "", 0, "AccessDenied"},
		{"bad signature", creds{a.key, "wrong", a.token}, target, "", 0, "SignatureDoesNotMatch"},
		{"unknown key", creds{"ASIANOPE", "x", "y"}, target, "", 0, "InvalidClientTokenId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := assume(tc.caller, tc.role, tc.extID, tc.seconds)
			wantCode(t, err, tc.code)
			if tc.code == "AccessDenied" {
				if httpStatus(err) != http.StatusForbidden {
					t.Errorf("status %d, want 403", httpStatus(err))
				}
				if !strings.Contains(errMessage(err), "is not authorized to perform: sts:AssumeRole on resource: "+tc.role) {
					t.Errorf("message %q", errMessage(err))
				}
			}
		})
	}
}

func TestSTSWireFormat(t *testing.T) {
	e := newFedEnv(t)
	post := func(form url.Values) (int, string, string) {
		resp, err := http.Post(e.ts.URL+"/", "application/x-www-form-urlencoded; charset=utf-8", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	status, ctype, body := post(url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"},
		"RoleArn": {roleA}, "RoleSessionName": {"raw"}, "WebIdentityToken": {e.iss.Token(subB, []string{stsAud}, time.Hour)}})
	want := `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>`
	if status != http.StatusForbidden || ctype != "text/xml" || !strings.HasPrefix(body, want) || !strings.HasSuffix(body, "</RequestId></ErrorResponse>") {
		t.Errorf("got %d %s %s", status, ctype, body)
	}
	if strings.Contains(body, "eyJ") {
		t.Error("the token was echoed")
	}

	status, _, body = post(url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"},
		"RoleArn": {roleA}, "RoleSessionName": {"raw"}, "WebIdentityToken": {e.iss.Token(subA, []string{stsAud}, time.Hour)}})
	for _, part := range []string{
		`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIA`,
		`</SessionToken><Expiration>` + time.Now().UTC().Add(time.Hour).Format("2006-01-02T15"),
		`<SubjectFromWebIdentityToken>` + subA + `</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>arn:aws:sts::` + account + `:assumed-role/team-a/raw</Arn><AssumedRoleId>AROA`,
		`</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>`,
	} {
		if status != http.StatusOK || !strings.Contains(body, part) {
			t.Errorf("got %d %s, want it to contain %s", status, body, part)
		}
	}

	for _, tc := range []struct {
		form   url.Values
		status int
		code   string
	}{
		{url.Values{"Version": {"2011-06-15"}}, 400, "<Code>MissingAction</Code>"},
		{url.Values{"Action": {"GetSessionToken"}}, 400, "<Code>InvalidAction</Code>"},
		{url.Values{"Action": {"GetCallerIdentity"}}, 403, "<Code>MissingAuthenticationToken</Code>"},
		{url.Values{"Action": {"AssumeRoleWithWebIdentity"}}, 400, "<Message>3 validation errors detected: Value null at &#39;roleArn&#39;"},
	} {
		if status, _, body := post(tc.form); status != tc.status || !strings.Contains(body, tc.code) {
			t.Errorf("%v: got %d %s, want %d %s", tc.form, status, body, tc.status, tc.code)
		}
	}
}
