// Package deploy is the gated deploy flow: preflight (API server, images by
// digest, schema, server-side dry run, deploy lock), one Helm upgrade
// --install without waiting, the rollout and readiness gates, and the
// verdict: a revision that passed is marked verified; one that failed is
// rolled back to the newest verified revision, which is gated again. A
// failed first install is removed. Manual rollback, status and history work
// over the same parts. Every run returns one report.Result.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// LockName is the Lease, in the environment's namespace, that serialises
// deploys and rollbacks of the environment.
const LockName = "krgeobuk-deploy-lock"

// FieldManager names this pipeline in server-side dry runs.
const FieldManager = "krgeobuk-deploy"

// Config is what a Deployer needs. Kubeconfig and Env are required.
type Config struct {
	// Kubeconfig is the kubeconfig file's content (current context used).
	Kubeconfig []byte
	Env        *environment.Environment
	// Chart defaults to the embedded krgeobuk-apps chart.
	Chart *chart.Chart
	// Registry resolves images; nil means anonymous access with the default
	// retry budget.
	Registry *registry.Resolver
	// Endpoints resolves readiness URLs; nil means the API server's service
	// proxy with the kubeconfig's credentials.
	Endpoints gate.Endpoints
	// ReadinessURLs send the named services' readiness checks to fixed URLs
	// (the public ingress, say); the others use Endpoints.
	ReadinessURLs map[string]string
	// Actor says who deploys; it is recorded on revisions and in the lock
	// holder identity. Default: $USER@hostname.
	Actor string
	// Progress receives every step and gate update as it happens.
	Progress func(Event)
	// Log receives human-readable progress lines, redacted. Nil discards.
	Log io.Writer
	// Verbose adds Helm's own debug lines to Log.
	Verbose bool
}

// Event is one progress update of a run.
type Event struct {
	Time time.Time `json:"time"`
	// Step is the stage ("preflight/images", "release", "gate/rollout", ...).
	Step string `json:"step"`
	// Status is "start", "ok", "failed", "skipped" or "progress".
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Gate is set for gate progress.
	Gate *gate.Progress `json:"gate,omitempty"`
}

// Deployer runs deploys, rollbacks, status and history for one environment.
type Deployer struct {
	cfg      Config
	env      *environment.Environment
	kc       *kube.Client
	rel      *release.Client
	chart    *chart.Chart
	resolver *registry.Resolver
	eps      gate.Endpoints
	actor    string
	redactor *report.Redactor
	logMu    sync.Mutex
	log      io.Writer
}

// New checks the configuration and prepares clients; it contacts nothing.
// A kubeconfig that does not parse is an error here, before any run.
func New(cfg Config) (*Deployer, error) {
	if cfg.Env == nil {
		return nil, errors.New("deploy: no environment")
	}
	red := &report.Redactor{}
	red.Add(report.SecretsFromKubeconfig(cfg.Kubeconfig)...)
	red.Add(report.SecretsFromValues(cfg.Env.Values)...)
	kc, err := kube.FromKubeconfig(cfg.Kubeconfig, cfg.Env.Namespace)
	if err != nil {
		return nil, fmt.Errorf("environment %s: %s", cfg.Env.Name, red.String(err.Error()))
	}
	d := &Deployer{cfg: cfg, env: cfg.Env, kc: kc, redactor: red, chart: cfg.Chart, resolver: cfg.Registry, eps: cfg.Endpoints}
	d.log = io.Discard
	if cfg.Log != nil {
		d.log = red.Writer(cfg.Log)
	}
	helmLog := func(string, ...any) {}
	if cfg.Verbose {
		helmLog = func(format string, args ...any) { d.logf("helm: "+format, args...) }
	}
	d.rel, err = release.New(kc, cfg.Env.Namespace, cfg.Env.Release, helmLog)
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", cfg.Env.Name, err)
	}
	if d.chart == nil {
		d.chart, err = render.LoadFS(charts.Apps, charts.AppsDir)
		if err != nil {
			return nil, fmt.Errorf("environment %s: %w", cfg.Env.Name, err)
		}
	}
	if d.resolver == nil {
		d.resolver = &registry.Resolver{}
	}
	if d.eps == nil {
		d.eps = gate.ServiceProxy{Config: kc.RESTConfig()}
	}
	if len(cfg.ReadinessURLs) > 0 {
		d.eps = gate.URLs{URLs: cfg.ReadinessURLs, Fallback: d.eps}
	}
	d.actor = cfg.Actor
	if d.actor == "" {
		d.actor = DefaultActor()
	}
	return d, nil
}

// DefaultActor is $USER@hostname; without $USER (cron, containers, CI
// agents) the OS user's name, or "uid-N" when the user database does not
// know the uid.
func DefaultActor() string {
	name := os.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil && u.Username != "" {
			name = u.Username
		} else {
			name = fmt.Sprintf("uid-%d", os.Getuid())
		}
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// Redactor returns the redactor every output of this Deployer must pass
// through; the CLI uses it for the reports it prints.
func (d *Deployer) Redactor() *report.Redactor { return d.redactor }

// Release returns the deployer's Helm client.
func (d *Deployer) Release() *release.Client { return d.rel }

func (d *Deployer) logf(format string, args ...any) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	fmt.Fprintf(d.log, format+"\n", args...)
}

func (d *Deployer) emit(ev Event) {
	ev.Time = time.Now()
	if ev.Gate != nil {
		g := ev.Gate
		d.logf("%s %-14s %-11s %s %s", ev.Step, g.Service, g.Phase, g.Counts(), g.Message)
	} else {
		line := fmt.Sprintf("%s: %s", ev.Step, ev.Status)
		if ev.Detail != "" {
			line += ": " + ev.Detail
		}
		d.logf("%s", line)
	}
	if d.cfg.Progress != nil {
		ev.Detail = d.redactor.String(ev.Detail)
		d.cfg.Progress(ev)
	}
}

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
		Command: command, Environment: d.env.Name, Namespace: d.env.Namespace, Release: d.env.Release,
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
	for _, ps := range [][]gate.Problem{res.Problems, res.RollbackProblems} {
		for i := range ps {
			ps[i].Message = red.String(ps[i].Message)
			ps[i].Reason = red.String(ps[i].Reason)
			for j := range ps[i].Events {
				ps[i].Events[j] = red.String(ps[i].Events[j])
			}
		}
	}
	r.d.logf("verdict: %s: %s", v, res.Summary)
	return res
}

// Refused builds the result of a run that could not start (no Deployer:
// bad kubeconfig, unknown environment). The error is passed through red.
func Refused(command string, env *environment.Environment, err error, red *report.Redactor) *report.Result {
	res := &report.Result{Command: command, Verdict: report.Refused, StartedAt: time.Now().UTC()}
	if env != nil {
		res.Environment, res.Namespace, res.Release = env.Name, env.Namespace, env.Release
	}
	res.Error = red.String(err.Error())
	res.Summary = "Refused before anything changed: " + res.Error
	return res
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
