package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/provider/spc"
)

// Kind classifies why a fetch failed. It decides failover, the gRPC status
// and the hint shown to the user; it is also a bounded metric label.
type Kind string

const (
	KindNotFound     Kind = "not_found"
	KindAccessDenied Kind = "access_denied"
	KindThrottled    Kind = "throttled"
	KindUnavailable  Kind = "unavailable"
	KindTimeout      Kind = "timeout"
	KindCredentials  Kind = "credentials"
	KindDecryption   Kind = "decryption"
	KindInvalid      Kind = "invalid_request"
	KindCanceled     Kind = "canceled"
	KindOther        Kind = "other"
)

// Regional reports whether a failure of this kind says the region is in
// trouble, so the failover region should be tried. "Not found" and "access
// denied" are answers, not outages: the failover region is not asked.
func (k Kind) Regional() bool {
	return k == KindThrottled || k == KindUnavailable || k == KindTimeout
}

// Classify maps an AWS SDK error to its Kind.
func Classify(err error) Kind {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if scheduledForDeletion(ae) {
			return KindNotFound
		}
		switch ae.ErrorCode() {
		case "ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound", "ParameterVersionLabelLimitExceeded":
			return KindNotFound
		case "AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "KMSAccessDeniedException":
			return KindAccessDenied
		case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "ThrottledException", "RequestThrottled":
			return KindThrottled
		case "DecryptionFailure", "KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException", "InvalidKeyId":
			return KindDecryption
		case "ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException", "InvalidSignatureException",
			"InvalidClientTokenId", "IncompleteSignature", "SignatureDoesNotMatch", "MissingAuthenticationToken":
			return KindCredentials
		case "InternalServiceError", "InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException":
			return KindUnavailable
		case "InvalidParameterException", "InvalidRequestException", "ValidationException", "InvalidParameters":
			return KindInvalid
		}
	}
	if errors.Is(err, quota.ErrBudget) {
		// The node's own budget, kept below AWS's quota: throttling that
		// coffer does before AWS has to.
		return KindThrottled
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return KindUnavailable
	}
	if errors.Is(err, context.Canceled) {
		return KindCanceled
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout
	}
	var maxAttempts *retry.MaxAttemptsError
	if errors.As(err, &maxAttempts) {
		return KindUnavailable
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return KindTimeout
		}
		return KindUnavailable
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return KindUnavailable
	}
	if isCredentialsError(err) {
		return KindCredentials
	}
	return KindOther
}

// scheduledForDeletion reports Secrets Manager's answer for a secret in its
// recovery window (deleted, restorable until the window ends): an
// InvalidRequestException that says it "was marked for deletion". Like
// External Secrets Operator, coffer counts such a secret as not existing:
// deletionPolicy Delete applies, and a mount fails as for a missing secret.
func scheduledForDeletion(ae smithy.APIError) bool {
	return ae.ErrorCode() == "InvalidRequestException" && strings.Contains(ae.ErrorMessage(), "marked for deletion")
}

func isCredentialsError(err error) bool {
	// The SDK reports a credential provider's failure before any request is
	// sent; those errors name the credential retrieval.
	return strings.Contains(err.Error(), "failed to retrieve credentials") ||
		strings.Contains(err.Error(), "failed to refresh cached credentials")
}

// awsMessage is the AWS error code and message (never a value: AWS does not
// echo secret data in errors), or the error text for non-API errors.
func awsMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if msg := ae.ErrorMessage(); msg != "" {
			return ae.ErrorCode() + ": " + msg
		}
		return ae.ErrorCode()
	}
	return err.Error()
}

// ObjectError is a failure to fetch one object.
type ObjectError struct {
	// Object is the object that failed, Entry the jmesPath entry when the
	// failure is in one (-1 otherwise).
	Object *spc.Object
	Entry  int
	// Operation is the IAM-style action, e.g. "secretsmanager:GetSecretValue".
	Operation string
	Region    string
	Kind      Kind
	// Detail says what went wrong in words; Hint how to fix it.
	Detail string
	Hint   string
	Err    error
	// Failover is the error from the failover region, when it was tried.
	Failover *ObjectError
}

func (e *ObjectError) Error() string {
	var b strings.Builder
	b.WriteString(e.Object.Describe())
	if e.Entry >= 0 && e.Entry < len(e.Object.JMESPath) {
		fmt.Fprintf(&b, ".jmesPath[%d] (%s)", e.Entry, e.Object.JMESPath[e.Entry].Alias)
	}
	b.WriteString(": ")
	b.WriteString(e.single())
	if e.Failover != nil {
		b.WriteString("; failover: ")
		b.WriteString(e.Failover.single())
	}
	return b.String()
}

