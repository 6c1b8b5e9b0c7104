package release

import (
	"context"
	"fmt"

	"helm.sh/helm/v3/pkg/action"
)

// RollbackOptions annotate the revision Rollback creates.
type RollbackOptions struct {
	// DeployedBy is recorded on the new revision (see LabelDeployedBy);
	// empty leaves it unattributed, that is made outside the pipeline.
	DeployedBy string
}

// Rollback creates a new revision with revision to's chart, values and
// manifest and applies it without waiting. It returns the new revision,
// which starts unverified: it must pass the gates like any other. Helm's
// rollback copies the current revision's labels onto the new one, so the
// attribution is rewritten for the new revision afterwards. opts is
// variadic so callers written before it keep compiling; at most one is used.
func (c *Client) Rollback(ctx context.Context, to int, opts ...RollbackOptions) (Revision, error) {
	if err := ctx.Err(); err != nil {
		return Revision{}, fmt.Errorf("release %s: rollback to %d: %w", c.Name, to, err)
	}
	rb := action.NewRollback(c.cfg)
	rb.Version = to
	rb.MaxHistory = MaxHistory
	if err := rb.Run(c.Name); err != nil {
		return Revision{}, fmt.Errorf("release %s: rollback to %d: %w", c.Name, to, err)
	}
	last, err := c.Last(ctx)
	if err != nil {
		return Revision{}, fmt.Errorf("release %s: rollback to %d: %w", c.Name, to, err)
	}
	if len(opts) > 0 && opts[0].DeployedBy != "" && last.rel != nil {
		if by := LabelValue(opts[0].DeployedBy); by != "" {
			if err := c.attribute(ctx, last.rel, by); err != nil {
				return last, err
			}
			last = c.toRevision(last.rel)
		}
	}
	return last, nil
}
