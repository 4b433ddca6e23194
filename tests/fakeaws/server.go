package fakeaws

import (
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// DefaultAccountID is the account that owns every resource unless
// Options.AccountID says otherwise.
const DefaultAccountID = "123456789012"

// Options configures a Server.
type Options struct {
	// AccountID appears in ARNs; defaults to DefaultAccountID.
	AccountID string
	// Logger, if set, receives one line per call (never secret values).
	Logger *slog.Logger
	// Now is the server clock used for credential expiry, resource
	// timestamps and the SigV4 15-minute skew check (so it must stay within
	// minutes of the signer's clock); defaults to Clock's Now.
	Now func() time.Time
	// Clock keeps SQS's time: message delays, visibility timeouts, long
	// polls and event delivery delays; defaults to the real clock. Tests
	// step a fake one (k8s.io/utils/clock/testing) instead of waiting.
	// Now defaults to it, so a fake clock stepped past SigV4's 15 minutes
	// of skew needs Now set to time.Now.
	Clock clock.Clock
}

// Server is a fake AWS Secrets Manager, SSM Parameter Store, STS and SQS
// endpoint, plus an EKS Pod Identity agent (PodIdentityAgent), with the
// EventBridge rules that send change events to queues (events.go). All regions
// are served from one URL; the region of a request is taken from its SigV4
// credential scope, and data is partitioned by region.
//
// All methods are safe for concurrent use.
type Server struct {
	account   string
	logger    *slog.Logger
	now       func() time.Time
	closed    chan struct{}
	closeOnce sync.Once

	idMu       sync.RWMutex
	identities map[string]*Identity // by access key id; values are immutable

	faultMu     sync.Mutex
	faults      []*activeFault
	regionsDown map[string]bool
	latency     time.Duration
	opLatency   map[string]time.Duration // "service.Operation"

	quotas quotas

	callMu sync.Mutex
	calls  []Call

	dataMu  sync.RWMutex
	regions map[string]*regionData

	iamMu     sync.RWMutex
	roles     map[string]*Role   // by ARN; values are immutable
	podAssoc  map[string]string  // "namespace/serviceAccount" → role ARN
	sessions  map[string]session // credentials minted by STS or the agent, by access key id
	lastSweep time.Time          // server clock, see sweepSessions

	oidc *oidcVerifier

	clock clock.Clock
	sqsMu sync.Mutex
	// queues are by region, then name. Guarded by sqsMu, as is delivery.
	queues   map[string]map[string]*queue
	delivery deliveryState
}

// regionData is everything stored in one region.
type regionData struct {
	secrets map[string]*secret    // by name
	params  map[string]*parameter // by name
}

// New returns an empty server: no identities, no data.
func New(opts Options) *Server {
	s := &Server{
		account:     opts.AccountID,
		logger:      opts.Logger,
		now:         opts.Now,
		closed:      make(chan struct{}),
		identities:  map[string]*Identity{},
		regionsDown: map[string]bool{},
		opLatency:   map[string]time.Duration{},
		regions:     map[string]*regionData{},
		roles:       map[string]*Role{},
		podAssoc:    map[string]string{},
		sessions:    map[string]session{},
		oidc:        newOIDCVerifier(),
		clock:       opts.Clock,
		queues:      map[string]map[string]*queue{},
	}
	if s.account == "" {
		s.account = DefaultAccountID
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.now == nil {
		s.now = s.clock.Now
	}
	s.delivery.reset(Delivery{})
	return s
}

// AccountID is the account that owns the server's resources.
func (s *Server) AccountID() string { return s.account }

// Handler returns the HTTP handler serving Secrets Manager, SSM and STS.
func (s *Server) Handler() http.Handler { return s }

// Close releases requests held by FaultHang or injected latency, so that an
// http.Server or httptest.Server wrapping this handler can shut down. The
// Server keeps answering other requests after Close.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// region returns the data of a region, creating it on first write. Callers
// hold dataMu for writing.
func (s *Server) region(name string) *regionData {
	rd, ok := s.regions[name]
	if !ok {
		rd = &regionData{secrets: map[string]*secret{}, params: map[string]*parameter{}}
		s.regions[name] = rd
	}
	return rd
}

// regionRead returns a region's data for reading, or an empty one. Callers
// hold dataMu (read or write).
func (s *Server) regionRead(name string) *regionData {
	if rd, ok := s.regions[name]; ok {
		return rd
	}
	return &regionData{}
}

// reqCtx is the state of one request as it moves through the pipeline.
type reqCtx struct {
	start time.Time // wall clock, for the logged duration (Options.Now may be fake)
	r     *http.Request
	body  []byte
	form  url.Values // parsed body of STS (AWS query protocol) requests
	call  Call
	ident *Identity
	// events are the change events of a write, published once it succeeded.
	events []event
}

// authorize checks the caller's permission for an IAM action on a resource
// ARN ("*" for actions without resource-level permissions).
func (rc *reqCtx) authorize(action, resource string) *apiError {
	if rc.ident.allows(action, resource) {
		return nil
	}
	return accessDenied(rc.ident.ARN, action, resource)
}

// ServeHTTP runs the request pipeline: route, region outage, latency,
// injected faults, authentication, then the operation itself.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "")
}

// RegionalHandler serves the same APIs as Handler, but attributes requests
// that carry no SigV4 credential scope to region. Only STS
// AssumeRoleWithWebIdentity is sent unsigned by the SDK, so its region is
// otherwise unknowable; serve a RegionalHandler per region (each on its own
// httptest server) when a test needs region outages or region-targeted
// faults to hit web identity federation. Signed requests keep the region of
// their scope.
func (s *Server) RegionalHandler(region string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, region)
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, unsignedRegion string) {
	if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
		// Not an AWS API: lets scripts poll for readiness.
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	rc := &reqCtx{start: time.Now(), r: r, call: Call{Time: s.now()}}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	rc.call.Service, rc.call.Operation, rc.form = classify(r, body)
	errService := rc.call.Service // picks the error format and message casing
	if err != nil {
		s.fail(w, rc, errService, clientErr("SerializationException", "Could not read request body"))
		return
	}
	rc.body = body

	auth, aerr := parseAuthorization(r.Header.Get("Authorization"))
	if auth != nil {
		rc.call.Region, rc.call.AccessKeyID = auth.Region, auth.AccessKeyID
	} else {
		rc.call.Region = unsignedRegion
	}

	if !s.checkOutage(w, rc, errService) {
		return
	}
	if r.Method != http.MethodPost || rc.call.Service == "" {
		s.fail(w, rc, errService, clientErr("UnknownOperationException", "Unknown operation %q", r.Header.Get("X-Amz-Target")))
		return
	}
	if !s.disrupt(w, rc, errService) {
		return
	}

	if rc.call.Service == ServiceSTS {
		s.serveSTS(w, rc, auth, aerr)
		return
	}
	if aerr != nil {
		s.fail(w, rc, errService, aerr)
		return
	}
	if e := s.authenticate(rc, auth); e != nil {
		s.fail(w, rc, errService, e)
		return
	}

	var out any
	var e *apiError
	switch rc.call.Service {
	case ServiceSecretsManager:
		out, e = s.smDispatch(rc)
	case ServiceSSM:
		out, e = s.ssmDispatch(rc)
	case ServiceSQS:
		out, e = s.sqsDispatch(rc)
	}
	if e != nil {
		s.fail(w, rc, errService, e)
		return
	}
	rc.call.Outcome = OutcomeOK
	s.record(rc)
	// The change's events are queued before the writer hears of its
	// success, as AWS has recorded a call by the time it answers.
	s.publish(rc.events...)
	writeJSONAs(w, contentTypeOf(rc.call.Service), out)
}

