package release

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	helmrelease "helm.sh/helm/v3/pkg/release"
)

// ApplyOptions annotate the revision Apply creates.
type ApplyOptions struct {
	// DeployedBy is recorded on the revision (see LabelDeployedBy).
	DeployedBy string
	// Description replaces Helm's "Upgrade complete" / "Install complete".
	Description string
}

// Apply is `helm upgrade --install` without waiting: it installs the release
// when it has no history and upgrades it otherwise, and returns as soon as
// Helm has sent the manifests. The new revision carries no verified mark
// (one copied from the previous revision is dropped). values are copied,
// never modified.
func (c *Client) Apply(ctx context.Context, ch *chart.Chart, values map[string]any, opts ApplyOptions) (Revision, error) {
	vals, err := copyValues(values)
	if err != nil {
		return Revision{}, fmt.Errorf("release %s: %w", c.Name, err)
	}
	history, err := c.History(ctx)
	if err != nil {
		return Revision{}, err
	}
	by := LabelValue(opts.DeployedBy)
	// Helm numbers the new revision one above the newest record; writing the
	// attribution with the records themselves leaves no window in which the
	// revision exists unattributed. Should someone else's revision slip in
	// between, the number differs and attribute below corrects it.
	want := 1
	if n := len(history); n > 0 {
		want = history[n-1].Number + 1
	}
	var rel *helmrelease.Release
	if len(history) == 0 {
		in := action.NewInstall(c.cfg)
		in.ReleaseName = c.Name
		in.Namespace = c.Namespace
		in.Description = opts.Description
		in.Labels = map[string]string{}
		if by != "" {
			in.Labels[LabelDeployedBy] = by
			in.Labels[LabelDeployedRevision] = strconv.Itoa(want)
		}
		rel, err = in.RunWithContext(ctx, ch, vals)
	} else {
		up := action.NewUpgrade(c.cfg)
		up.Namespace = c.Namespace
		up.MaxHistory = MaxHistory
		up.Description = opts.Description
		// "null" deletes a label Helm would otherwise copy from the previous
		// revision.
		up.Labels = map[string]string{LabelVerified: "null", LabelVerifiedAt: "null", LabelDeployedBy: "null", LabelDeployedRevision: "null"}
		if by != "" {
			up.Labels[LabelDeployedBy] = by
			up.Labels[LabelDeployedRevision] = strconv.Itoa(want)
		}
		rel, err = up.RunWithContext(ctx, c.Name, ch, vals)
	}
	if rel != nil && by != "" && rel.Version != want {
		if aerr := c.attribute(ctx, rel, by); aerr != nil && err == nil {
			err = aerr
		}
	}
	if err != nil {
		if rel != nil {
			return c.toRevision(rel), fmt.Errorf("release %s: apply revision %d: %w", c.Name, rel.Version, err)
		}
		return Revision{}, fmt.Errorf("release %s: apply: %w", c.Name, err)
	}
	return c.toRevision(rel), nil
}

// copyValues deep-copies values through JSON, which is also the form Helm
// stores them in, so later comparisons see the same types.
func copyValues(v map[string]any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	return out, nil
}
