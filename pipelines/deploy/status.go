package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// Status reports the current revision, whether it is verified, the deploy
// lock and where each workload stands now. It changes nothing.
func (d *Deployer) Status(ctx context.Context) *report.Result {
	r := d.newRun("status")
	if err := d.preflightAPI(ctx, r); err != nil {
		return r.refused(ctx, err)
	}
	holder, live, err := kube.ReadLock(ctx, d.kc, d.stack.Namespace, LockName, kube.Budget(d.budgets.APIRead))
	if err != nil {
		return r.finish(report.Failed, err, "Could not read the deploy lock.")
	}
	if holder != nil {
		r.res.Lock = &report.Lock{Lease: d.stack.Namespace + "/" + LockName, Holder: holder.Identity, Expires: holder.Expires, Live: live, Gone: holder.Gone}
	}
	history, err := d.rel.History(ctx)
	if err != nil {
		return r.finish(report.Failed, err, "Could not read the release history.")
	}
	if len(history) == 0 {
		return r.finish(report.Reported, nil, "The release is not installed.")
	}
	cur := history[len(history)-1]
	r.res.Revision = cur.Number
	r.res.History = []release.Revision{cur}
	r.res.Problems = d.snapshot(ctx, r, cur)
	summary := fmt.Sprintf("Revision %d is %s and ", cur.Number, cur.Status)
	if cur.Verified {
		summary += fmt.Sprintf("verified (%s).", cur.VerifiedAt.Format(time.RFC3339))
	} else if lv, err := release.Choose(history, release.Target{}); err == nil {
		summary += fmt.Sprintf("not verified; the newest verified revision is %d.", lv.Number)
	} else {
		summary += "not verified; no revision is."
	}
	if len(r.res.Problems) > 0 {
		summary += " Now: " + headline(&gate.Failure{Problems: r.res.Problems}) + "."
	}
	return r.finish(report.Reported, nil, summary)
}
