package fakeaws

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Both services speak AWS JSON 1.1: every call is a POST to "/" whose
// operation is named by the X-Amz-Target header ("<prefix>.<Operation>") and
// whose input and output are JSON documents with the modeled (PascalCase)
// member names. Member names are matched case-sensitively by the SDK's
// schema-driven deserializer, so the struct tags in this package must use the
// exact modeled spelling ("ARN", not "Arn").
const (
	jsonContentType = "application/x-amz-json-1.1"
	// SQS speaks AWS JSON 1.0, which differs from 1.1 only in this header
	// (and in error type names, which the SDK reads either way).
	json10ContentType = "application/x-amz-json-1.0"

	// Target prefixes, as the SDK builds them from the service shape name.
	smTargetPrefix  = "secretsmanager"
	ssmTargetPrefix = "AmazonSSM"
	sqsTargetPrefix = "AmazonSQS"

	// Service names as they appear in SigV4 credential scopes, IAM actions
	// and ARNs.
	ServiceSecretsManager = "secretsmanager"
	ServiceSSM            = "ssm"
	ServiceSTS            = "sts"
	ServiceSQS            = "sqs"
	// ServiceEKSAuth names calls to the Pod Identity agent, after the EKS
	// Auth API (AssumeRoleForPodIdentity) that the real agent calls.
	ServiceEKSAuth = "eks-auth"

	// maxBodyBytes bounds how much of a request body is read. Secrets are at
	// most 64 KiB and parameters 8 KiB, so 1 MiB leaves ample room.
	maxBodyBytes = 1 << 20
)

// apiError is an AWS error response. Code is the wire error code (the
// "__type"), which is also what the SDK reports from ErrorCode().
type apiError struct {
	Status  int
	Code    string
	Message string
	// QueryCode is the error's code in the AWS query protocol, which
	// query-compatible JSON services (SQS) send in X-Amzn-Query-Error.
	QueryCode string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newErr(status int, code, format string, args ...any) *apiError {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &apiError{Status: status, Code: code, Message: msg}
}

// clientErr is the common case: AWS JSON services answer nearly every
// client-side error, including AccessDenied and throttling, with HTTP 400.
func clientErr(code, format string, args ...any) *apiError {
	return newErr(http.StatusBadRequest, code, format, args...)
}

// validationErr mimics the Coral framework's constraint-violation message.
func validationErr(format string, args ...any) *apiError {
	return clientErr("ValidationException", "1 validation error detected: "+format, args...)
}

// contentTypeOf is the JSON protocol version a service speaks.
func contentTypeOf(service string) string {
	if service == ServiceSQS {
		return json10ContentType
	}
	return jsonContentType
}

// writeJSONAs writes a successful JSON response.
func writeJSONAs(w http.ResponseWriter, contentType string, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// Every output type in this package is plain data; failing to encode
		// one is a bug in the fake, reported as the service's 5xx.
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// writeError writes an AWS JSON error. The code is sent both in the
// X-Amzn-ErrorType header (which the SDK prefers) and as "__type" in the body
// (which other clients, e.g. botocore, read). Secrets Manager models the
// message member as "Message" and most SSM errors as "message"; the SDK
// accepts either casing for error messages, but we send what each service
// sends.
//
// STS and the Pod Identity agent have formats of their own.
func writeError(w http.ResponseWriter, service string, e *apiError) {
	switch service {
	case ServiceSTS:
		writeQueryError(w, e)
		return
	case ServiceEKSAuth:
		writeAgentError(w, e)
		return
	}
	msgKey := "Message"
	errType := e.Code
	switch service {
	case ServiceSSM:
		msgKey = "message"
	case ServiceSQS:
		msgKey = "message"
		errType = "com.amazonaws.sqs#" + e.Code
		if e.QueryCode == "" && e.Code == "AccessDeniedException" {
			e = &apiError{Status: e.Status, Code: e.Code, Message: e.Message, QueryCode: "AccessDenied"}
		}
		if e.QueryCode != "" {
			fault := "Sender"
			if e.Status >= 500 {
				fault = "Receiver"
			}
			w.Header().Set("X-Amzn-Query-Error", e.QueryCode+";"+fault)
		}
	}
	body, _ := json.Marshal(map[string]string{"__type": errType, msgKey: e.Message})
	w.Header().Set("Content-Type", contentTypeOf(service))
	w.Header().Set("X-Amzn-ErrorType", errType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

// unavailableErr is the answer of a regional endpoint that is down.
func unavailableErr(service, region string) *apiError {
	switch service {
	case ServiceSTS:
		return newErr(http.StatusServiceUnavailable, "ServiceUnavailable", "Service unavailable in region %s", region)
	case ServiceEKSAuth:
		return newErr(http.StatusServiceUnavailable, "ServiceUnavailableException", "The Pod Identity agent %s is unavailable", region)
	}
	return newErr(http.StatusServiceUnavailable, "ServiceUnavailableException", "Service unavailable in region %s", region)
}

// decodeInput unmarshals a request body. An empty body is treated as "{}",
// as AWS does.
func decodeInput(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return clientErr("SerializationException", "Could not parse request body: %v", err)
	}
	return nil
}

// epochTime marshals as fractional epoch seconds, the default timestamp
// format of the JSON protocols.
type epochTime time.Time

func (t epochTime) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)), nil
}

func epochPtr(t time.Time) *epochTime {
	if t.IsZero() {
		return nil
	}
	e := epochTime(t)
	return &e
}

// Pagination tokens are opaque to clients; ours carry the sort key of the
// last item returned, so a page boundary stays stable when items are added or
// removed between calls.
func encodeToken(lastKey string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("fakeaws:" + lastKey))
}

func decodeToken(tok string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !bytes.HasPrefix(b, []byte("fakeaws:")) {
		return "", false
	}
	return string(b[len("fakeaws:"):]), true
}
