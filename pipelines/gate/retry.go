package gate

import (
	"context"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
)

// retryAPI retries a read of the API server for up to 30s: a gate must
// survive an API server that restarts under it.
func retryAPI(ctx context.Context, fn func(context.Context) error) error {
	return kube.Retry(ctx, kube.Budget(30*time.Second), fn)
}
