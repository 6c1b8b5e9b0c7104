package deploy

import (
	"context"
	"fmt"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
)

// upgrade applies the plan as one Helm upgrade --install, without Helm's
// wait: the gates do the waiting. A revision number of 0 means Helm refused
// before it recorded anything.
func (d *Deployer) upgrade(ctx context.Context, r *run, p plan, firstInstall bool) (release.Revision, error) {
	var rev release.Revision
	err := r.step("release", func() (string, error) {
		var err error
		rev, err = d.rel.Apply(ctx, d.chart, p.values, release.ApplyOptions{DeployedBy: d.actor,
			Description: fmt.Sprintf("deploy by %s", d.actor)})
		if err != nil {
			return "", err
		}
		verb := "upgrade"
		if firstInstall {
			verb = "install"
		}
		return fmt.Sprintf("%s applied as revision %d (no Helm wait; gates follow)", verb, rev.Number), nil
	})
	r.res.Revision = rev.Number
	return rev, err
}