func (e *ObjectError) single() string {
	var b strings.Builder
	if e.Operation != "" {
		b.WriteString(e.Operation)
		if e.Region != "" {
			b.WriteString(" in " + e.Region)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Detail)
	if e.Hint != "" {
		b.WriteString(" (" + e.Hint + ")")
	}
	return b.String()
}

func (e *ObjectError) Unwrap() error { return e.Err }

// Errors is every object failure of one mount, in object order.
type Errors []*ObjectError

func (es Errors) Error() string {
	if len(es) == 1 {
		return es[0].Error()
	}
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprintf("(%d) %s", i+1, e.Error())
	}
	return fmt.Sprintf("%d objects failed: %s", len(es), strings.Join(parts, "; "))
}

// actionability orders kinds by how directly they tell the user what to
// fix: a mount with several failures is summarised by the first present.
var actionability = []Kind{KindAccessDenied, KindCredentials, KindNotFound, KindInvalid, KindDecryption, KindThrottled, KindTimeout, KindUnavailable, KindCanceled, KindOther}

// MostActionable returns the kind that best summarises the failures.
func (es Errors) MostActionable() Kind {
	for _, k := range actionability {
		for _, e := range es {
			if e.Kind == k {
				return k
			}
		}
	}
	return KindOther
}

func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// newObjectError builds the user-facing error for an AWS failure.
func newObjectError(o *spc.Object, op, region string, t spc.Target, err error) *ObjectError {
	kind := Classify(err)
	e := &ObjectError{Object: o, Entry: -1, Operation: op, Region: region, Kind: kind, Err: err}
	what := describeTarget(o.Type, t)
	switch kind {
	case KindNotFound:
		e.Detail = fmt.Sprintf("%s not found (%s)", what, awsMessage(err))
		e.Hint = "check objectName, objectType, objectVersion/objectVersionLabel and the region"
		var ae smithy.APIError
		if errors.As(err, &ae) && scheduledForDeletion(ae) {
			e.Detail = fmt.Sprintf("%s is scheduled for deletion (%s)", what, awsMessage(err))
			e.Hint = "it is gone unless restored within its recovery window: aws secretsmanager restore-secret (RestoreSecret), or stop reading it"
		}
	case KindAccessDenied:
		e.Detail = fmt.Sprintf("access denied to %s (%s)", what, awsMessage(err))
		e.Hint = fmt.Sprintf("grant the pod's IAM role %s on this resource, and kms:Decrypt if it uses a customer managed key", op)
	case KindThrottled:
		e.Detail = fmt.Sprintf("throttled by AWS after retries (%s)", awsMessage(err))
		e.Hint = "AWS rate limits were hit; spread pod starts, lengthen the rotation poll interval, or set failoverRegion"
		if errors.Is(err, quota.ErrBudget) {
			e.Detail = "not sent: this node's budget for the API would not allow the call before the mount's deadline"
			e.Hint = "the node is spending its share of the account's AWS quota (--aws-quota-node-share, see docs/performance.md); spread pod starts or lengthen the rotation poll interval"
		}
	case KindUnavailable:
		e.Detail = fmt.Sprintf("the service did not answer (%s)", awsMessage(err))
		e.Hint = "a regional or network problem; check the node's network path to AWS, or set failoverRegion"
	case KindTimeout:
		e.Detail = "timed out"
		e.Hint = "AWS did not answer within the mount deadline; check the node's network path to AWS"
	case KindCanceled:
		e.Detail = "canceled before AWS answered"
	case KindCredentials:
		e.Detail = fmt.Sprintf("AWS refused the credentials (%s)", awsMessage(err))
		e.Hint = "check the pod's IAM role and its trust policy"
	case KindDecryption:
		e.Detail = fmt.Sprintf("AWS could not decrypt %s (%s)", what, awsMessage(err))
		e.Hint = "the IAM role needs kms:Decrypt on the secret's KMS key"
	case KindInvalid:
		e.Detail = fmt.Sprintf("AWS rejected the request for %s (%s)", what, awsMessage(err))
	default:
		e.Detail = fmt.Sprintf("fetching %s failed: %s", what, awsMessage(err))
	}
	return e
}

func describeTarget(t spc.ObjectType, tg spc.Target) string {
	kind := "secret"
	if t == spc.ParameterStore {
		kind = "parameter"
	}
	s := fmt.Sprintf("%s %q", kind, tg.Name)
	if tg.Version != "" {
		s += " version " + tg.Version
	}
	if tg.VersionLabel != "" {
		s += " label " + tg.VersionLabel
	}
	return s
}
