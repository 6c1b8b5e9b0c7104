package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/metricgate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/stack"
)

// ScrapeAnnotation marks the pods Prometheus scrapes (the apps chart sets
// it on the APIs); only their services can be analysed.
const ScrapeAnnotation = "prometheus.io/scrape"

// analysis is what preflight settled for the analysis gate: the Prometheus
// to ask, the thresholds and the window.
type analysis struct {
	gate   *metricgate.Gate
	window metricgate.Window
	th     metricgate.Thresholds
	// where names the Prometheus for reports.
	where string
}

// preflightAnalysis prepares the analysis gate when the environment turns
// it on and the release has pods Prometheus scrapes: thresholds (the
// environment's, else its monitoring alerts'), and a Prometheus that
// answers (--prometheus-url, else the monitoring release's Service through
// a port-forward). Without one, the deploy is refused before anything
// changes.
func (d *Deployer) preflightAnalysis(ctx context.Context, r *run, objs []*unstructured.Unstructured) (*analysis, error) {
	cfg := d.env.Analysis
	if cfg == nil {
		return nil, nil
	}
	if len(scraped(objs)) == 0 {
		r.skip("preflight/analysis", "no workload of this release is scraped by Prometheus")
		return nil, nil
	}
	var a *analysis
	err := r.step("preflight/analysis", func() (string, error) {
		th, err := d.analysisThresholds()
		if err != nil {
			return "", err
		}
		gt, where, err := d.prometheus(ctx, th)
		if err != nil {
			return "", err
		}
		if err := gt.Ping(ctx, d.budgets.APIRead); err != nil {
			return "", fmt.Errorf("metric analysis is on in environment %s, but %s: %w", d.env.Name, where, err)
		}
		a = &analysis{gate: gt, th: th, where: where,
			window: metricgate.Window{Duration: cfg.Duration, Interval: cfg.Interval, ErrorBudget: d.budgets.APIRead}}
		return fmt.Sprintf("%s answers; each changed service watched %s, every %s (5xx ratio ≤ %.4g, p95 ≤ %s, at least %d requests)",
			where, cfg.Duration, cfg.Interval, th.MaxErrorRatio, th.MaxP95, cfg.MinRequests), nil
	})
	return a, err
}

// analysisThresholds are environment.yaml's, each one left out taken from
// the monitoring alerts of the environment (metricgate.ForEnvironment), so
// a deploy passes only what would not page.
func (d *Deployer) analysisThresholds() (metricgate.Thresholds, error) {
	cfg := d.env.Analysis
	th := metricgate.Thresholds{MaxErrorRatio: cfg.MaxErrorRatio, MaxP95: cfg.MaxP95, Window: cfg.Duration, MinRequests: float64(cfg.MinRequests)}
	if th.MaxErrorRatio == 0 || th.MaxP95 == 0 {
		mon, err := stack.For(d.env, stack.Monitoring)
		if err != nil {
			return th, fmt.Errorf("analysis.maxErrorRatio and analysis.maxP95 must be set: there are no monitoring alerts to take them from (%w)", err)
		}
		ch, err := mon.Chart()
		if err != nil {
			return th, err
		}
		alerts, err := metricgate.ForEnvironment(ch.Values, mon.Values)
		if err != nil {
			return th, err
		}
		if th.MaxErrorRatio == 0 {
			th.MaxErrorRatio = alerts.MaxErrorRatio
		}
		if th.MaxP95 == 0 {
			th.MaxP95 = alerts.MaxP95
		}
	}
	return th, th.Validate()
}

// prometheus is the gate's Prometheus: the URL given, else the monitoring
// release's Prometheus Service (<release, at most 40 characters>-prometheus,
// port http) reached through a port-forward to a ready pod.
func (d *Deployer) prometheus(ctx context.Context, th metricgate.Thresholds) (*metricgate.Gate, string, error) {
	if u := d.cfg.PrometheusURL; u != "" {
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			// Not echoed: a URL that does not parse may still hold credentials.
			return nil, "", errors.New("--prometheus-url is not an http:// or https:// URL with a host")
		}
		g, err := metricgate.New(u, th)
		return g, "Prometheus at " + parsed.Redacted(), err
	}
	mon := d.env.Monitoring
	if mon == nil {
		return nil, "", fmt.Errorf("metric analysis is on in environment %s, but no Prometheus can be reached: its %s has no monitoring: placement and no --prometheus-url was given",
			d.env.Name, "environment.yaml")
	}
	svc := strings.TrimSuffix(truncate(mon.Release, 40), "-") + "-prometheus"
	pf := gate.PortForward{Config: d.kc.RESTConfig()}
	ep, err := pf.Readiness(ctx, mon.Namespace, gate.Check{Name: "prometheus", Service: svc, Port: "http"})
	if err != nil {
		return nil, "", err
	}
	where := fmt.Sprintf("Prometheus %s/%s (port-forward)", mon.Namespace, svc)
	g, err := metricgate.New(fmt.Sprintf("http://%s.%s.svc:9090", svc, mon.Namespace), th, metricgate.WithClient(ep.Client))
	return g, where, err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// scraped lists the Deployments whose pods Prometheus scrapes, by name,
