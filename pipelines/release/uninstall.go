package release

import (
	"context"
	"errors"
	"fmt"

	"helm.sh/helm/v3/pkg/action"
)

// Uninstall removes the release and its whole history without waiting;
// description says why in Helm's log.
func (c *Client) Uninstall(ctx context.Context, description string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("release %s: uninstall: %w", c.Name, err)
	}
	un := action.NewUninstall(c.cfg)
	un.IgnoreNotFound = true
	un.Description = description
	if _, err := un.Run(c.Name); err != nil {
		return fmt.Errorf("release %s: uninstall: %w", c.Name, err)
	}
	return nil
}

func isErrNoRelease(err error) bool { return errors.Is(err, ErrNoRelease) }
