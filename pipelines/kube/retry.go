package kube

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	retry "github.com/sethvargo/go-retry"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
)

// Budget returns a fresh retry budget for API calls, giving up after max in
// total; the backoff is budget.API's. A budget is stateful, so every retried
// operation needs its own.
func Budget(max time.Duration) retry.Backoff { return budget.API(max) }

// Retry runs fn until it succeeds, fails with an error that is not
// transient (see IsTransient), the budget b runs out or ctx ends. The error
// returned is fn's last one, unwrapped.
func Retry(ctx context.Context, b retry.Backoff, fn func(context.Context) error) error {
	return retry.Do(ctx, b, func(ctx context.Context) error {
		err := fn(ctx)
		if err != nil && IsTransient(err) && ctx.Err() == nil {
			return retry.RetryableError(err)
		}
		return err
	})
}

// IsTransient reports whether err is worth retrying: the API server could not
// be reached, dropped the connection, timed out, was overloaded or failed
// internally. Rejections (invalid, forbidden, not found, conflict) are not.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	switch {
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsUnexpectedServerError(err):
		return true
	case utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err):
		return true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var se *apierrors.StatusError
	if errors.As(err, &se) && se.ErrStatus.Code >= 500 {
		return true
	}
	return false
}