// checkOutage answers 503 if the request's region (or Pod Identity agent
// name) is down, before anything else: the regional endpoint is gone. It
// reports whether the request may proceed.
func (s *Server) checkOutage(w http.ResponseWriter, rc *reqCtx, service string) bool {
	if rc.call.Region == "" || !s.regionDown(rc.call.Region) {
		return true
	}
	rc.call.Outcome = OutcomeDown
	s.record(rc)
	writeError(w, service, unavailableErr(service, rc.call.Region))
	return false
}

// disrupt applies injected latency, the account's quotas (SetQuotas) and
// faults, in that order. It reports
// whether the request may proceed; if not, the request has been answered
// or its connection dropped.
func (s *Server) disrupt(w http.ResponseWriter, rc *reqCtx, service string) bool {
	if !s.sleepCtx(rc.r.Context(), s.latencyFor(rc.call.Service, rc.call.Operation)) {
		rc.call.Outcome = OutcomeCanceled
		s.record(rc)
		resetConnection(w) // as for hangs: no empty 200 if Close released us
		return false
	}
	if s.overQuota(rc) {
		s.fail(w, rc, service, faultError(rc.call.Service, Fault{Kind: FaultThrottle}))
		return false
	}
	f, ok := s.takeFault(rc)
	if !ok {
		return true
	}
	switch f.Kind {
	case FaultReset:
		rc.call.Outcome = OutcomeReset
		s.record(rc)
		resetConnection(w)
	case FaultHang:
		rc.call.Outcome = OutcomeHang
		s.record(rc)
		select {
		case <-rc.r.Context().Done():
		case <-s.closed:
		}
		// Never let a released hang look like an (empty) success.
		resetConnection(w)
	default:
		s.fail(w, rc, service, faultError(rc.call.Service, f))
	}
	return false
}

