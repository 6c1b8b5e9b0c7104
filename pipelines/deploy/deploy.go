// Package deploy is the gated deploy flow, as named actions, one file each:
// preflight (API server, images by digest, schema, policy rules,
// server-side dry run), lock and recovery (the deploy Lease; a release a
// dead deploy left pending), upgrade (one Helm upgrade --install without
// waiting), gates (rollout, then readiness), remediation (what follows a
// failure is decided by next.go from the release history alone, then
// carried out), manual rollback, status and history. Every run returns one
// report.Result. Deploy in flow.go reads top to bottom.
//
// The flow is the same for every stack (pipelines/stack): the apps umbrella
// and the monitoring stack differ only in what the Stack says (chart, values,
// namespace, release, where images are pinned, which components get a
// readiness check); nothing here names either.
package deploy

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"sync"
	"time"

	retry "github.com/sethvargo/go-retry"
	"helm.sh/helm/v3/pkg/chart"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/stack"
)

// Config is what a Deployer needs. Kubeconfig and Env are required.
type Config struct {
	// Kubeconfig is the kubeconfig file's content (current context used).
	Kubeconfig []byte
	Env        *environment.Environment
	// Stack names what is deployed: stack.Apps (the default when empty) or
	// stack.Monitoring.
	Stack string
	// Chart defaults to the stack's embedded chart.
	Chart *chart.Chart
	// Registry resolves images; nil means anonymous access with the default
	// retry budget.
	Registry *registry.Resolver
	// Endpoints resolves readiness URLs; nil means a port-forward to each
	// ready pod with the kubeconfig's credentials (gate.PortForward).
	Endpoints gate.Endpoints
	// ReadinessURLs send the named services' readiness checks to fixed URLs
	// (the public ingress, say); the others use Endpoints.
	ReadinessURLs map[string]string
	// PrometheusURL is the Prometheus the analysis gate asks
	// (--prometheus-url); empty means the environment's monitoring release's
	// Prometheus, through a port-forward.
	PrometheusURL string
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

// Deployer runs deploys, rollbacks, status and history of one stack of one
// environment.
type Deployer struct {
	cfg      Config
	env      *environment.Environment
	stack    stack.Stack
	kc       *kube.Client
	rel      *release.Client
	chart    *chart.Chart
	resolver *registry.Resolver
	eps      gate.Endpoints
	actor    string
	redactor *report.Redactor
	budgets  budget.Budgets
	logMu    sync.Mutex
	log      io.Writer
}

// New checks the configuration and prepares clients; it contacts nothing.
// A kubeconfig that does not parse is an error here, before any run.
func New(cfg Config) (*Deployer, error) {
	if cfg.Env == nil {
		return nil, errors.New("deploy: no environment")
	}
	st, err := stack.For(cfg.Env, cfg.Stack)
	if err != nil {
		return nil, err
	}
	red := &report.Redactor{}
	red.Add(report.SecretsFromKubeconfig(cfg.Kubeconfig)...)
	red.Add(report.SecretsFromValues(st.Values)...)
	if u, err := url.Parse(cfg.PrometheusURL); err == nil && u.User != nil {
		// Credentials in --prometheus-url stay out of every report.
		if pw, ok := u.User.Password(); ok {
			red.Add(pw)
		}
	}
	kc, err := kube.FromKubeconfig(cfg.Kubeconfig, st.Namespace)
	if err != nil {
		return nil, fmt.Errorf("environment %s: %s", cfg.Env.Name, red.String(err.Error()))
	}
	d := &Deployer{cfg: cfg, env: cfg.Env, stack: st, kc: kc, redactor: red, chart: cfg.Chart, resolver: cfg.Registry, eps: cfg.Endpoints,
		budgets: budget.Defaults().Over(cfg.Env.Budgets)}
	d.log = io.Discard
	if cfg.Log != nil {
		d.log = red.Writer(cfg.Log)
	}
	helmLog := func(string, ...any) {}
	if cfg.Verbose {
		helmLog = func(format string, args ...any) { d.logf("helm: "+format, args...) }
	}
	d.rel, err = release.New(kc, st.Namespace, st.Release, helmLog)
	if err != nil {
		return nil, fmt.Errorf("environment %s: %w", cfg.Env.Name, err)
	}
	d.rel.Budgets = d.budgets
	d.rel.Layout = st.Layout
	if d.chart == nil {
		d.chart, err = st.Chart()
		if err != nil {
			return nil, fmt.Errorf("environment %s: %w", cfg.Env.Name, err)
		}
	}
	if d.resolver == nil {
		d.resolver = &registry.Resolver{}
	}
	if d.resolver.NewBudget == nil {
		d.resolver.NewBudget = func() retry.Backoff { return budget.Registry(d.budgets.Registry) }
	}
	if d.eps == nil {
		d.eps = gate.PortForward{Config: kc.RESTConfig()}
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

// Stack returns what the deployer deploys.
func (d *Deployer) Stack() stack.Stack { return d.stack }

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
