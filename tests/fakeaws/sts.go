package fakeaws

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// STS speaks the AWS query protocol: a form-encoded POST whose Action and
// Version parameters name the operation, answered with XML. The SDK finds
// the result by the element "<Action>Result" (case-insensitively) anywhere
// in the body, and errors by the element "Error" (its Code and Message).

const (
	stsVersion   = "2011-06-15"
	stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
	// Timestamps are ISO 8601 in UTC, to the second, like AWS sends them.
	stsTimeFormat = "2006-01-02T15:04:05Z"
)

// serveSTS authenticates and runs an STS request; outage, latency and
// faults have been applied already.
func (s *Server) serveSTS(w http.ResponseWriter, rc *reqCtx, auth *sigV4Auth, authErr *apiError) {
	op := rc.call.Operation
	handler, ok := map[string]func(*reqCtx) (any, *apiError){
		"AssumeRoleWithWebIdentity": s.stsAssumeRoleWithWebIdentity,
		"AssumeRole":                s.stsAssumeRole,
		"GetCallerIdentity":         s.stsGetCallerIdentity,
	}[op]
	switch {
	case op == "":
		s.fail(w, rc, ServiceSTS, clientErr("MissingAction", "Missing Action"))
		return
	case !ok:
		s.fail(w, rc, ServiceSTS, clientErr("InvalidAction", "Could not find operation %s for version %s", op, stsVersion))
		return
	}

	// AssumeRoleWithWebIdentity is the one operation the SDK sends unsigned:
	// the token is the credential. A signature, if present, must be valid.
	if !(op == "AssumeRoleWithWebIdentity" && auth == nil) {
		if authErr != nil {
			s.fail(w, rc, ServiceSTS, queryAuthErr(authErr))
			return
		}
		if e := s.authenticate(rc, auth); e != nil {
			s.fail(w, rc, ServiceSTS, queryAuthErr(e))
			return
		}
	}

	out, e := handler(rc)
	if e != nil {
		s.fail(w, rc, ServiceSTS, e)
		return
	}
	rc.call.Outcome = OutcomeOK
	s.record(rc)
	writeQueryResult(w, op, out)
}

// queryAuthErr renames the authentication errors of the JSON protocols to
// the codes (and statuses) query-protocol services use for the same
// conditions.
func queryAuthErr(e *apiError) *apiError {
	rename := map[string]struct {
		status int
		code   string
		msg    string
	}{
		"MissingAuthenticationTokenException": {http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"},
		"IncompleteSignatureException":        {http.StatusBadRequest, "IncompleteSignature", ""},
		"InvalidSignatureException":           {http.StatusForbidden, "SignatureDoesNotMatch", ""},
		"UnrecognizedClientException":         {http.StatusForbidden, "InvalidClientTokenId", ""},
		"ExpiredTokenException":               {http.StatusForbidden, "ExpiredToken", ""},
	}
	r, ok := rename[e.Code]
	if !ok {
		return e
	}
	msg := r.msg
	if msg == "" {
		msg = e.Message
	}
	return &apiError{Status: r.status, Code: r.code, Message: msg}
}

// stsValidationErr is a query-protocol constraint violation.
func stsValidationErr(format string, args ...any) *apiError {
	return clientErr("ValidationError", format, args...)
}

// constraints collects violations, which AWS reports all at once.
type constraints []string

func (c *constraints) add(format string, args ...any) {
	*c = append(*c, fmt.Sprintf(format, args...))
}

func (c constraints) err() *apiError {
	switch len(c) {
	case 0:
		return nil
	case 1:
		return stsValidationErr("1 validation error detected: %s", c[0])
	}
	return stsValidationErr("%d validation errors detected: %s", len(c), strings.Join(c, "; "))
}

// str validates a string parameter's presence and length. Values are not
// echoed for sensitive members (tokens).
func (c *constraints) str(form map[string][]string, param, member string, minLen, maxLen int, sensitive bool) string {
	vs, ok := form[param]
	if !ok {
		c.add("Value null at '%s' failed to satisfy constraint: Member must not be null", member)
		return ""
	}
	v := vs[0]
	shown := v
	if sensitive {
		shown = "***"
	}
	switch {
	case len(v) < minLen:
		c.add("Value '%s' at '%s' failed to satisfy constraint: Member must have length greater than or equal to %d", shown, member, minLen)
	case len(v) > maxLen:
		c.add("Value '%s' at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", shown, member, maxLen)
	}
	return v
}

// sessionName validates RoleSessionName.
func (c *constraints) sessionName(form map[string][]string) string {
	n := len(*c)
	v := c.str(form, "RoleSessionName", "roleSessionName", 2, 64, false)
	if len(*c) == n && !validSessionName(v) {
		c.add(`Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]*`, v)
	}
	return v
}

func validSessionName(v string) bool {
	for _, r := range v {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("_+=,.@-", r)) {
			return false
		}
	}
	return true
}

