package fakeaws

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// The EKS Pod Identity agent: a node-local HTTP endpoint (169.254.170.23 /
// fd00:ec2::23) that exchanges a pod's ServiceAccount token, sent raw in the
// Authorization header, for credentials of the role associated with the
// pod's ServiceAccount. The real agent forwards the token to the EKS Auth
// API (AssumeRoleForPodIdentity) and propagates its HTTP status; the fake
// validates the token itself, with the same issuer and keys as STS.
//
// Answers (errors are JSON {"code", "message"} with Content-Type
// application/json, which the SDK's endpointcreds client decodes into an
// error whose ErrorCode() is the code):
//
//	200                                 credentials
//	400 InvalidRequestException        no token
//	400 InvalidTokenException          malformed, bad signature, unknown key or
//	                                    issuer, not yet valid, audience is not
//	                                    pods.eks.amazonaws.com, subject is not
//	                                    a ServiceAccount
//	400 ExpiredTokenException          token expired
//	404 ResourceNotFoundException      no association for the ServiceAccount
//	400 AccessDeniedException          the associated role does not exist
//	500 InternalServerException        the JWKS URL could not be fetched
//	404 NotFoundException / 405        wrong path / method
//
// Injected faults: throttling answers 429 ThrottlingException (the SDK
// retries 429s), server errors 500 InternalServerException, and an outage
// (SetRegionDown with the agent's name) 503 ServiceUnavailableException.

const (
	podIdentityAudience        = "pods.eks.amazonaws.com"
	podIdentityPath            = "/v1/credentials"
	opAssumeRoleForPodIdentity = "AssumeRoleForPodIdentity"
	// The cluster name that appears in Pod Identity session names.
	podIdentityClusterName = "fakeaws"
)

// AddPodIdentityAssociation associates a ServiceAccount with a role, as
// CreatePodIdentityAssociation does. The role need not exist yet; it is
// resolved on every credentials request.
func (s *Server) AddPodIdentityAssociation(namespace, serviceAccount, roleARN string) {
	s.iamMu.Lock()
	defer s.iamMu.Unlock()
	s.podAssoc[namespace+"/"+serviceAccount] = roleARN
}

// RemovePodIdentityAssociation deletes an association. Credentials already
// issued keep working until they expire.
func (s *Server) RemovePodIdentityAssociation(namespace, serviceAccount string) {
	s.iamMu.Lock()
	defer s.iamMu.Unlock()
	delete(s.podAssoc, namespace+"/"+serviceAccount)
}

// PodIdentityAgent returns the handler of an EKS Pod Identity agent serving
// GET /v1/credentials. Serve it on its own listener: clients reach it
// through AWS_CONTAINER_CREDENTIALS_FULL_URI (http://<addr>/v1/credentials)
// and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
func (s *Server) PodIdentityAgent() http.Handler { return s.PodIdentityAgentNamed("") }

// PodIdentityAgentNamed is PodIdentityAgent for one of several agent
// listeners (e.g. the IPv4 and the IPv6 address). Its calls record name as
// their Region, so Fault.Region, SetRegionDown and call counts can target
// one listener.
func (s *Server) PodIdentityAgentNamed(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveAgent(w, r, name)
	})
}

type agentCredentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	AccountID       string `json:"AccountId"`
	Expiration      string `json:"Expiration"` // RFC 3339, as the real agent sends it
}

