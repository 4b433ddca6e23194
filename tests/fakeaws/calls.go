package fakeaws

import (
	"slices"
	"time"
)

// Outcomes recorded for calls that did not end in an AWS error code.
const (
	OutcomeOK       = "ok"
	OutcomeReset    = "ConnectionReset"   // FaultReset closed the connection
	OutcomeHang     = "Hang"              // FaultHang held the request
	OutcomeCanceled = "ClientCanceled"    // the client gave up (or Close ran) during injected latency
	OutcomeDown     = "RegionUnavailable" // SetRegionDown answered 503
)

// Call records one request. It never holds secret or parameter values, only
// names, so call logs are safe to print.
type Call struct {
	Time time.Time
	// Service is ServiceSecretsManager, ServiceSSM, ServiceSTS, ServiceSQS
	// or ServiceEKSAuth ("" if the request was unrecognised).
	Service   string
	Operation string // e.g. "GetSecretValue", "AssumeRoleWithWebIdentity"
	// Region comes from the SigV4 credential scope. Unsigned requests (STS
	// AssumeRoleWithWebIdentity) carry no region: they record the region of
	// the RegionalHandler that served them, or "". Pod Identity agent calls
	// record the name given to PodIdentityAgentNamed.
	Region      string
	AccessKeyID string
	Identity    string // principal ARN; empty if the request was not authenticated
	// Subject is the "sub" claim of the web identity or ServiceAccount token
	// presented to STS or the Pod Identity agent (never the token itself).
	Subject string
	// Outcome is "ok", the AWS error code returned, or one of the Outcome*
	// constants.
	Outcome string
	// Resources are the secret ids / parameter names (or path) the call
	// asked for, as sent by the client; for STS and the Pod Identity agent,
	// the ARN of the role being assumed.
	Resources []string
}

// record stores a call. Handlers record a call before writing any byte of
// the response, so a client that has seen a response can rely on the call
// being counted.
func (s *Server) record(rc *reqCtx) {
	c := rc.call
	s.callMu.Lock()
	s.calls = append(s.calls, c)
	s.callMu.Unlock()
	if s.logger != nil {
		s.logger.Info("call",
			"service", c.Service,
			"operation", c.Operation,
			"region", c.Region,
			"accessKeyId", c.AccessKeyID,
			"identity", c.Identity,
			"subject", c.Subject,
			"outcome", c.Outcome,
			"resources", c.Resources,
			"ms", time.Since(rc.start).Milliseconds(),
		)
	}
}

// Calls returns a copy of every recorded call, oldest first.
func (s *Server) Calls() []Call {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		c.Resources = slices.Clone(c.Resources)
		out[i] = c
	}
	return out
}

// CountCalls counts recorded calls for which match returns true. match must
// not modify the Call's Resources.
func (s *Server) CountCalls(match func(Call) bool) int {
	// Recorded calls are append-only, so a snapshot of the slice header can
	// be read without the lock (and match may call back into the Server).
	s.callMu.Lock()
	calls := s.calls
	s.callMu.Unlock()
	n := 0
	for _, c := range calls {
		if match(c) {
			n++
		}
	}
	return n
}

// Count counts calls to one operation of one service (whatever the outcome).
// An empty operation counts every call to the service.
func (s *Server) Count(service, operation string) int {
	return s.CountCalls(func(c Call) bool {
		return c.Service == service && (operation == "" || c.Operation == operation)
	})
}

// ResetCalls forgets all recorded calls.
func (s *Server) ResetCalls() {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	s.calls = nil
}
