package gate

import (
	"context"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
)

// retryAPI retries a read of the API server within max (the default API read
// budget when 0): a gate must survive an API server that restarts under it.
func retryAPI(ctx context.Context, max time.Duration, fn func(context.Context) error) error {
	if max <= 0 {
		max = budget.Defaults().APIRead
	}
	return kube.Retry(ctx, budget.API(max), fn)
}
