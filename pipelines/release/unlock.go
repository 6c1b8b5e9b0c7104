package release

import (
	"context"
	"fmt"

	helmrelease "helm.sh/helm/v3/pkg/release"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
)

// Unlock marks the newest revision failed when Helm left it in
// pending-install, pending-upgrade or pending-rollback (a deployer that died
// or was cancelled mid-operation), so Helm accepts the next operation. Call
// it only while holding the deploy lock: that is what proves the operation
// that left it pending is gone. It returns the revision it unlocked, or false
// when nothing was pending.
func (c *Client) Unlock(ctx context.Context, why string) (Revision, bool, error) {
	last, err := c.Last(ctx)
	if err != nil || !last.Pending() {
		return Revision{}, false, ignoreNoRelease(err)
	}
	rel := last.rel
	was := rel.Info.Status
	rel.Info.Status = helmrelease.StatusFailed
	rel.Info.Description = fmt.Sprintf("%s; marked failed by deploy recovery: %s", was, why)
	err = kube.Retry(ctx, kube.Budget(c.Budgets.APIWrite), func(context.Context) error {
		return c.cfg.Releases.Update(rel)
	})
	if err != nil {
		return Revision{}, false, fmt.Errorf("release %s: unlock revision %d (%s): %w", c.Name, rel.Version, was, err)
	}
	out := c.toRevision(rel)
	out.Status = string(was)
	return out, true, nil
}

func ignoreNoRelease(err error) error {
	if err == nil || isErrNoRelease(err) {
		return nil
	}
	return err
}
