package awsapi

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Outcomes of one AWS request, a bounded metric label.
const (
	OutcomeSuccess   = "success"
	OutcomeThrottled = "throttled"
	OutcomeError     = "error"
)

// CallObserver is told about every AWS request (each retry attempt is a
// request: each costs money and counts against rate limits).
type CallObserver func(service, operation, outcome string, d time.Duration)

type callCounterKey struct{}

// WithCallCounter returns a context whose AWS requests are counted in the
// returned counter (for a mount's summary log line). Calls shared between
// concurrent mounts count for the mount that made them.
func WithCallCounter(ctx context.Context) (context.Context, *atomic.Int64) {
	n := &atomic.Int64{}
	return context.WithValue(ctx, callCounterKey{}, n), n
}

// Instrument makes every client built from cfg report its requests to
// observe and to the context's call counter.
func Instrument(cfg *aws.Config, observe CallObserver) {
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		// After the retry middleware in the finalize step: once per attempt.
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("coffer/observe", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			start := time.Now()
			out, md, err := next.HandleFinalize(ctx, in)
			if n, ok := ctx.Value(callCounterKey{}).(*atomic.Int64); ok {
				n.Add(1)
			}
			if observe != nil {
				observe(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), outcome(err), time.Since(start))
			}
			return out, md, err
		}), middleware.After)
	})
}

func outcome(err error) string {
	if err == nil {
		return OutcomeSuccess
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "ThrottledException", "RequestThrottled":
			return OutcomeThrottled
		}
	}
	return OutcomeError
}