// duration validates DurationSeconds (optional) against the API's bounds;
// the role's own limit is checked once the role is known.
func (c *constraints) duration(form map[string][]string) *int {
	vs, ok := form["DurationSeconds"]
	if !ok {
		return nil
	}
	d, err := strconv.Atoi(vs[0])
	switch {
	case err != nil:
		c.add("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must be an integer", vs[0])
		return nil
	case d < 900:
		c.add("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", d)
	case d > 43200:
		c.add("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200", d)
	}
	return &d
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type stsAssumedRoleUser struct {
	Arn           string `xml:"Arn"`
	AssumedRoleID string `xml:"AssumedRoleId"`
}

func credentialsOf(m minted) (stsCredentials, stsAssumedRoleUser) {
	return stsCredentials{
			AccessKeyID:     m.id.AccessKeyID,
			SecretAccessKey: m.id.SecretAccessKey,
			SessionToken:    m.id.SessionToken,
			// Truncating to the second errs on the early side: a client
			// refreshing at Expiration never holds expired credentials.
			Expiration: m.expires.UTC().Truncate(time.Second).Format(stsTimeFormat),
		}, stsAssumedRoleUser{
			Arn:           m.id.ARN,
			AssumedRoleID: m.assumedRoleID,
		}
}

type getCallerIdentityResult struct {
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
	Arn     string `xml:"Arn"`
}

func (s *Server) stsGetCallerIdentity(rc *reqCtx) (any, *apiError) {
	id := rc.ident
	s.iamMu.RLock()
	sess, minted := s.sessions[id.AccessKeyID]
	s.iamMu.RUnlock()
	if minted {
		return getCallerIdentityResult{UserID: sess.assumedRoleID, Account: sess.account, Arn: id.ARN}, nil
	}
	userID := id.AccessKeyID // long-term keys: AWS shows the user's unique id, which the fake does not model
	if roleARN, ok := s.callerRole(id); ok {
		userID = roleUniqueID(roleARN) + ":" + id.ARN[strings.LastIndexByte(id.ARN, '/')+1:]
	}
	return getCallerIdentityResult{UserID: userID, Account: s.callerAccount(id), Arn: id.ARN}, nil
}

// writeQueryResult writes
//
//	<ActionResponse xmlns="..."><ActionResult>...</ActionResult>
//	<ResponseMetadata><RequestId>...</RequestId></ResponseMetadata></ActionResponse>
func writeQueryResult(w http.ResponseWriter, action string, result any) {
	requestID := newUUID()
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	start := xml.StartElement{
		Name: xml.Name{Local: action + "Response"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: stsNamespace}},
	}
	err := enc.EncodeToken(start)
	if err == nil {
		err = enc.EncodeElement(result, xml.StartElement{Name: xml.Name{Local: action + "Result"}})
	}
	if err == nil {
		err = enc.EncodeElement(struct {
			RequestID string `xml:"RequestId"`
		}{requestID}, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}})
	}
	if err == nil {
		err = enc.EncodeToken(start.End())
	}
	if err == nil {
		err = enc.Flush()
	}
	if err != nil {
		// Every result type is plain data; failing to encode one is a bug in
		// the fake, reported as STS's 5xx.
		writeQueryError(w, newErr(http.StatusInternalServerError, "InternalFailure", "%v", err))
		return
	}
	writeXML(w, http.StatusOK, requestID, buf.Bytes())
}

type queryErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

// writeQueryError writes an AWS query-protocol error document.
func writeQueryError(w http.ResponseWriter, e *apiError) {
	doc := queryErrorResponse{Xmlns: stsNamespace, RequestID: newUUID()}
	doc.Error.Type = "Sender"
	if e.Status >= 500 {
		doc.Error.Type = "Receiver"
	}
	doc.Error.Code, doc.Error.Message = e.Code, e.Message
	body, _ := xml.Marshal(doc)
	writeXML(w, e.Status, doc.RequestID, body)
}

func writeXML(w http.ResponseWriter, status int, requestID string, body []byte) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
