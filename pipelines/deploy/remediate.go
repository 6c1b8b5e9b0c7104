package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// remediate handles a revision that failed: it records the failure on the
// revision, asks Next what follows, and carries that out: a rollback that is
// gated again, the removal of a failed first install, or a plain statement
// that nothing verified exists to return to.
func (d *Deployer) remediate(ctx context.Context, r *run, failed release.Revision, f Failed, cause *gate.Failure) outcome {
	r.res.Problems = cause.Problems
	why := capital(fmt.Sprintf("revision %d failed its %s gate: %s", failed.Number, cause.Gate, headline(cause)))
	// The description lives in the release record; keep secrets out of it too.
	if err := d.rel.MarkFailed(ctx, failed.Number, d.redactor.String("gates failed: "+headline(cause))); err != nil {
		r.note("could not mark revision %d failed in Helm's history: %v", failed.Number, err)
	}
	history, err := d.rel.History(ctx)
	if err != nil {
		return outcome{report.Failed, why + "; the history could not be read to roll back.", err}
	}
	next, err := Next(history, f)
	if err != nil {
		return outcome{report.Failed, why + "; no remedy could be chosen.", err}
	}
	gateErr := errors.New(cause.Error())
	switch next.Remedy {
	case RollBack:
		target := next.Target
		newRev, err := d.rollbackTo(ctx, r, target, "rollback")
		switch {
		case err == nil:
			return outcome{report.RolledBack, fmt.Sprintf("%s. Rolled back to verified revision %d, which passed its gates again and serves as revision %d.",
				why, target.Number, newRev.Number), gateErr}
		case ctx.Err() != nil:
			return d.cancelled(ctx, r, newRev.Number, "rollback")
		default:
			return outcome{report.RollbackFailed, fmt.Sprintf("%s. The rollback to verified revision %d failed too: %v", why, target.Number, err), err}
		}
	case Uninstall:
		err := r.step("uninstall", func() (string, error) {
			return "failed first install removed; diagnostics kept in this report",
				d.rel.Uninstall(ctx, d.redactor.String("first install failed its gates: "+headline(cause)))
		})
		if err != nil {
			return outcome{report.Failed, why + "; removing the failed first install failed too.", err}
		}
		return outcome{report.Uninstalled, why + ". It was the first install, so it was uninstalled; the diagnostics are below.", gateErr}
	}
	return outcome{report.Failed, why + ". No verified revision exists to roll back to, so it was left in place.", gateErr}
}

// asFailure turns any gate or release error into the failure remediate
// reports, keeping a gate's own problems.
func asFailure(err error, gateName, release string) *gate.Failure {
	var f *gate.Failure
	if errors.As(err, &f) {
		return f
	}
	return &gate.Failure{Gate: gateName, Problems: []gate.Problem{{Class: "GateError", Service: release, Reason: "Error", Message: err.Error()}}}
}
