package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// RollbackRequest says where a manual rollback goes.
type RollbackRequest struct {
	// To is the revision to return to; 0 means the newest verified revision
	// older than the current one.
	To int
	// Force allows returning to a revision that was never verified.
	Force bool
	// TakeOverLock: see Request.TakeOverLock.
	TakeOverLock bool
}

// Rollback returns the release to a verified revision (or, forced, to any
// revision that exists), gates the result like a deploy and marks it
// verified. If the rollback fails its gates, it is itself rolled back to the
// newest verified revision. It holds the deploy lock throughout.
func (d *Deployer) Rollback(ctx context.Context, req RollbackRequest) *report.Result {
	r := d.newRun("rollback")
	if req.To < 0 {
		return r.refused(ctx, fmt.Errorf("revision %d does not exist: revisions start at 1", req.To))
	}
	if err := d.preflightAPI(ctx, r); err != nil {
		return r.refused(ctx, err)
	}
	var target release.Revision
	var history []release.Revision
	err := r.step("preflight/target", func() (string, error) {
		var err error
		if history, err = d.rel.History(ctx); err != nil {
			return "", err
		}
		target, err = pickTarget(history, req)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("revision %d (verified: %t)", target.Number, target.Verified), nil
	})
	if err != nil {
		return r.refused(ctx, err)
	}
	r.takeOver = req.TakeOverLock
	return d.locked(ctx, r, func(ctx context.Context) outcome {
		// The history may have moved while we waited for the lock.
		history, err := d.rel.History(ctx)
		if err != nil {
			return outcome{report.Failed, "Could not read the release history; nothing was changed.", err}
		}
		if _, err := pickTarget(history, req); err != nil {
			return outcome{report.Refused, "Refused before anything changed: " + err.Error(), err}
		}
		newRev, err := d.rollbackTo(ctx, r, target, "rollback")
		r.res.Revision = newRev.Number
		switch {
		case err == nil:
			return outcome{report.Verified, fmt.Sprintf("Rolled back to revision %d, which passed every gate and serves as revision %d (verified).",
				target.Number, newRev.Number), nil}
		case ctx.Err() != nil:
			return d.cancelled(ctx, r, newRev.Number, "rollback")
		case newRev.Number == 0:
			return outcome{report.Failed, fmt.Sprintf("Helm refused the rollback to revision %d.", target.Number), err}
		}
		var f *gate.Failure
		if !errors.As(err, &f) {
			f = &gate.Failure{Gate: "rollback", Problems: []gate.Problem{{Class: "GateError", Service: d.env.Release, Reason: "Error", Message: err.Error()}}}
		}
		r.res.RollbackProblems = nil
		return d.remediate(ctx, r, newRev, false, f, target.Number)
	})
}

// pickTarget chooses the rollback target from history.
func pickTarget(history []release.Revision, req RollbackRequest) (release.Revision, error) {
	if len(history) == 0 {
		return release.Revision{}, errors.New("the release does not exist")
	}
	current := history[len(history)-1]
	if req.To == 0 {
		t, ok := release.LastVerified(history, current.Number)
		if !ok {
			return release.Revision{}, fmt.Errorf("no verified revision older than the current revision %d", current.Number)
		}
		return t, nil
	}
	t, ok := release.Find(history, req.To)
	switch {
	case !ok:
		return release.Revision{}, fmt.Errorf("revision %d does not exist (history holds %d..%d)", req.To, history[0].Number, current.Number)
	case req.To == current.Number:
		return release.Revision{}, fmt.Errorf("revision %d is the current revision", req.To)
	case !t.Verified && !req.Force:
		return release.Revision{}, fmt.Errorf("revision %d was never verified; pass --force to roll back to it anyway", req.To)
	}
	return t, nil
}

// Status reports the current revision, whether it is verified, the deploy
// lock and where each workload stands now. It changes nothing.
func (d *Deployer) Status(ctx context.Context) *report.Result {
	r := d.newRun("status")
	if err := d.preflightAPI(ctx, r); err != nil {
		return r.refused(ctx, err)
	}
	holder, live, err := kube.ReadLock(ctx, d.kc, d.env.Namespace, LockName, kube.Budget(20*time.Second))
	if err != nil {
		return r.finish(report.Failed, err, "Could not read the deploy lock.")
	}
	if holder != nil {
		r.res.Lock = &report.Lock{Lease: d.env.Namespace + "/" + LockName, Holder: holder.Identity, Expires: holder.Expires, Live: live, Gone: holder.Gone}
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
	} else if lv, ok := release.LastVerified(history, 0); ok {
		summary += fmt.Sprintf("not verified; the newest verified revision is %d.", lv.Number)
	} else {
		summary += "not verified; no revision is."
	}
	if len(r.res.Problems) > 0 {
		summary += " Now: " + headline(&gate.Failure{Problems: r.res.Problems}) + "."
	}
	return r.finish(report.Reported, nil, summary)
}

// History reports every stored revision with its images, verified mark,
// time and author. It changes nothing.
func (d *Deployer) History(ctx context.Context) *report.Result {
	r := d.newRun("history")
	history, err := d.rel.History(ctx)
	if err != nil {
		return r.finish(report.Failed, err, "Could not read the release history.")
	}
	r.res.History = history
	if len(history) == 0 {
		return r.finish(report.Reported, nil, "The release is not installed.")
	}
	verified := 0
	for _, h := range history {
		if h.Verified {
			verified++
		}
	}
	return r.finish(report.Reported, nil, fmt.Sprintf("%d revisions, %d verified; the current one is %d (%s).",
		len(history), verified, history[len(history)-1].Number, history[len(history)-1].Status))
}
