package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	retry "github.com/sethvargo/go-retry"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
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
}

// outcome is how a locked body ended.
type outcome struct {
	verdict report.Verdict
	summary string
	err     error
}

// Deploy runs the whole flow and returns its result; it never panics on a
// cluster problem and never leaves the lock held. The result's OK is false
// for anything but a verified or unchanged deploy.
func (d *Deployer) Deploy(ctx context.Context, req Request) *report.Result {
	r := d.newRun("deploy")
	d.redactor.Add(report.SecretsFromValues(req.Values)...)
	values := render.MergeValues(d.env.Values, req.Values)
	var (
		enabled []catalog.Service
		images  []registry.Image
		objs    []*unstructured.Unstructured
	)
	if err := d.preflightAPI(ctx, r); err != nil {
		return r.refused(ctx, err)
	}
	err := r.step("preflight/images", func() (string, error) {
		var err error
		if enabled, err = enabledServices(d.chart, values); err != nil {
			return "", err
		}
		if err := checkImageRequest(enabled, req.Images); err != nil {
			return "", err
		}
		if images, err = d.resolver.ResolveAll(ctx, req.Images); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d images found in their registries and pinned by digest", len(images)), nil
	})
	if err != nil {
		return r.refused(ctx, err)
	}
	values = render.MergeValues(values, pinImages(images))
	err = r.step("preflight/render", func() (string, error) {
		res, err := render.Render(ctx, render.Request{Chart: d.chart, Release: d.env.Release, Namespace: d.env.Namespace, Values: values})
		if err != nil {
			return "", err
		}
		for _, o := range res.Objects {
			objs = append(objs, o.U)
		}
		return fmt.Sprintf("values match the chart schema; %d objects rendered", len(objs)), nil
	})
	if err != nil {
		return r.refused(ctx, err)
	}
	err = r.step("preflight/dry-run", func() (string, error) {
		err := d.kc.DryRunApply(ctx, objs, FieldManager, func() retry.Backoff { return kube.Budget(20 * time.Second) })
		return fmt.Sprintf("%d objects accepted by a server-side dry run", len(objs)), err
	})
	if err != nil {
		return r.refused(ctx, err)
	}
	r.res.Services = pendingServices(enabled, images)
	r.takeOver = req.TakeOverLock
	return d.locked(ctx, r, func(ctx context.Context) outcome {
		return d.deployLocked(ctx, r, values, images)
	})
}

func (d *Deployer) preflightAPI(ctx context.Context, r *run) error {
	return r.step("preflight/api", func() (string, error) {
		v, err := d.kc.Ping(ctx, kube.Budget(30*time.Second))
		if err != nil {
			return "", err
		}
		return "API server answers, version " + v, nil
	})
}

