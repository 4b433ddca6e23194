package fakeaws

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Role is an IAM role for which STS (AssumeRoleWithWebIdentity, AssumeRole)
// and the Pod Identity agent issue temporary credentials. Sessions get the
// role's permissions, with the same semantics as Identity's.
//
// The trust policy is reduced to three lists: who may federate in with a web
// identity token (TrustedSubjects × TrustedAudiences), and which principals
// may AssumeRole into it (TrustedRoles). The caller's own sts:AssumeRole
// permission is not checked: the trust policy alone decides.
type Role struct {
	// ARN is "arn:aws:iam::<account>:role/<name>", optionally with a path
	// ("role/path/<name>"). Sessions are named
	// "arn:aws:sts::<account>:assumed-role/<name>/<session>", without the
	// path, as in AWS.
	ARN string
	// TrustedSubjects are the token subjects that may assume the role with
	// AssumeRoleWithWebIdentity, e.g. "system:serviceaccount:team-a:app".
	// '*' and '?' are wildcards, as in a StringLike trust condition.
	TrustedSubjects []string
	// TrustedAudiences are the accepted "aud" values for web identity
	// tokens; defaults to ["sts.amazonaws.com"].
	TrustedAudiences []string
	// TrustedRoles are the principals that may AssumeRole into this role: a
	// role ARN admits every session of that role (role chaining); an IAM
	// user or assumed-role session ARN admits that principal. Wildcards
	// allowed.
	TrustedRoles []string
	// ExternalID, if set, must be passed as ExternalId to AssumeRole.
	ExternalID string

	Actions    []string
	Resources  []string
	Statements []Statement

	// MaxSessionDuration bounds the DurationSeconds a caller may ask for;
	// defaults to 1h. DurationSeconds defaults to 1h (or this, if shorter).
	MaxSessionDuration time.Duration
	// CredentialLifetime, if set, is how long every session of this role
	// lasts, whatever DurationSeconds asked for (the request is still
	// validated as AWS would). AWS never issues sessions shorter than 15
	// minutes; this lets tests watch credentials expire and get refreshed
	// within seconds.
	CredentialLifetime time.Duration
}

const (
	defaultWebIdentityAudience = "sts.amazonaws.com"
	defaultSessionDuration     = time.Hour
	// Role chaining caps sessions at one hour whatever the role allows.
	chainedSessionLimit = time.Hour
	// EKS Pod Identity credentials last six hours.
	podIdentitySessionDuration = 6 * time.Hour

	// Expired sessions are kept this long, so that requests signed with them
	// fail with ExpiredTokenException (as in AWS) rather than as unknown
	// keys; after that they are forgotten, which bounds the memory a
	// long-running server spends on minted credentials.
	expiredSessionRetention = 15 * time.Minute
	sweepInterval           = time.Minute
)

// AddRole registers (or replaces) a role. Sessions already issued keep the
// permissions they were issued with.
func (s *Server) AddRole(r Role) error {
	if _, _, ok := parseRoleARN(r.ARN); !ok {
		return fmt.Errorf("fakeaws: invalid role ARN %q (want arn:aws:iam::<account>:role/<name>)", r.ARN)
	}
	if len(r.TrustedAudiences) == 0 {
		r.TrustedAudiences = []string{defaultWebIdentityAudience}
	}
	if r.MaxSessionDuration <= 0 {
		r.MaxSessionDuration = defaultSessionDuration
	}
	// Copy the slices so later mutation by the caller cannot race with
	// request handling.
	r.TrustedSubjects = slices.Clone(r.TrustedSubjects)
	r.TrustedAudiences = slices.Clone(r.TrustedAudiences)
	r.TrustedRoles = slices.Clone(r.TrustedRoles)
	r.Actions = slices.Clone(r.Actions)
	r.Resources = slices.Clone(r.Resources)
	r.Statements = slices.Clone(r.Statements)
	s.iamMu.Lock()
	defer s.iamMu.Unlock()
	s.roles[r.ARN] = &r
	return nil
}

