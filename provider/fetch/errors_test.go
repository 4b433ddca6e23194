package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestClassify(t *testing.T) {
	api := func(code string) error { return &smithy.GenericAPIError{Code: code, Message: "m"} }
	status := func(code int) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}}, Err: errors.New("x")}
	}
	tests := map[string]struct {
		err      error
		want     Kind
		regional bool
	}{
		"secret not found":     {api("ResourceNotFoundException"), KindNotFound, false},
		"parameter not found":  {api("ParameterNotFound"), KindNotFound, false},
		"access denied":        {api("AccessDeniedException"), KindAccessDenied, false},
		"throttled":            {api("ThrottlingException"), KindThrottled, true},
		"decryption":           {api("DecryptionFailure"), KindDecryption, false},
		"expired credentials":  {api("ExpiredTokenException"), KindCredentials, false},
		"service error":        {api("InternalServiceError"), KindUnavailable, true},
		"region down (503)":    {api("ServiceUnavailableException"), KindUnavailable, true},
		"validation":           {api("ValidationException"), KindInvalid, false},
		"plain 502":            {status(502), KindUnavailable, true},
		"timeout":              {fmt.Errorf("op: %w", context.DeadlineExceeded), KindTimeout, true},
		"canceled":             {fmt.Errorf("op: %w", context.Canceled), KindCanceled, false},
		"connection refused":   {&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, KindUnavailable, true},
		"retries exhausted":    {&retry.MaxAttemptsError{Attempt: 3, Err: errors.New("x")}, KindUnavailable, true},
		"unknown":              {errors.New("something else"), KindOther, false},
		"wrapped API error":    {fmt.Errorf("a: %w", fmt.Errorf("b: %w", api("AccessDeniedException"))), KindAccessDenied, false},
		"credential retrieval": {errors.New("failed to retrieve credentials: boom"), KindCredentials, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Classify(tc.err)
			if got != tc.want {
				t.Errorf("Classify = %s, want %s", got, tc.want)
			}
			if got.Regional() != tc.regional {
				t.Errorf("Regional = %v, want %v", got.Regional(), tc.regional)
			}
		})
	}
}
