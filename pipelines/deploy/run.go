package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// run tracks one run's result and steps.
type run struct {
	d     *Deployer
	res   *report.Result
	start time.Time
	ready map[string]string // readiness gate phase per service
	// takeOver asks locked to take the deploy lock from a live holder.
	takeOver bool
}

func (d *Deployer) newRun(command string) *run {
	now := time.Now()
	return &run{d: d, start: now, res: &report.Result{
		Command: command, Environment: d.env.Name, Stack: d.stack.Name, Namespace: d.stack.Namespace, Release: d.stack.Release,
		Actor: d.actor, StartedAt: now.UTC(),
	}}
}

// step runs fn as a named step, recording its outcome and duration.
func (r *run) step(name string, fn func() (string, error)) error {
	r.d.emit(Event{Step: name, Status: "start"})
	t := time.Now()
	detail, err := fn()
	s := report.Step{Name: name, Status: "ok", Duration: report.Duration(time.Since(t)), Detail: detail}
	if err != nil {
		s.Status = "failed"
		s.Detail = err.Error()
	}
	r.res.Steps = append(r.res.Steps, s)
	r.d.emit(Event{Step: name, Status: s.Status, Detail: s.Detail})
	return err
}

func (r *run) skip(name, why string) {
	r.res.Steps = append(r.res.Steps, report.Step{Name: name, Status: "skipped", Detail: why})
	r.d.emit(Event{Step: name, Status: "skipped", Detail: why})
}

func (r *run) note(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	r.res.Notes = append(r.res.Notes, n)
	r.d.logf("note: %s", n)
}

// finish fills the verdict and redacts every message: a Result never holds
// a secret, even before it is rendered.
func (r *run) finish(v report.Verdict, err error, summary string) *report.Result {
	res := r.res
	res.Verdict, res.OK, res.Summary = v, v.OK(), summary
	if err != nil {
		res.Error = err.Error()
	}
	res.Duration = report.Duration(time.Since(r.start))
	red := r.d.redactor
	res.Summary, res.Error = red.String(res.Summary), red.String(res.Error)
	for i := range res.Steps {
		res.Steps[i].Detail = red.String(res.Steps[i].Detail)
	}
	for i := range res.Notes {
		res.Notes[i] = red.String(res.Notes[i])
	}
	for i := range res.Analysis {
		res.Analysis[i].Detail = red.String(res.Analysis[i].Detail)
	}
	for _, ps := range [][]gate.Problem{res.Problems, res.RollbackProblems} {
		for i := range ps {
			ps[i].Message = red.String(ps[i].Message)
			ps[i].Reason = red.String(ps[i].Reason)
			for j := range ps[i].Events {
				ps[i].Events[j] = red.String(ps[i].Events[j])
			}
			for j := range ps[i].Logs {
				ps[i].Logs[j] = red.String(ps[i].Logs[j])
			}
		}
	}
	r.d.logf("verdict: %s: %s", v, res.Summary)
	return res
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

// cancelled is the outcome of a run whose context ended after the lock was
// taken: what was applied, and how to continue.
func (d *Deployer) cancelled(ctx context.Context, r *run, rev int, during string) outcome {
	msg := fmt.Sprintf("Cancelled during %s", during)
	if rev > 0 {
		msg += fmt.Sprintf(": revision %d was applied but is not verified", rev)
	}
	msg += ". The deploy lock is released; the next deploy recovers the release, or `krgeobuk rollback` returns to the last verified revision."
	return outcome{report.Cancelled, msg, context.Cause(ctx)}
}

// outcome is how a locked body ended.
type outcome struct {
	verdict report.Verdict
	summary string
	err     error
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
