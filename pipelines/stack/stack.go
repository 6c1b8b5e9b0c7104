// Package stack names what the pipeline deploys into an environment: the
// apps (the krgeobuk-apps umbrella of the four services) or the monitoring
// stack (monitoring-stack: Prometheus, Alertmanager and Grafana). A Stack is
// everything the one deploy core needs to know about either: the chart, the
// environment's values for it, its namespace and release, where its images
// live in the values (a values.Layout), whether a deploy runs the images the
// chart names when the request names none, and which components get an HTTP
// readiness check through their Service. The flow itself (preflight, lock,
// upgrade, gates, verdict, rollback) knows no stack by name.
package stack

import (
	"fmt"
	"io/fs"
	"strings"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// The stacks.
const (
	// Apps is the four services, one release of charts/krgeobuk-apps.
	Apps = "apps"
	// Monitoring is Prometheus, Alertmanager and Grafana, one release of
	// charts/monitoring-stack.
	Monitoring = "monitoring"
)

// Names lists the stacks, the default first.
func Names() []string { return []string{Apps, Monitoring} }

// Probe is one component's HTTP readiness endpoint: the path its
// container's readiness probe asks, on the container port behind the
// Service port named PortName.
type Probe struct {
	Path string
	// PortName is the Service port (and container port) name.
	PortName string
	// ContainerPort is the port the container serves Path on.
	ContainerPort int
}

// monitoringProbes are the monitoring components' readiness endpoints, as
// their charts' readiness probes ask them (TestMonitoringProbesMatchTheChart).
var monitoringProbes = map[string]Probe{
	"prometheus":   {Path: "/-/ready", PortName: "http", ContainerPort: 9090},
	"alertmanager": {Path: "/-/ready", PortName: "http", ContainerPort: 9093},
	"grafana":      {Path: "/api/health", PortName: "http", ContainerPort: 3000},
}

// Stack is one deployable stack of one environment.
type Stack struct {
	// Name is Apps or Monitoring.
	Name string
	environment.Placement
	// Values are the environment's values of the stack's chart (chart
	// defaults not merged in).
	Values map[string]any
	// Layout says where the chart keeps images, switches and the image
	// policy.
	Layout values.Layout
	// ChartImages: a deploy that names no image for an enabled component
	// runs the one the chart's values name, pinned to its digest at
	// preflight. The apps' images are built by the pipeline and must be
	// named; the monitoring stack runs released upstream versions.
	ChartImages bool

	fsys  fs.FS
	dir   string
	probe func(component string) (Probe, bool)
}

// For returns the named stack of env. An unknown name, or a monitoring
// stack the environment does not place (no monitoring: block in
// environment.yaml, or no monitoring-stack.values.yaml), is an error that
// says what to add.
func For(env *environment.Environment, name string) (Stack, error) {
	switch name {
	case Apps, "":
		return Stack{
			Name: Apps, Placement: environment.Placement{Namespace: env.Namespace, Release: env.Release},
			Values: env.Values, Layout: values.Apps, fsys: charts.Apps, dir: charts.AppsDir, probe: appsProbe,
		}, nil
	case Monitoring:
		if env.Monitoring == nil {
			return Stack{}, fmt.Errorf("environment %s does not deploy the monitoring stack: its %s has no monitoring: block (namespace, release)",
				env.Name, environment.SettingsFile)
		}
		if env.MonitoringValues == nil {
			return Stack{}, fmt.Errorf("environment %s does not deploy the monitoring stack: it has no %s", env.Name, environment.MonitoringValuesFile)
		}
		return Stack{
			Name: Monitoring, Placement: *env.Monitoring, Values: env.MonitoringValues, Layout: values.Monitoring,
			ChartImages: true, fsys: charts.MonitoringStack, dir: charts.MonitoringStackDir, probe: monitoringProbe,
		}, nil
	}
	return Stack{}, fmt.Errorf("unknown stack %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Chart loads the stack's embedded chart. Every call returns a fresh copy:
// Helm mutates the charts it is given.
func (s Stack) Chart() (*chart.Chart, error) {
	ch, err := render.LoadFS(s.fsys, s.dir)
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", s.Name, err)
	}
	return ch, nil
}

// Readiness returns the HTTP readiness endpoint of a component, when the
// stack's readiness gate asks it: the apps' APIs (/health/ready, which
// checks their data stores) and every monitoring component. The apps' SPAs
// have none beyond the kubelet's probe.
func (s Stack) Readiness(component string) (Probe, bool) {
	if s.probe == nil {
		return Probe{}, false
	}
	return s.probe(component)
}

func appsProbe(component string) (Probe, bool) {
	svc, err := catalog.Lookup(component)
	if err != nil || !svc.IsAPI() {
		return Probe{}, false
	}
	return Probe{Path: svc.ReadinessPath, PortName: "http", ContainerPort: svc.HTTPPort}, true
}

func monitoringProbe(component string) (Probe, bool) {
	p, ok := monitoringProbes[component]
	return p, ok
}

// MonitoringProbes returns every monitoring component's readiness endpoint,
// for stand-ins that must answer where the readiness gate asks.
func MonitoringProbes() map[string]Probe {
	out := make(map[string]Probe, len(monitoringProbes))
	for c, p := range monitoringProbes {
		out[c] = p
	}
	return out
}
