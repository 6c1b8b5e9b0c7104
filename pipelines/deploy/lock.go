package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// LockName is the Lease, in the environment's namespace, that serialises
// deploys and rollbacks of the environment.
const LockName = "krgeobuk-deploy-lock"

// locked runs body while holding the environment's deploy lock, after
// recovering a release a dead deploy left pending. The lock is released
// whatever happens, with a context of its own, and losing it cancels body.
func (d *Deployer) locked(ctx context.Context, r *run, body func(context.Context) outcome) *report.Result {
	var held *kube.Lock
	err := r.step("preflight/lock", func() (string, error) {
		var err error
		held, err = kube.AcquireLock(ctx, d.kc, d.stack.Namespace, LockName, d.holderIdentity(), d.env.LockTTL, kube.Budget(d.budgets.Lock),
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

	rctx, rcancel := detach(ctx, d.budgets.Cleanup)
	defer rcancel()
	if err := held.Release(rctx); err != nil {
		r.note("The deploy lock could not be released (%v); it expires on its own after %s.", err, d.env.LockTTL)
	} else {
		r.res.Lock.Live = false
		r.res.Lock.Holder = ""
	}
	return r.finish(out.verdict, out.err, out.summary)
}

// holderIdentity names this run in the deploy lock. It is unique per run,
// not per actor, so a second deploy by the same person is refused too.
func (d *Deployer) holderIdentity() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s (pid %d on %s, %s)", d.actor, os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
}

// detach gives cleanup work (releasing the lock) a bounded context that
// survives the cancellation of ctx.
func detach(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
