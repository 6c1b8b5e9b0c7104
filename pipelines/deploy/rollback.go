package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// RollbackRequest says where a manual rollback goes.
type RollbackRequest struct {
	// Revision is the revision to return to; 0 means the newest verified
	// revision older than the current one.
	Revision int
	// Force allows returning to a revision that was never verified.
	Force bool
	// TakeOverLock: see Request.TakeOverLock.
	TakeOverLock bool
}

// target is the request as release.Choose reads it, against history.
func (req RollbackRequest) target(history []release.Revision) release.Target {
	t := release.Target{Revision: req.Revision, Force: req.Force}
	if cur, ok := release.Current(history); ok {
		t.Before = cur.Number
	}
	return t
}

// Rollback returns the release to a verified revision (or, forced, to any
// revision that exists), gates the result like a deploy and marks it
// verified. If the rollback fails its gates, it is itself remediated like a
// failed deploy, never retrying the target that just failed. It holds the
// deploy lock throughout.
func (d *Deployer) Rollback(ctx context.Context, req RollbackRequest) *report.Result {
	r := d.newRun("rollback")
	if req.Revision < 0 {
		return r.refused(ctx, fmt.Errorf("revision %d does not exist: revisions start at 1", req.Revision))
	}
	if err := d.preflightAPI(ctx, r); err != nil {
		return r.refused(ctx, err)
	}
	var target release.Revision
	err := r.step("preflight/target", func() (string, error) {
		history, err := d.rel.History(ctx)
		if err != nil {
			return "", err
		}
		if target, err = release.Choose(history, req.target(history)); err != nil {
			return "", forceHint(err)
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
		if _, err := release.Choose(history, req.target(history)); err != nil {
			err = forceHint(err)
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
		r.res.RollbackProblems = nil
		return d.remediate(ctx, r, newRev, Failed{Revision: newRev.Number, Exclude: target.Number}, asFailure(err, "rollback", d.stack.Release))
	})
}

// forceHint tells a person at either door how to pass an unverified target.
func forceHint(err error) error {
	if err != nil && errors.Is(err, release.ErrNotVerified) {
		return fmt.Errorf("%w; pass --force to roll back to it anyway", err)
	}
	return err
}

// rollbackTo rolls back to target and gates the result; on success the new
// revision is marked verified.
func (d *Deployer) rollbackTo(ctx context.Context, r *run, target release.Revision, step string) (release.Revision, error) {
	var rev release.Revision
	err := r.step(step, func() (string, error) {
		var err error
		rev, err = d.rel.Rollback(ctx, target.Number, release.RollbackOptions{DeployedBy: d.actor})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("revision %d applied as revision %d", target.Number, rev.Number), nil
	})
	r.res.RolledBackTo = target.Number
	r.res.RollbackRevision = rev.Number
	if err != nil {
		return rev, err
	}
	statuses, err := d.gates(ctx, r, rev, step+"-gate")
	r.res.Services = d.services(r, statuses, rev)
	if err != nil {
		var f *gate.Failure
		if errors.As(err, &f) {
			r.res.RollbackProblems = f.Problems
			_ = d.rel.MarkFailed(ctx, rev.Number, d.redactor.String("rollback gates failed: "+headline(f)))
		}
		return rev, err
	}
	err = r.step(step+"-verdict", func() (string, error) {
		return fmt.Sprintf("revision %d marked verified", rev.Number), d.rel.MarkVerified(ctx, rev.Number, time.Now())
	})
	return rev, err
}