// SetRolePermissions replaces a role's permissions, for the role and every
// session already issued for it: as in AWS, where a role's permission
// policies are evaluated when each request is made, so revoking access
// takes effect for live sessions too (unlike AddRole, which models a new
// role definition). It is announced as IAM's PutRolePolicy of an inline
// policy named "fakeaws"; ChangeRole names another IAM call.
func (s *Server) SetRolePermissions(arn string, actions, resources []string, statements []Statement) error {
	return s.ChangeRole(arn, RoleChange{
		EventName: "PutRolePolicy", PolicyName: "fakeaws",
		Actions: actions, Resources: resources, Statements: statements,
	})
}

// IAM calls that change a role, as RoleChange.EventName names them.
const (
	IAMPutRolePolicy          = "PutRolePolicy"
	IAMDeleteRolePolicy       = "DeleteRolePolicy"
	IAMAttachRolePolicy       = "AttachRolePolicy"
	IAMDetachRolePolicy       = "DetachRolePolicy"
	IAMUpdateAssumeRolePolicy = "UpdateAssumeRolePolicy"
)

// RoleChange is a change to a role as one IAM call makes it. The fake has
// no IAM API: its permission model is not IAM's policy documents, so a
// test changes a role through ChangeRole, which applies the change and
// announces it as the IAM call's CloudTrail event would be.
type RoleChange struct {
	// EventName is the IAM call: one of the IAM* constants.
	EventName string
	// PolicyName names the inline policy (PutRolePolicy, DeleteRolePolicy).
	PolicyName string
	// PolicyARN names the managed policy (AttachRolePolicy,
	// DetachRolePolicy).
	PolicyARN string
	// Actions, Resources and Statements are the role's permissions after
	// a policy change. UpdateAssumeRolePolicy leaves them as they were.
	Actions    []string
	Resources  []string
	Statements []Statement
	// TrustedSubjects replace the role's web identity subjects, for
	// UpdateAssumeRolePolicy.
	TrustedSubjects []string
}

// ChangeRole applies a change to a role and its live sessions (see
// SetRolePermissions) and announces it, in us-east-1, as IAM's CloudTrail
// event.
func (s *Server) ChangeRole(arn string, c RoleChange) error {
	_, roleName, ok := parseRoleARN(arn)
	if !ok {
		return fmt.Errorf("fakeaws: invalid role ARN %q", arn)
	}
	req := map[string]any{"roleName": roleName}
	switch c.EventName {
	case IAMPutRolePolicy:
		req["policyName"] = c.PolicyName
		req["policyDocument"] = policyDocument(c.Actions, c.Resources, c.Statements)
	case IAMDeleteRolePolicy:
		req["policyName"] = c.PolicyName
	case IAMAttachRolePolicy, IAMDetachRolePolicy:
		req["policyArn"] = c.PolicyARN
	case IAMUpdateAssumeRolePolicy:
		if err := s.setRoleTrust(arn, c.TrustedSubjects); err != nil {
			return err
		}
		req["policyDocument"] = trustDocument(c.TrustedSubjects)
		s.publish(s.cloudTrailEvent(iamEventRegion, SourceIAM, c.EventName, s.controlCaller(), req, nil))
		return nil
	default:
		return fmt.Errorf("fakeaws: unknown IAM call %q", c.EventName)
	}
	if err := s.setRolePermissions(arn, c.Actions, c.Resources, c.Statements); err != nil {
		return err
	}
	s.publish(s.cloudTrailEvent(iamEventRegion, SourceIAM, c.EventName, s.controlCaller(), req, nil))
	return nil
}

