package gate

import (
	"context"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
)

// retryAPI retries a read of the API server within the default API read
// budget: a gate must survive an API server that restarts under it.
func retryAPI(ctx context.Context, fn func(context.Context) error) error {
	return kube.Retry(ctx, budget.API(budget.Defaults().APIRead), fn)
}