// fail records the call with the error's code, then writes the error.
func (s *Server) fail(w http.ResponseWriter, rc *reqCtx, service string, e *apiError) {
	rc.call.Outcome = e.Code
	s.record(rc)
	writeError(w, service, e)
}

// authenticate resolves the access key and verifies the signature and
// session token, in the order AWS reports problems.
func (s *Server) authenticate(rc *reqCtx, auth *sigV4Auth) *apiError {
	if auth.Service != rc.call.Service {
		return clientErr("InvalidSignatureException", "Credential should be scoped to correct service: '%s'. ", rc.call.Service)
	}
	id, ok := s.lookupIdentity(auth.AccessKeyID)
	if !ok {
		return clientErr("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	if rc.r.Header.Get("X-Amz-Security-Token") != id.SessionToken {
		return clientErr("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	if !id.Expires.IsZero() && !s.now().Before(id.Expires) {
		return clientErr("ExpiredTokenException", "The security token included in the request is expired")
	}
	if e := verifySignature(rc.r, rc.body, auth, id.SecretAccessKey, s.now()); e != nil {
		return e
	}
	rc.ident = id
	rc.call.Identity = id.ARN
	return nil
}

// classify names the service and operation of a request. The JSON services
// name them in X-Amz-Target; STS (AWS query protocol) posts a form whose
// Action parameter names the operation, with no target header. A
// form-encoded request without an Action is still STS's, so that it gets
// STS's MissingAction error.
func classify(r *http.Request, body []byte) (service, operation string, form url.Values) {
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		service, operation = parseTarget(target)
		return service, operation, nil
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "application/x-www-form-urlencoded" {
		return "", "", nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		form = url.Values{}
	}
	return ServiceSTS, form.Get("Action"), form
}

// parseTarget maps "secretsmanager.GetSecretValue" or
// "AmazonSSM.GetParameters" to (service, operation).
func parseTarget(target string) (service, operation string) {
	prefix, op, ok := strings.Cut(target, ".")
	if !ok || op == "" {
		return "", ""
	}
	switch prefix {
	case smTargetPrefix:
		return ServiceSecretsManager, op
	case ssmTargetPrefix:
		return ServiceSSM, op
	case sqsTargetPrefix:
		return ServiceSQS, op
	}
	return "", ""
}

// resetConnection drops the connection without a response. SO_LINGER 0
// turns the close into a TCP RST, which clients report as "connection reset
// by peer" — the failure mode of a crashed load balancer.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// HTTP/2 cannot be hijacked; aborting the handler resets the stream.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func unknownOperation(op string) *apiError {
	return clientErr("UnknownOperationException", "Unknown operation %s", op)
}
