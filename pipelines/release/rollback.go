package release

import (
	"context"
	"fmt"

	"helm.sh/helm/v3/pkg/action"
)

// Rollback creates a new revision with revision to's chart, values and
// manifest and applies it without waiting. It returns the new revision,
// which starts unverified: it must pass the gates like any other.
func (c *Client) Rollback(ctx context.Context, to int) (Revision, error) {
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
	return last, nil
}