func (s *Server) serveAgent(w http.ResponseWriter, r *http.Request, name string) {
	rc := &reqCtx{start: time.Now(), r: r, call: Call{
		Time:      s.now(),
		Service:   ServiceEKSAuth,
		Operation: opAssumeRoleForPodIdentity,
		Region:    name,
	}}
	switch {
	case r.URL.Path != podIdentityPath:
		rc.call.Operation = ""
		s.fail(w, rc, ServiceEKSAuth, newErr(http.StatusNotFound, "NotFoundException", "Not found: %s", r.URL.Path))
		return
	case r.Method != http.MethodGet:
		s.fail(w, rc, ServiceEKSAuth, newErr(http.StatusMethodNotAllowed, "InvalidRequestException", "Method %s not allowed", r.Method))
		return
	}
	if !s.checkOutage(w, rc, ServiceEKSAuth) || !s.disrupt(w, rc, ServiceEKSAuth) {
		return
	}
	out, e := s.podIdentityCredentials(rc)
	if e != nil {
		s.fail(w, rc, ServiceEKSAuth, e)
		return
	}
	rc.call.Outcome = OutcomeOK
	s.record(rc)
	body, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (s *Server) podIdentityCredentials(rc *reqCtx) (*agentCredentials, *apiError) {
	token := rc.r.Header.Get("Authorization")
	if token == "" {
		return nil, clientErr("InvalidRequestException", "Service account token cannot be empty")
	}
	claims, terr := s.oidc.verifyToken(rc.r.Context(), token, s.now())
	if claims != nil {
		rc.call.Subject = claims.Subject
	}
	if terr != nil {
		s.logTokenRejection(terr)
		return nil, agentTokenErr(terr)
	}
	if !slices.Contains(claims.Audience, podIdentityAudience) {
		return nil, clientErr("InvalidTokenException", "The token audience must be %s", podIdentityAudience)
	}
	namespace, serviceAccount, ok := serviceAccountFromSubject(claims.Subject)
	if !ok {
		return nil, clientErr("InvalidTokenException", "The token subject is not a Kubernetes service account")
	}

	s.iamMu.RLock()
	roleARN, ok := s.podAssoc[namespace+"/"+serviceAccount]
	s.iamMu.RUnlock()
	if !ok {
		return nil, newErr(http.StatusNotFound, "ResourceNotFoundException",
			"No Pod Identity Association found for service account %s in namespace %s", serviceAccount, namespace)
	}
	rc.call.Resources = []string{roleARN}
	role, ok := s.role(roleARN)
	if !ok {
		return nil, clientErr("AccessDeniedException", "Unable to assume role %s", roleARN)
	}

	d := podIdentitySessionDuration
	if role.CredentialLifetime > 0 {
		d = role.CredentialLifetime
	}
	pod := serviceAccount
	if k := claims.Kubernetes; k != nil && k.Pod != nil && k.Pod.Name != "" {
		pod = k.Pod.Name
	}
	m := s.mintSession(role, podSessionName(pod), d)
	return &agentCredentials{
		AccessKeyID:     m.id.AccessKeyID,
		SecretAccessKey: m.id.SecretAccessKey,
		Token:           m.id.SessionToken,
		AccountID:       m.account,
		Expiration:      m.expires.UTC().Format(time.RFC3339Nano),
	}, nil
}

// podSessionName follows EKS: "eks-<cluster>-<pod>-<uuid>", with the pod
// name shortened to fit the 64-character limit.
func podSessionName(pod string) string {
	const prefix = "eks-" + podIdentityClusterName + "-"
	id := newUUID()
	if room := 64 - len(prefix) - 1 - len(id); len(pod) > room {
		pod = pod[:room]
	}
	return prefix + pod + "-" + id
}

// agentTokenErr maps a rejected ServiceAccount token to EKS Auth's errors.
func agentTokenErr(e *tokenError) *apiError {
	switch e.kind {
	case tokExpired:
		return clientErr("ExpiredTokenException", "The service account token has expired")
	case tokKeysUnavailable:
		return newErr(http.StatusInternalServerError, "InternalServerException", "Unable to retrieve the keys to validate the service account token")
	case tokMalformed:
		return clientErr("InvalidTokenException", "Service account token cannot be parsed")
	}
	return clientErr("InvalidTokenException", "The service account token is invalid")
}

// writeAgentError writes the agent's JSON error. The SDK's endpointcreds
// client decodes {"code","message"} only when the Content-Type is exactly
// application/json.
func writeAgentError(w http.ResponseWriter, e *apiError) {
	body, _ := json.Marshal(map[string]string{"code": e.Code, "message": e.Message})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
