package fakeaws

import (
	"context"
	"net/http"
	"time"
)

// FaultKind selects how an injected fault manifests.
type FaultKind int

const (
	// FaultThrottle answers HTTP 400 ThrottlingException ("Rate exceeded"),
	// which the SDK's standard retryer treats as retryable. STS answers 400
	// Throttling, the Pod Identity agent 429 ThrottlingException and SQS
	// 403 RequestThrottled.
	FaultThrottle FaultKind = iota + 1
	// FaultServerError answers HTTP 500 InternalServiceError (Secrets
	// Manager), InternalServerError (SSM), InternalFailure (STS),
	// InternalServerException (Pod Identity agent) or InternalError (SQS).
	FaultServerError
	// FaultHang never answers: the handler blocks until the client gives up
	// (its context is cancelled or its connection closes) or the Server is
	// closed, then drops the connection. Use it to exercise client timeouts.
	FaultHang
	// FaultReset closes the TCP connection without an HTTP response (with
	// SO_LINGER 0, so the client sees a reset rather than a clean EOF).
	FaultReset
	// FaultDecryptionFailure answers Secrets Manager's DecryptionFailure (the
	// KMS key cannot decrypt the secret). On SSM it answers InvalidKeyId;
	// on STS and the Pod Identity agent it is a FaultServerError.
	FaultDecryptionFailure
	// FaultError answers with Fault.Code, Fault.Status and Fault.Message,
	// for any error not covered above.
	FaultError
)

func (k FaultKind) String() string {
	switch k {
	case FaultThrottle:
		return "throttle"
	case FaultServerError:
		return "server-error"
	case FaultHang:
		return "hang"
	case FaultReset:
		return "reset"
	case FaultDecryptionFailure:
		return "decryption-failure"
	case FaultError:
		return "error"
	}
	return "unknown"
}

// Fault describes failures to inject. Empty selector fields match anything.
type Fault struct {
	// Region is e.g. "us-east-1", or the name of a Pod Identity agent
	// (PodIdentityAgentNamed), compared with Call.Region.
	Region      string
	Service     string // ServiceSecretsManager, ServiceSSM, ServiceSTS, ServiceSQS or ServiceEKSAuth
	Operation   string // e.g. "GetSecretValue", "AssumeRoleWithWebIdentity"
	AccessKeyID string // only requests signed with this key

	Kind FaultKind
	// Times is how many matching requests fail; 0 means every matching
	// request until ClearFaults.
	Times int

	// For FaultError only.
	Code    string
	Status  int // defaults to 400
	Message string
}

type activeFault struct {
	Fault
	remaining int // meaningful only when Times > 0
}

func (f *Fault) matches(rc *reqCtx) bool {
	return (f.Region == "" || f.Region == rc.call.Region) &&
		(f.Service == "" || f.Service == rc.call.Service) &&
		(f.Operation == "" || f.Operation == rc.call.Operation) &&
		(f.AccessKeyID == "" || f.AccessKeyID == rc.call.AccessKeyID)
}

// InjectFault adds a fault. Faults are consulted in injection order and the
// first match applies; a fault with Times > 0 is removed once used up.
func (s *Server) InjectFault(f Fault) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = append(s.faults, &activeFault{Fault: f, remaining: f.Times})
}

// ClearFaults removes all injected faults (not region outages or latency).
func (s *Server) ClearFaults() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = nil
}

// SetRegionDown makes every call to region fail with HTTP 503
// ServiceUnavailableException (before authentication, as an unavailable
// regional endpoint would), or restores it. A Pod Identity agent's name
// counts as its region. The SDK's standard retryer
// retries 503s. For a connection-level outage, inject FaultReset with Region
// set instead.
func (s *Server) SetRegionDown(region string, down bool) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if down {
		s.regionsDown[region] = true
	} else {
		delete(s.regionsDown, region)
	}
}

// SetLatency delays every call by d before it is processed. A per-operation
// latency (SetOperationLatency) takes precedence.
func (s *Server) SetLatency(d time.Duration) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.latency = d
}

// SetOperationLatency delays calls to one operation of one service; d == 0
// removes the override.
func (s *Server) SetOperationLatency(service, operation string, d time.Duration) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	key := service + "." + operation
	if d == 0 {
		delete(s.opLatency, key)
	} else {
		s.opLatency[key] = d
	}
}

func (s *Server) regionDown(region string) bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.regionsDown[region]
}

func (s *Server) latencyFor(service, operation string) time.Duration {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if d, ok := s.opLatency[service+"."+operation]; ok {
		return d
	}
	return s.latency
}

// takeFault returns the first fault matching the request, consuming one use.
func (s *Server) takeFault(rc *reqCtx) (Fault, bool) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	for i, f := range s.faults {
		if !f.matches(rc) {
			continue
		}
		if f.Times > 0 {
			f.remaining--
			if f.remaining <= 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return f.Fault, true
	}
	return Fault{}, false
}

// faultError maps an error-type fault to the service's wire error.
func faultError(service string, f Fault) *apiError {
	switch f.Kind {
	case FaultThrottle:
		switch service {
		case ServiceSTS:
			// Query-protocol services say "Throttling"; the SDK's retryer
			// knows both spellings.
			return clientErr("Throttling", "Rate exceeded")
		case ServiceEKSAuth:
			return newErr(http.StatusTooManyRequests, "ThrottlingException", "Rate exceeded")
		case ServiceSQS:
			return sqsThrottled()
		}
		return clientErr("ThrottlingException", "Rate exceeded")
	case FaultServerError, FaultDecryptionFailure:
		switch service {
		case ServiceSTS:
			// STS has no KMS: a decryption fault is just a server error.
			return newErr(http.StatusInternalServerError, "InternalFailure", "An internal error occurred.")
		case ServiceEKSAuth:
			return newErr(http.StatusInternalServerError, "InternalServerException", "An internal error occurred.")
		case ServiceSQS:
			// SQS has no KMS-encrypted reads here: a decryption fault is a server error.
			return sqsErr(http.StatusInternalServerError, "InternalError", "InternalError", "We encountered an internal error. Please try again.")
		case ServiceSSM:
			if f.Kind == FaultDecryptionFailure {
				return clientErr("InvalidKeyId", "The KMS key used to encrypt the parameter could not be used to decrypt it.")
			}
			return newErr(http.StatusInternalServerError, "InternalServerError", "An internal error occurred.")
		}
		if f.Kind == FaultDecryptionFailure {
			return clientErr("DecryptionFailure", "Secrets Manager can't decrypt the protected secret text using the provided KMS key.")
		}
		return newErr(http.StatusInternalServerError, "InternalServiceError", "An error occurred on the server side.")
	default:
		status := f.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		return newErr(status, f.Code, "%s", f.Message)
	}
}

// sleepCtx waits for d, returning false early if the request is cancelled or
// the server closed.
func (s *Server) sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}
