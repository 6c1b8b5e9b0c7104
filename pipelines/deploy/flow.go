package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// Request says what to deploy.
type Request struct {
	// Images maps each enabled service to its image reference, by digest
	// (repo@sha256:...) or by tag; tags are pinned to the digest they name
	// at preflight.
	Images map[string]string
	// Values are laid over the environment's values, under the image pins.
	Values map[string]any
	// TakeOverLock takes the deploy lock even from a holder that looks
	// alive (--take-over-lock): for when its deploy is known to be gone.
	TakeOverLock bool
	// Services, when set, deploys these services only (--service): Images
	// names exactly them, every other enabled service keeps the image the
	// current verified revision runs (release.CurrentVerified), and the
	// deploy is refused if any other workload would change.
	Services []string
}

// Deploy runs the whole flow and returns its result; it never panics on a
// cluster problem and never leaves the lock held. The result's OK is false
// for anything but a verified or unchanged deploy.
//
//	preflight (nothing changes) → lock and recover → unchanged? → canary
//	steps, if planned (each: upgrade → gates → analysis beside the stable
//	pods) → upgrade → gates → analysis, if on → verified, or remediate (Next
//	decides: roll back, uninstall, leave)
func (d *Deployer) Deploy(ctx context.Context, req Request) *report.Result {
	r := d.newRun("deploy")
	d.redactor.Add(report.SecretsFromValues(req.Values)...)
	p, err := d.preflight(ctx, r, req)
	if err != nil {
		return r.refused(ctx, err)
	}
	r.res.Services = pendingServices(p.enabled, p.images)
	if p.partial != nil {
		r.res.Kept = p.partial.kept
		for _, k := range p.partial.kept {
			r.note("%s kept at %s, as verified revision %d runs it", k.Service, k.Image, k.Revision)
		}
	}
	r.takeOver = req.TakeOverLock
	return d.locked(ctx, r, func(ctx context.Context) outcome {
		history, err := d.rel.History(ctx)
		if err != nil {
			return outcome{report.Failed, "Could not read the release history; nothing was changed.", err}
		}
		if p.partial != nil {
			// The release may have moved while we waited for the lock.
			if cur, err := release.CurrentVerified(history); err != nil || cur.Number != p.partial.base.Number {
				err = fmt.Errorf("the release moved since preflight (the other services were taken from verified revision %d); run the deploy again", p.partial.base.Number)
				return outcome{report.Refused, "Refused before anything changed: " + err.Error(), err}
			}
		}
		if p.canary != nil {
			// The canaries run beside the stable pods as preflight found them.
			if cur, err := release.CurrentVerified(history); err != nil || cur.Number != p.canary.base.Number {
				err = fmt.Errorf("the release moved since preflight (the canaries were to run beside verified revision %d); run the deploy again", p.canary.base.Number)
				return outcome{report.Refused, "Refused before anything changed: " + err.Error(), err}
			}
		}
		if out, done := d.unchanged(ctx, r, history, p); done {
			return out
		}
		firstInstall := len(history) == 0
		var prev *release.Revision
		if cur, ok := release.Current(history); ok {
			prev = &cur
		}
		if p.canary != nil {
			rev, err := d.canary(ctx, r, p)
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return d.cancelled(ctx, r, rev.Number, "canary")
			case rev.Number == 0:
				return outcome{report.Failed, "Helm refused the canary's first step; nothing was applied.", err}
			default:
				return d.remediate(ctx, r, rev, Failed{Revision: rev.Number}, asFailure(err, "canary", d.stack.Release))
			}
		}
		rev, err := d.upgrade(ctx, r, p, firstInstall)
		switch {
		case err != nil && ctx.Err() != nil:
			return d.cancelled(ctx, r, rev.Number, "release")
		case err != nil && rev.Number == 0:
			return outcome{report.Failed, "Helm refused the release; nothing was applied.", err}
		case err != nil:
			cause := &gate.Failure{Gate: "release", Problems: []gate.Problem{{Class: "ReleaseError", Service: d.stack.Release, Reason: "HelmError", Message: err.Error()}}}
			return d.remediate(ctx, r, rev, Failed{Revision: rev.Number, FirstInstall: firstInstall}, cause)
		}
		statuses, err := d.gates(ctx, r, rev, "gate")
		r.res.Services = d.services(r, statuses, rev)
		if err == nil && p.analysis != nil {
			err = d.analyse(ctx, r, p.analysis, prev, rev)
		}
		switch {
		case err == nil:
			return d.verify(ctx, r, rev)
		case ctx.Err() != nil:
			return d.cancelled(ctx, r, rev.Number, "gates")
		}
		return d.remediate(ctx, r, rev, Failed{Revision: rev.Number, FirstInstall: firstInstall}, asFailure(err, "gates", d.stack.Release))
	})
}

// unchanged reports a deploy of exactly the current revision, when that
// revision is deployed and verified: nothing is applied, and the services
// are read from the cluster as they are.
func (d *Deployer) unchanged(ctx context.Context, r *run, history []release.Revision, p plan) (outcome, bool) {
	last, ok := release.Current(history)
	if !ok {
		return outcome{}, false
	}
	same, err := last.SameAs(d.chart, p.values)
	if err != nil {
		return outcome{report.Failed, "Could not compare with the current revision; nothing was changed.", err}, true
	}
	if !same || !last.Verified || last.Status != "deployed" {
		return outcome{}, false
	}
	r.res.Revision = last.Number
	r.skip("release", fmt.Sprintf("images and values equal verified revision %d", last.Number))
	d.snapshot(ctx, r, last)
	return outcome{report.Unchanged, fmt.Sprintf("Images and values equal the verified revision %d, which is deployed: nothing to change.", last.Number), nil}, true
}

// verify marks a revision that passed every gate as verified: from now on
// it is a rollback and promotion target.
func (d *Deployer) verify(ctx context.Context, r *run, rev release.Revision) outcome {
	err := r.step("verdict", func() (string, error) {
		return fmt.Sprintf("revision %d marked verified", rev.Number), d.rel.MarkVerified(ctx, rev.Number, time.Now())
	})
	if err != nil {
		return outcome{report.Failed, fmt.Sprintf("Revision %d passed every gate but could not be marked verified.", rev.Number), err}
	}
	return outcome{report.Verified, fmt.Sprintf("Revision %d passed every gate and is marked verified.", rev.Number), nil}
}