func (d *Deployer) deployLocked(ctx context.Context, r *run, values map[string]any, images []registry.Image) outcome {
	history, err := d.rel.History(ctx)
	if err != nil {
		return outcome{report.Failed, "Could not read the release history; nothing was changed.", err}
	}
	if n := len(history); n > 0 {
		last := history[n-1]
		same, err := last.SameAs(d.chart, values)
		if err != nil {
			return outcome{report.Failed, "Could not compare with the current revision; nothing was changed.", err}
		}
		if same && last.Verified && last.Status == "deployed" {
			r.res.Revision = last.Number
			r.skip("release", fmt.Sprintf("images and values equal verified revision %d", last.Number))
			d.snapshot(ctx, r, last)
			return outcome{report.Unchanged, fmt.Sprintf("Images and values equal the verified revision %d, which is deployed: nothing to change.", last.Number), nil}
		}
	}
	firstInstall := len(history) == 0

	var rev release.Revision
	err = r.step("release", func() (string, error) {
		var err error
		rev, err = d.rel.Apply(ctx, d.chart, values, release.ApplyOptions{DeployedBy: d.actor,
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
	if err != nil {
		if ctx.Err() != nil {
			return d.cancelled(ctx, r, rev.Number, "release")
		}
		if rev.Number == 0 {
			return outcome{report.Failed, "Helm refused the release; nothing was applied.", err}
		}
		cause := &gate.Failure{Gate: "release", Problems: []gate.Problem{{Class: "ReleaseError", Service: d.env.Release, Reason: "HelmError", Message: err.Error()}}}
		return d.remediate(ctx, r, rev, firstInstall, cause, 0)
	}

	statuses, err := d.gates(ctx, r, rev, "gate")
	if err == nil {
		err = r.step("verdict", func() (string, error) {
			return fmt.Sprintf("revision %d marked verified", rev.Number), d.rel.MarkVerified(ctx, rev.Number, time.Now())
		})
		r.res.Services = d.services(r, statuses, rev)
		if err != nil {
			return outcome{report.Failed, fmt.Sprintf("Revision %d passed every gate but could not be marked verified.", rev.Number), err}
		}
		return outcome{report.Verified, fmt.Sprintf("Revision %d passed every gate and is marked verified.", rev.Number), nil}
	}
	r.res.Services = d.services(r, statuses, rev)
	if ctx.Err() != nil {
		return d.cancelled(ctx, r, rev.Number, "gates")
	}
	var f *gate.Failure
	if !errors.As(err, &f) {
		f = &gate.Failure{Gate: "gates", Problems: []gate.Problem{{Class: "GateError", Service: d.env.Release, Reason: "Error", Message: err.Error()}}}
	}
	return d.remediate(ctx, r, rev, firstInstall, f, 0)
}

// remediate handles a revision that failed: record the failure, then roll
// back to the newest verified revision and gate that, or remove a failed
// first install, or say plainly that there is nothing verified to return to.
// A revision numbered skip (a manual rollback's target that just failed) is
// never chosen.
func (d *Deployer) remediate(ctx context.Context, r *run, failed release.Revision, firstInstall bool, cause *gate.Failure, skip int) outcome {
	r.res.Problems = cause.Problems
	why := fmt.Sprintf("revision %d failed its %s gate: %s", failed.Number, cause.Gate, headline(cause))
	// The description lives in the release record; keep secrets out of it too.
	if err := d.rel.MarkFailed(ctx, failed.Number, d.redactor.String("gates failed: "+headline(cause))); err != nil {
		r.note("could not mark revision %d failed in Helm's history: %v", failed.Number, err)
	}
	history, err := d.rel.History(ctx)
	if err != nil {
		return outcome{report.Failed, capital(why) + "; the history could not be read to roll back.", err}
	}
	var candidates []release.Revision
	for _, h := range history {
		if h.Number != skip {
			candidates = append(candidates, h)
		}
	}
	if target, ok := release.LastVerified(candidates, failed.Number); ok {
		newRev, err := d.rollbackTo(ctx, r, target, "rollback")
		switch {
		case err == nil:
			return outcome{report.RolledBack, fmt.Sprintf("%s. Rolled back to verified revision %d, which passed its gates again and serves as revision %d.",
				capital(why), target.Number, newRev.Number), errors.New(cause.Error())}
		case ctx.Err() != nil:
			return d.cancelled(ctx, r, newRev.Number, "rollback")
		default:
			return outcome{report.RollbackFailed, fmt.Sprintf("%s. The rollback to verified revision %d failed too: %v", capital(why), target.Number, err), err}
		}
	}
	if firstInstall {
		err := r.step("uninstall", func() (string, error) {
			return "failed first install removed; diagnostics kept in this report",
				d.rel.Uninstall(ctx, d.redactor.String("first install failed its gates: "+headline(cause)))
		})
		if err != nil {
			return outcome{report.Failed, capital(why) + "; removing the failed first install failed too.", err}
		}
		return outcome{report.Uninstalled, capital(why) + ". It was the first install, so it was uninstalled; the diagnostics are below.", errors.New(cause.Error())}
	}
	return outcome{report.Failed, capital(why) + ". No verified revision exists to roll back to, so it was left in place.", errors.New(cause.Error())}
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

// gates runs the rollout gate and then the readiness gate for rev.
func (d *Deployer) gates(ctx context.Context, r *run, rev release.Revision, prefix string) ([]gate.Status, error) {
	workloads, apis, err := d.workloads(rev)
	if err != nil {
		return nil, err
	}
	progress := func(step string) func(gate.Progress) {
		return func(p gate.Progress) {
			if p.Gate == gate.ReadinessGate {
				r.readiness(p)
			}
			d.emit(Event{Step: step, Status: "progress", Gate: &p})
		}
	}
	var statuses []gate.Status
	err = r.step(prefix+"/rollout", func() (string, error) {
		var err error
		statuses, err = gate.WatchRollout(ctx, d.kc.Watch, gate.RolloutOptions{
			Namespace: d.env.Namespace, Release: d.env.Release, Workloads: workloads,
			Timeout: d.env.Gates.RolloutTimeout, UnschedulableGrace: d.env.Gates.UnschedulableGrace, ControllerGrace: d.env.Gates.ControllerGrace,
			Progress: progress(prefix + "/rollout"),
		})
		return fmt.Sprintf("%d workloads fully available", len(workloads)), err
	})
	if err != nil {
		return statuses, err
	}
	err = r.step(prefix+"/readiness", func() (string, error) {
		err := gate.CheckReadiness(ctx, d.eps, gate.ReadinessOptions{
			Namespace: d.env.Namespace, Services: apis, Timeout: d.env.Gates.ReadinessTimeout,
			Progress: progress(prefix + "/readiness"),
		})
		return fmt.Sprintf("%d readiness endpoints answered 2xx", len(apis)), err
	})
	return statuses, err
}

// workloads maps the Deployments of rev's manifest to services, and picks
// the APIs among them for the readiness gate.
func (d *Deployer) workloads(rev release.Revision) ([]gate.Workload, []catalog.Service, error) {
	deps, err := rev.Deployments()
	if err != nil {
		return nil, nil, err
	}
	var wls []gate.Workload
	var apis []catalog.Service
	for _, name := range deps {
		wls = append(wls, gate.Workload{Service: name, Deployment: name})
		if s, err := catalog.Lookup(name); err == nil && s.IsAPI() {
			apis = append(apis, s)
		}
	}
	return wls, apis, nil
}

// snapshot fills the services from the cluster as they are now and returns
// what holds back those that are not available, classified as the gates do.
func (d *Deployer) snapshot(ctx context.Context, r *run, rev release.Revision) []gate.Problem {
	wls, _, err := d.workloads(rev)
	if err != nil {
		r.note("could not read the workloads of revision %d: %v", rev.Number, err)
		return nil
	}
	statuses, problems, err := gate.Snapshot(ctx, d.kc.Watch, d.env.Namespace, wls, 20*time.Second)
	if err != nil {
		r.note("%v", err)
		return nil
	}
	r.res.Services = d.services(r, statuses, rev)
	return problems
}

func (d *Deployer) services(r *run, statuses []gate.Status, rev release.Revision) []report.Service {
	if len(statuses) == 0 {
		return r.res.Services
	}
	out := make([]report.Service, 0, len(statuses))
	for _, st := range statuses {
		out = append(out, report.Service{
			Name: st.Service, Image: rev.Images[st.Service], Ready: st.Ready, Desired: st.Desired,
			Phase: string(st.Phase), Readiness: r.ready[st.Service],
		})
	}
	return out
}

func pendingServices(enabled []catalog.Service, images []registry.Image) []report.Service {
	byName := map[string]string{}
	for _, img := range images {
		byName[img.Service] = img.Pinned()
	}
	out := make([]report.Service, 0, len(enabled))
	for _, s := range enabled {
		out = append(out, report.Service{Name: s.Name, Image: byName[s.Name], Phase: "not deployed"})
	}
	return out
}

// locked runs body while holding the environment's deploy lock, after
// recovering a release a dead deploy left pending. The lock is released
// whatever happens, with a context of its own, and losing it cancels body.
func (d *Deployer) locked(ctx context.Context, r *run, body func(context.Context) outcome) *report.Result {
	var held *kube.Lock
	err := r.step("preflight/lock", func() (string, error) {
		var err error
		held, err = kube.AcquireLock(ctx, d.kc, d.env.Namespace, LockName, d.holderIdentity(), d.env.LockTTL, kube.Budget(30*time.Second),
			kube.LockOptions{TakeOver: r.takeOver})
		if err != nil {
			return "", err
		}
		if held.TookOver != nil {
			return fmt.Sprintf("took over the lock of %q: %s", held.TookOver.Identity, held.TookOverWhy), nil
		}
		return "lock " + held.Lease + " acquired", nil
	})
	if err != nil {
		var he *kube.HeldError
		if errors.As(err, &he) {
			r.res.Lock = &report.Lock{Lease: he.Lease, Holder: he.Holder.Identity, Expires: he.Holder.Expires, Live: true}
		}
		return r.refused(ctx, err)
	}
	r.res.Lock = &report.Lock{Lease: held.Lease, Holder: held.Identity, Live: true}
	if held.TookOver != nil {
		r.note("The deploy lock was held by %q: %s. This deploy took the lock over.", held.TookOver.Identity, held.TookOverWhy)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-held.Lost():
			cancel(held.LostCause())
		case <-lctx.Done():
		}
	}()

	var out outcome
	err = r.step("recover", func() (string, error) {
		who := "no live deploy holds the lock"
		if held.TookOver != nil {
			who = fmt.Sprintf("its deploy (lock holder %q) is gone", held.TookOver.Identity)
		}
		rev, ok, err := d.rel.Unlock(lctx, who)
		if err != nil || !ok {
			return "no release stuck in a pending state", err
		}
		r.note("Revision %d was stuck in %s; %s, so it was marked failed and this run proceeds.", rev.Number, rev.Status, who)
		return fmt.Sprintf("revision %d was stuck in %s: marked failed", rev.Number, rev.Status), nil
	})
	if err != nil {
		out = outcome{report.Failed, "Could not recover the release from its pending state; nothing was applied.", err}
	} else {
		out = body(lctx)
	}
	if cause := context.Cause(lctx); cause != nil && ctx.Err() == nil && out.verdict == report.Cancelled {
		out.summary += " The deploy lock was lost: " + cause.Error()
	}
	cancel(nil)

	rctx, rcancel := detach(ctx, 30*time.Second)
	defer rcancel()
	if err := held.Release(rctx); err != nil {
		r.note("The deploy lock could not be released (%v); it expires on its own after %s.", err, d.env.LockTTL)
	} else {
		r.res.Lock.Live = false
		r.res.Lock.Holder = ""
	}
	return r.finish(out.verdict, out.err, out.summary)
}

func (d *Deployer) cancelled(ctx context.Context, r *run, rev int, during string) outcome {
	msg := fmt.Sprintf("Cancelled during %s", during)
	if rev > 0 {
		msg += fmt.Sprintf(": revision %d was applied but is not verified", rev)
	}
	msg += ". The deploy lock is released; the next deploy recovers the release, or `krgeobuk rollback` returns to the last verified revision."
	return outcome{report.Cancelled, msg, context.Cause(ctx)}
}

func (r *run) refused(ctx context.Context, err error) *report.Result {
	if ctx.Err() != nil {
		return r.finish(report.Cancelled, err, "Cancelled before anything changed.")
	}
	return r.finish(report.Refused, err, "Refused before anything changed: "+firstLine(err.Error()))
}

func (r *run) readiness(p gate.Progress) {
	if r.ready == nil {
		r.ready = map[string]string{}
	}
	r.ready[p.Service] = string(p.Phase)
}

func headline(f *gate.Failure) string {
	if len(f.Problems) == 0 {
		return f.Error()
	}
	p := f.Problems[0]
	s := fmt.Sprintf("%s in %s", p.Class, p.String())
	if n := len(f.Problems) - 1; n > 0 {
		s += fmt.Sprintf(" (and %d more)", n)
	}
	return s
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
