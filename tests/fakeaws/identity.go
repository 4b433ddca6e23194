package fakeaws

import (
	"fmt"
	"strings"
	"time"
)

// Identity is a set of credentials the fake accepts, together with the
// permissions of the principal they belong to.
//
// Permissions are a deliberately small subset of IAM: a request is allowed
// when some grant (the top-level Actions×Resources, or any Statement) has an
// action pattern matching the IAM action and a resource pattern matching the
// resource ARN. There are no denies and no conditions.
type Identity struct {
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken, when set, must be sent as X-Amz-Security-Token; when
	// empty, a request carrying a token is rejected (as AWS rejects a
	// long-term key presented with a session token).
	SessionToken string
	// ARN names the principal in AccessDenied messages and call records, e.g.
	// "arn:aws:sts::123456789012:assumed-role/app/session". Defaults to an IAM
	// user ARN derived from the access key id.
	ARN string
	// Actions are IAM action patterns ("secretsmanager:GetSecretValue",
	// "secretsmanager:*", "*"), matched case-insensitively.
	Actions []string
	// Resources are ARN patterns ("arn:aws:secretsmanager:*:*:secret:app/*",
	// "*"). Actions that have no resource-level permissions in IAM (e.g.
	// secretsmanager:BatchGetSecretValue, secretsmanager:ListSecrets) are
	// checked against the resource "*", so only a "*" pattern grants them.
	Resources []string
	// Statements are additional grants, for principals whose permissions
	// are not a single Actions×Resources product.
	Statements []Statement
	// Expires, when non-zero, is when the credentials stop working; requests
	// after it fail with ExpiredTokenException.
	Expires time.Time
}

// Statement is one Allow grant.
type Statement struct {
	Actions   []string `yaml:"actions"`
	Resources []string `yaml:"resources"`
}

// AllowAll returns an identity permitted to do everything, for tests that
// are not about authorisation.
func AllowAll(accessKeyID, secretAccessKey string) Identity {
	return Identity{
		AccessKeyID:     accessKeyID,
		SecretAccessKey: secretAccessKey,
		Actions:         []string{"*"},
		Resources:       []string{"*"},
	}
}

// allows reports whether the identity may perform action on resource.
func (id *Identity) allows(action, resource string) bool {
	if grantAllows(id.Actions, id.Resources, action, resource) {
		return true
	}
	for _, st := range id.Statements {
		if grantAllows(st.Actions, st.Resources, action, resource) {
			return true
		}
	}
	return false
}

func grantAllows(actions, resources []string, action, resource string) bool {
	actionOK := false
	for _, p := range actions {
		// IAM action names are case-insensitive; ARNs are not.
		if globMatch(strings.ToLower(p), strings.ToLower(action)) {
			actionOK = true
			break
		}
	}
	if !actionOK {
		return false
	}
	for _, p := range resources {
		if globMatch(p, resource) {
			return true
		}
	}
	return false
}

// globMatch implements IAM-style wildcards: '*' matches any run of
// characters (including '/' and ':') and '?' matches exactly one.
func globMatch(pattern, s string) bool {
	// Iterative matcher with single-star backtracking: linear in practice and
	// free of the exponential blowup of a naive recursive matcher.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			starP, starI = p, i
			p++
		case starP >= 0:
			starI++
			p, i = starP+1, starI
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// accessDenied builds IAM's implicit-deny message. Actions without
// resource-level permissions are reported without "on resource".
func accessDenied(principal, action, resource string) *apiError {
	if resource == "*" || resource == "" {
		return clientErr("AccessDeniedException",
			"User: %s is not authorized to perform: %s because no identity-based policy allows the %s action",
			principal, action, action)
	}
	return clientErr("AccessDeniedException",
		"User: %s is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action",
		principal, action, resource, action)
}

// AddIdentity registers (or replaces) credentials. It is safe to call while
// the server is handling requests, e.g. from a fake STS minting temporary
// credentials.
func (s *Server) AddIdentity(id Identity) {
	if id.ARN == "" {
		id.ARN = fmt.Sprintf("arn:aws:iam::%s:user/%s", s.account, id.AccessKeyID)
	}
	// Copy the slices so later mutation by the caller cannot race with
	// request handling.
	id.Actions = append([]string(nil), id.Actions...)
	id.Resources = append([]string(nil), id.Resources...)
	id.Statements = append([]Statement(nil), id.Statements...)
	s.idMu.Lock()
	defer s.idMu.Unlock()
	s.identities[id.AccessKeyID] = &id
}

// RemoveIdentity forgets credentials; later requests signed with them fail
// with UnrecognizedClientException.
func (s *Server) RemoveIdentity(accessKeyID string) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	delete(s.identities, accessKeyID)
}

// lookupIdentity returns a snapshot of the identity for an access key id.
func (s *Server) lookupIdentity(accessKeyID string) (*Identity, bool) {
	s.idMu.RLock()
	defer s.idMu.RUnlock()
	id, ok := s.identities[accessKeyID]
	return id, ok
}
