package eksapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Results of a call besides the AWS error code.
const (
	resultOK         = "ok"
	resultThrottled  = "throttled"
	resultNoResponse = "no_response"
)

// apiMetrics are counted per HTTP attempt, not per operation: the retryer
// hides throttling and server errors it recovers from, and those attempts
// are what tells an operator that the rate limit is set too high for the
// account's EKS quota.
type apiMetrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func registerMetrics(r prometheus.Registerer) (apiMetrics, error) {
	m := apiMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aws_auth_guardian_eks_api_calls_total",
			Help: "HTTP attempts made to EKS and IAM (retries included), by operation and result: ok, throttled, no_response (no answer, such as a timeout), or the AWS error code.",
		}, []string{"operation", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "aws_auth_guardian_eks_api_call_duration_seconds",
			Help:    "Time of one HTTP attempt to EKS or IAM, by operation, from sending to the answer, without the wait on the client's rate limiter.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"operation"}),
	}
	var err error
	if m.calls, err = register(r, m.calls); err != nil {
		return apiMetrics{}, err
	}
	if m.duration, err = register(r, m.duration); err != nil {
		return apiMetrics{}, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name, so that two clients (one per cluster) share the series.
func register[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	err := r.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// perAttempt adds the rate limiter and the metrics to a client's stack,
// right after the retryer, so that both see every attempt: a retry takes a
// token like any other call, since AWS counts it against the same quota.
// The limiter comes first so that the time waiting on it is not counted as
// the API's latency, and it sits before signing so that a long wait does
// not age the signature.
func perAttempt(limiter *rate.Limiter, m apiMetrics) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		limit := middleware.FinalizeMiddlewareFunc("RateLimit", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if err := limiter.Wait(ctx); err != nil {
				// Wait fails only because of ctx: done, or with a deadline
				// before the next token, which Wait refuses at once to wait
				// for. Either way it is reported as the SDK reports a
				// deadline met in flight: errors.Is finds the context error,
				// and the retryer does not retry it.
				cause := ctx.Err()
				if cause == nil {
					cause = context.DeadlineExceeded
				}
				return middleware.FinalizeOutput{}, middleware.Metadata{}, &smithy.CanceledError{Err: fmt.Errorf("%w (%w)", cause, err)}
			}
			return next.HandleFinalize(ctx, in)
		})
		count := middleware.FinalizeMiddlewareFunc("CallMetrics", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			op := middleware.GetOperationName(ctx)
			start := time.Now()
			out, md, err := next.HandleFinalize(ctx, in)
			m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
			m.calls.WithLabelValues(op, result(err)).Inc()
			return out, md, err
		})
		if err := s.Finalize.Insert(limit, (&retry.Attempt{}).ID(), middleware.After); err != nil {
			return err
		}
		return s.Finalize.Insert(count, limit.ID(), middleware.After)
	}
}

// result is the metric's name for an attempt's outcome. Throttling has one
// name whatever the service calls it (EKS ThrottlingException, IAM
// Throttling), as the SDK's retryer recognises it.
func result(err error) string {
	if err == nil {
		return resultOK
	}
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		return resultThrottled
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return resultNoResponse
}