// with the service (app.kubernetes.io/name) their metrics are labelled with.
func scraped(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() != "Deployment" || o.GetAPIVersion() != "apps/v1" {
			continue
		}
		ann, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "annotations")
		if ann[ScrapeAnnotation] == "true" {
			out[o.GetName()] = o
		}
	}
	return out
}

// analyse is the analysis gate: every scraped Deployment whose pod template
// rev changed against prev (all of them on a first install) has its new
// ReplicaSet watched for the window, the services side by side. A breach,
// no data or an unanswering Prometheus fails the gate.
func (d *Deployer) analyse(ctx context.Context, r *run, a *analysis, prev *release.Revision, rev release.Revision) error {
	return r.step("gate/analysis", func() (string, error) {
		objs, err := rev.Objects()
		if err != nil {
			return "", err
		}
		var before map[string]*unstructured.Unstructured
		if prev != nil {
			old, err := prev.Objects()
			if err != nil {
				return "", err
			}
			before = scraped(unwrap(old))
		}
		now := scraped(unwrap(objs))
		var jobs []analysisJob
		for _, n := range slices.Sorted(maps.Keys(now)) {
			o := now[n]
			service := serviceOf(o)
			if old, ok := before[n]; ok && samePodTemplate(old, o) {
				r.res.Analysis = append(r.res.Analysis, report.Analysis{Service: service, Verdict: "skipped",
					Detail: fmt.Sprintf("pod template unchanged since revision %d: not analysed", prev.Number)})
				continue
			}
			hash, err := d.newReplicaSetHash(ctx, n)
			if err != nil {
				return "", err
			}
			jobs = append(jobs, analysisJob{service: service, deployment: n, hash: hash, window: a.window})
		}
		if len(jobs) == 0 {
			return "no changed service is scraped by Prometheus: nothing to analyse", nil
		}
		passed, err := d.watch(ctx, r, a, jobs)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s within thresholds for %s (%s)", strings.Join(passed, ", "), a.window.Duration, a.where), nil
	})
}

// analysisJob is one ReplicaSet to watch: the service's pods of one
// pod-template-hash, over window (with a baseline for a canary).
type analysisJob struct {
	service, deployment, hash string
	window                    metricgate.Window
	// step names the canary step, empty for the full rollout.
	step string
}

// watch runs the jobs side by side, records each in the report and returns
// the targets that passed, or a gate.Failure naming every one that did not
// (a breach, no data, or a Prometheus that stopped answering).
func (d *Deployer) watch(ctx context.Context, r *run, a *analysis, jobs []analysisJob) ([]string, error) {
	results := make([]metricgate.Analysis, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.logf("analysis %s: watching ReplicaSet %s for %s, every %s", j.service, j.hash, j.window.Duration, j.window.Interval)
			results[i], errs[i] = a.gate.Analyse(ctx, metricgate.Target{Service: j.service, Revision: j.hash}, j.window)
		}()
	}
	wg.Wait()
	var problems []gate.Problem
	var passed []string
	for i, j := range jobs {
		res, err := results[i], errs[i]
		entry := analysisEntry(res, a.th, j.window.Baseline)
		entry.Step = j.step
		p := gate.Problem{Service: j.service, Workload: "Deployment/" + j.deployment}
		switch {
		case err != nil:
			entry.Verdict, entry.Detail = "error", err.Error()
			p.Class, p.Reason, p.Message = gate.MetricError, "PrometheusError", err.Error()
		case res.Status == metricgate.Fail:
			p.Class, p.Reason, p.Message = gate.MetricBreach, breached(res), res.String()
		case res.Status == metricgate.NoData:
			p.Class, p.Reason, p.Message = gate.NoMetricData, "NoData", res.String()
		default:
			passed = append(passed, j.service+"@"+j.hash)
		}
		r.res.Analysis = append(r.res.Analysis, entry)
		if p.Class != "" {
			problems = append(problems, gate.Describe(d.stack.Namespace, p))
		}
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if len(problems) > 0 {
		return nil, &gate.Failure{Gate: "analysis", Problems: problems}
	}
	return passed, nil
}

func unwrap(objs []render.Object) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.U)
	}
	return out
}