// policyDocument renders permissions as an IAM policy document (JSON).
func policyDocument(actions, resources []string, statements []Statement) string {
	type stmt struct {
		Effect   string   `json:"Effect"`
		Action   []string `json:"Action"`
		Resource []string `json:"Resource"`
	}
	doc := struct {
		Version   string `json:"Version"`
		Statement []stmt `json:"Statement"`
	}{Version: "2012-10-17", Statement: []stmt{}}
	if len(actions) > 0 {
		doc.Statement = append(doc.Statement, stmt{"Allow", actions, resources})
	}
	for _, st := range statements {
		doc.Statement = append(doc.Statement, stmt{"Allow", st.Actions, st.Resources})
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// trustDocument renders web identity subjects as a trust policy (JSON).
func trustDocument(subjects []string) string {
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect":    "Allow",
			"Action":    "sts:AssumeRoleWithWebIdentity",
			"Condition": map[string]any{"StringLike": map[string]any{"sub": subjects}},
		}},
	})
	return string(b)
}

func (s *Server) setRoleTrust(arn string, subjects []string) error {
	s.iamMu.Lock()
	defer s.iamMu.Unlock()
	r, ok := s.roles[arn]
	if !ok {
		return fmt.Errorf("fakeaws: no role %q", arn)
	}
	updated := *r
	updated.TrustedSubjects = slices.Clone(subjects)
	s.roles[arn] = &updated
	return nil
}

func (s *Server) setRolePermissions(arn string, actions, resources []string, statements []Statement) error {
	s.iamMu.Lock()
	r, ok := s.roles[arn]
	if !ok {
		s.iamMu.Unlock()
		return fmt.Errorf("fakeaws: no role %q", arn)
	}
	updated := *r
	updated.Actions, updated.Resources, updated.Statements = slices.Clone(actions), slices.Clone(resources), slices.Clone(statements)
	s.roles[arn] = &updated
	var keys []string
	for k, sess := range s.sessions {
		if sess.roleARN == arn {
			keys = append(keys, k)
		}
	}
	s.iamMu.Unlock()
	for _, k := range keys {
		if id, ok := s.lookupIdentity(k); ok {
			next := *id
			next.Actions, next.Resources, next.Statements = actions, resources, statements
			s.AddIdentity(next)
		}
	}
	return nil
}

// RemoveRole forgets a role: it can no longer be assumed. Sessions already
// issued keep working until they expire, as in AWS.
func (s *Server) RemoveRole(arn string) {
	s.iamMu.Lock()
	defer s.iamMu.Unlock()
	delete(s.roles, arn)
}

func (s *Server) role(arn string) (*Role, bool) {
	s.iamMu.RLock()
	defer s.iamMu.RUnlock()
	r, ok := s.roles[arn]
	return r, ok
}

