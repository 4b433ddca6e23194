package fakeaws

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The two ways STS hands out role sessions: federation with a web identity
// token (IRSA) and role chaining / cross-account AssumeRole.

type assumeRoleWithWebIdentityResult struct {
	Credentials                 stsCredentials     `xml:"Credentials"`
	SubjectFromWebIdentityToken string             `xml:"SubjectFromWebIdentityToken"`
	AssumedRoleUser             stsAssumedRoleUser `xml:"AssumedRoleUser"`
	Provider                    string             `xml:"Provider"`
	Audience                    string             `xml:"Audience"`
}

// webIdentityDenied is AWS's answer both for a role that does not exist and
// for one whose trust policy does not admit the token: the two are
// indistinguishable to the caller.
func webIdentityDenied() *apiError {
	return newErr(http.StatusForbidden, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
}

func (s *Server) stsAssumeRoleWithWebIdentity(rc *reqCtx) (any, *apiError) {
	var c constraints
	roleARN := c.str(rc.form, "RoleArn", "roleArn", 20, 2048, false)
	sessionName := c.sessionName(rc.form)
	token := c.str(rc.form, "WebIdentityToken", "webIdentityToken", 4, 20000, true)
	duration := c.duration(rc.form)
	if roleARN != "" {
		rc.call.Resources = []string{roleARN}
	}
	if e := c.err(); e != nil {
		return nil, e
	}

	now := s.now()
	claims, terr := s.oidc.verifyToken(rc.r.Context(), token, now)
	if claims != nil {
		rc.call.Subject = claims.Subject
	}
	if terr != nil {
		s.logTokenRejection(terr)
		return nil, stsTokenErr(terr, claims, now)
	}

	role, ok := s.role(roleARN)
	if !ok {
		return nil, webIdentityDenied()
	}
	aud, ok := role.acceptedAudience(claims.Audience)
	if !ok {
		return nil, clientErr("InvalidIdentityToken", "Incorrect token audience")
	}
	if !role.trustsSubject(claims.Subject) {
		return nil, webIdentityDenied()
	}
	d, e := role.sessionDuration(duration, false)
	if e != nil {
		return nil, e
	}

	m := s.mintSession(role, sessionName, d)
	creds, user := credentialsOf(m)
	return assumeRoleWithWebIdentityResult{
		Credentials:                 creds,
		SubjectFromWebIdentityToken: claims.Subject,
		AssumedRoleUser:             user,
		// For OIDC, AWS names the IAM OIDC provider the token was matched to.
		Provider: fmt.Sprintf("arn:aws:iam::%s:oidc-provider/%s", m.account, strings.TrimPrefix(claims.Issuer, "https://")),
		Audience: aud,
	}, nil
}

// stsTokenErr maps a rejected web identity token to STS's errors. claims
// is non-nil for expired tokens (their signature was good).
func stsTokenErr(e *tokenError, claims *tokenClaims, now time.Time) *apiError {
	switch e.kind {
	case tokExpired:
		return clientErr("ExpiredTokenException", "Token expired: current date/time %d must be before the expiration date/time %d",
			now.Unix(), claims.Expiry.Unix())
	case tokUnknownIssuer:
		return clientErr("InvalidIdentityToken", "No OpenIDConnect provider found in your account for %s", e.detail)
	case tokUnknownKey:
		return clientErr("InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements")
	case tokKeysUnavailable:
		return clientErr("IDPCommunicationError", "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements")
	case tokBadSignature:
		return clientErr("InvalidIdentityToken", "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.")
	case tokNotYetValid:
		return clientErr("InvalidIdentityToken", "Token is not yet valid")
	}
	return clientErr("InvalidIdentityToken", "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)")
}

type assumeRoleResult struct {
	Credentials     stsCredentials     `xml:"Credentials"`
	AssumedRoleUser stsAssumedRoleUser `xml:"AssumedRoleUser"`
}

func (s *Server) stsAssumeRole(rc *reqCtx) (any, *apiError) {
	var c constraints
	roleARN := c.str(rc.form, "RoleArn", "roleArn", 20, 2048, false)
	sessionName := c.sessionName(rc.form)
	duration := c.duration(rc.form)
	externalID, hasExternalID := "", false
	if _, hasExternalID = rc.form["ExternalId"]; hasExternalID {
		externalID = c.str(rc.form, "ExternalId", "externalId", 2, 1224, false)
	}
	if roleARN != "" {
		rc.call.Resources = []string{roleARN}
	}
	if e := c.err(); e != nil {
		return nil, e
	}

	callerRole, chained := s.callerRole(rc.ident)
	denied := newErr(http.StatusForbidden, "AccessDenied",
		"User: %s is not authorized to perform: sts:AssumeRole on resource: %s", rc.ident.ARN, roleARN)
	role, ok := s.role(roleARN)
	if !ok || !role.trustsPrincipal(callerRole, rc.ident.ARN) {
		return nil, denied
	}
	// The sts:ExternalId condition: required when set, and must match.
	if role.ExternalID != "" && (!hasExternalID || externalID != role.ExternalID) {
		return nil, denied
	}
	d, e := role.sessionDuration(duration, chained)
	if e != nil {
		return nil, e
	}

	creds, user := credentialsOf(s.mintSession(role, sessionName, d))
	return assumeRoleResult{Credentials: creds, AssumedRoleUser: user}, nil
}