// serviceOf is the service a workload's metrics are labelled with: its
// app.kubernetes.io/name (the monitoring stack's relabeling), else its name.
func serviceOf(o *unstructured.Unstructured) string {
	if s := o.GetLabels()["app.kubernetes.io/name"]; s != "" {
		return s
	}
	return o.GetName()
}

// samePodTemplate reports whether a Deployment's pods are unchanged: the
// same template makes the same ReplicaSet, which the window cannot judge
// anew.
func samePodTemplate(a, b *unstructured.Unstructured) bool {
	ta, _, _ := unstructured.NestedMap(a.Object, "spec", "template")
	tb, _, _ := unstructured.NestedMap(b.Object, "spec", "template")
	return reflect.DeepEqual(ta, tb)
}

// newReplicaSetHash is the pod-template-hash of the Deployment's current
// ReplicaSet: the one it owns whose revision annotation is the
// Deployment's own (the rollout gate has seen it fully available).
func (d *Deployer) newReplicaSetHash(ctx context.Context, name string) (string, error) {
	const revisionAnnotation = "deployment.kubernetes.io/revision"
	var hash string
	err := kube.Retry(ctx, kube.Budget(d.budgets.APIRead), func(ctx context.Context) error {
		apps := d.kc.Typed.AppsV1()
		dep, err := apps.Deployments(d.stack.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
		if err != nil {
			return err
		}
		rss, err := apps.ReplicaSets(d.stack.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return err
		}
		want := dep.Annotations[revisionAnnotation]
		for _, rs := range rss.Items {
			if ownedBy(rs, dep) && want != "" && rs.Annotations[revisionAnnotation] == want {
				hash = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
				return nil
			}
		}
		return errors.New("no ReplicaSet of its current revision " + want)
	})
	if err != nil || hash == "" {
		return "", fmt.Errorf("deployment %s: the new ReplicaSet's pod-template-hash: %w", name, errors.Join(err, errIf(hash == "" && err == nil, "it has no pod-template-hash label")))
	}
	return hash, nil
}

func ownedBy(rs appsv1.ReplicaSet, dep *appsv1.Deployment) bool {
	for _, o := range rs.OwnerReferences {
		if o.UID == dep.UID {
			return true
		}
	}
	return false
}

func errIf(cond bool, msg string) error {
	if cond {
		return errors.New(msg)
	}
	return nil
}

// breached names the metrics of the deciding look above their thresholds.
func breached(a metricgate.Analysis) string {
	last, _ := a.Last()
	var out []string
	for _, r := range last.Verdict.Results {
		if r.Status == metricgate.Fail {
			out = append(out, r.Metric)
		}
	}
	return strings.Join(out, ",") + " above threshold"
}

// analysisEntry is the report's view of an analysis: the deciding look's
// numbers next to the thresholds (and beside the stable pods' for a
// canary), and every look.
func analysisEntry(a metricgate.Analysis, th metricgate.Thresholds, base *metricgate.Baseline) report.Analysis {
	e := report.Analysis{Service: a.Target.Service, Revision: a.Target.Revision, Verdict: string(a.Status),
		MinRequests: a.MinRequests, MaxRatio: th.MaxErrorRatio, MaxP95: th.MaxP95.Seconds()}
	for _, s := range a.Samples {
		e.Samples = append(e.Samples, report.AnalysisSample{Elapsed: report.Duration(s.Elapsed), Requests: s.Measured.Requests,
			ErrorRatio: optional(s.Measured.ErrorRatio, s.Measured.HasRatio), P95Seconds: optional(s.Measured.P95, s.Measured.HasP95)})
	}
	if last, ok := a.Last(); ok {
		e.Requests, e.Elapsed = last.Measured.Requests, report.Duration(last.Elapsed.Round(time.Millisecond))
		e.ErrorRatio = optional(last.Measured.ErrorRatio, last.Measured.HasRatio)
		e.P95Seconds = optional(last.Measured.P95, last.Measured.HasP95)
		if m := last.Baseline; m != nil && base != nil {
			e.Stable = &report.AnalysisStable{Revision: base.Target.Revision, Requests: m.Requests,
				ErrorRatio: optional(m.ErrorRatio, m.HasRatio), P95Seconds: optional(m.P95, m.HasP95),
				MaxRatio: optional(m.ErrorRatio+base.MaxRatioIncrease, m.HasRatio), MaxP95: optional(m.P95*base.MaxP95Factor, m.HasP95)}
		}
		if a.Status != metricgate.Pass {
			e.Detail = a.String()
		}
	}
	return e
}

func optional(v float64, ok bool) *float64 {
	if !ok {
		return nil
	}
	return &v
}