// parseRoleARN splits "arn:<partition>:iam::<account>:role/[path/]<name>".
func parseRoleARN(arn string) (account, name string, ok bool) {
	f := strings.SplitN(arn, ":", 6)
	if len(f) != 6 || f[0] != "arn" || f[1] == "" || f[2] != "iam" || f[3] != "" || !isAccountID(f[4]) {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(f[5], "role/")
	if !ok || rest == "" || strings.HasSuffix(rest, "/") {
		return "", "", false
	}
	return f[4], rest[strings.LastIndexByte(rest, '/')+1:], true
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// roleUniqueID is the role's stable "AROA..." id, derived from its ARN so
// that it is the same across restarts of a seeded server.
func roleUniqueID(roleARN string) string {
	sum := sha256.Sum256([]byte(roleARN))
	return "AROA" + base32.StdEncoding.EncodeToString(sum[:])[:17]
}

func (r *Role) trustsSubject(sub string) bool {
	return slices.ContainsFunc(r.TrustedSubjects, func(p string) bool { return globMatch(p, sub) })
}

// acceptedAudience returns the first token audience the role accepts.
func (r *Role) acceptedAudience(auds []string) (string, bool) {
	for _, a := range auds {
		if slices.ContainsFunc(r.TrustedAudiences, func(p string) bool { return globMatch(p, a) }) {
			return a, true
		}
	}
	return "", false
}

// trustsPrincipal reports whether any of the caller's principal ARNs (its
// role and its own ARN) is trusted to AssumeRole into r.
func (r *Role) trustsPrincipal(principals ...string) bool {
	for _, p := range r.TrustedRoles {
		for _, principal := range principals {
			if principal != "" && globMatch(p, principal) {
				return true
			}
		}
	}
	return false
}

// sessionDuration validates a requested DurationSeconds against the role
// and picks the lifetime of the credentials.
func (r *Role) sessionDuration(requested *int, chained bool) (time.Duration, *apiError) {
	d := min(defaultSessionDuration, r.MaxSessionDuration)
	if requested != nil {
		d = time.Duration(*requested) * time.Second
		if chained && d > chainedSessionLimit {
			return 0, stsValidationErr("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.")
		}
		if d > r.MaxSessionDuration {
			return 0, stsValidationErr("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
		}
	}
	if r.CredentialLifetime > 0 {
		d = r.CredentialLifetime
	}
	return d, nil
}

// session is what the server remembers about credentials it minted.
type session struct {
	roleARN       string
	assumedRoleID string // "AROA...:<session name>"
	account       string
	expires       time.Time
}

// minted is a freshly issued session.
type minted struct {
	id Identity
	session
}

// mintSession issues credentials for a session of role and registers them,
// so that the other services accept them with the role's permissions.
func (s *Server) mintSession(r *Role, sessionName string, d time.Duration) minted {
	account, name, _ := parseRoleARN(r.ARN) // validated by AddRole
	m := minted{
		id: Identity{
			AccessKeyID:     "ASIA" + randomUpper(16),
			SecretAccessKey: randomAlnum(40),
			SessionToken:    "FwoGZXIvYXdzE" + randomAlnum(300),
			ARN:             fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", account, name, sessionName),
			Actions:         r.Actions,
			Resources:       r.Resources,
			Statements:      r.Statements,
			Expires:         s.now().Add(d),
		},
		session: session{
			roleARN:       r.ARN,
			assumedRoleID: roleUniqueID(r.ARN) + ":" + sessionName,
			account:       account,
		},
	}
	m.expires = m.id.Expires
	s.AddIdentity(m.id)
	s.rememberSession(m.id.AccessKeyID, m.session)
	return m
}

// rememberSession records a minted session and, at most once per
// sweepInterval, forgets sessions that expired long ago.
func (s *Server) rememberSession(accessKeyID string, sess session) {
	now := s.now()
	var stale []string
	s.iamMu.Lock()
	s.sessions[accessKeyID] = sess
	if now.Sub(s.lastSweep) >= sweepInterval {
		s.lastSweep = now
		for k, v := range s.sessions {
			if now.Sub(v.expires) > expiredSessionRetention {
				delete(s.sessions, k)
				stale = append(stale, k)
			}
		}
	}
	s.iamMu.Unlock()
	for _, k := range stale {
		s.RemoveIdentity(k)
	}
}

// callerRole returns the role a caller is a session of (if any) and
// whether it is a role session at all. Sessions minted here are looked up;
// identities registered by hand with an assumed-role ARN count as sessions
// of the path-less role ARN their name implies.
func (s *Server) callerRole(id *Identity) (roleARN string, isSession bool) {
	s.iamMu.RLock()
	sess, ok := s.sessions[id.AccessKeyID]
	s.iamMu.RUnlock()
	if ok {
		return sess.roleARN, true
	}
	// arn:aws:sts::<account>:assumed-role/<role>/<session>
	f := strings.SplitN(id.ARN, ":", 6)
	if len(f) == 6 && f[2] == "sts" {
		if rest, ok := strings.CutPrefix(f[5], "assumed-role/"); ok {
			if roleName, _, ok := strings.Cut(rest, "/"); ok {
				return fmt.Sprintf("arn:%s:iam::%s:role/%s", f[1], f[4], roleName), true
			}
		}
	}
	return "", false
}

// callerAccount is the account a principal belongs to, from its ARN.
func (s *Server) callerAccount(id *Identity) string {
	if f := strings.SplitN(id.ARN, ":", 6); len(f) == 6 && isAccountID(f[4]) {
		return f[4]
	}
	return s.account
}

func randomUpper(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	return randomFrom(alphabet, n)
}
