// Package metricgate decides whether a newly deployed revision of a service
// behaves: it asks Prometheus for the revision's 5xx ratio and p95 latency
// (selected by the service and pod_template_hash labels the monitoring
// stack's krgeobuk-apps job attaches) and compares them with the thresholds
// of the environment, the same ones its alerts use.
package metricgate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/sethvargo/go-retry"
)

// servedRoutes selects the requests callers sent: not the kubelet's probes
// (/health/...) nor Prometheus's scrapes (/metrics), which every running pod
// answers whether anyone calls it or not (a canary nobody calls would
// otherwise never be "no data"; TestCanaryStepsOnRealPods).
const servedRoutes = `route!~"/health(/.*)?|/metrics"`

// Metric names, as verdicts report them.
const (
	MetricErrorRatio = "5xx_ratio"
	MetricP95Latency = "p95_latency_seconds"
)

// Status of one metric check.
type Status string

const (
	Pass   Status = "pass"
	Fail   Status = "fail"
	NoData Status = "no-data"
)

// Thresholds a revision must stay within.
type Thresholds struct {
	// MaxErrorRatio is the highest acceptable share of 5xx responses (0..1].
	MaxErrorRatio float64
	// MaxP95 is the highest acceptable 95th percentile latency.
	MaxP95 time.Duration
	// Window is the range the rates are taken over (a PromQL duration).
	Window time.Duration
	// MinRequests is how many requests the window must hold before the
	// metrics mean anything; fewer is "no data". Zero means 1.
	MinRequests float64
}

// Validate refuses thresholds that would make every verdict meaningless.
func (t Thresholds) Validate() error {
	switch {
	case !(t.MaxErrorRatio > 0 && t.MaxErrorRatio <= 1):
		return fmt.Errorf("thresholds: max 5xx ratio %v must be in (0, 1]", t.MaxErrorRatio)
	case t.MaxP95 <= 0:
		return fmt.Errorf("thresholds: max p95 latency %v must be positive", t.MaxP95)
	case t.Window < time.Second:
		return fmt.Errorf("thresholds: window %v must be at least 1s", t.Window)
	case t.MinRequests < 0:
		return fmt.Errorf("thresholds: min requests %v must not be negative", t.MinRequests)
	}
	return nil
}

// Target selects the revision to judge.
type Target struct {
	Service string
	// Revision is the pod-template-hash of the new ReplicaSet.
	Revision string
}

func (t Target) String() string { return t.Service + "@" + t.Revision }

var labelValue = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Validate refuses names that are not Kubernetes label values, so nothing
// unexpected is spliced into a query.
func (t Target) Validate() error {
	if !labelValue.MatchString(t.Service) {
		return fmt.Errorf("metric gate: service %q is not a valid name", t.Service)
	}
	if !labelValue.MatchString(t.Revision) {
		return fmt.Errorf("metric gate %s: revision %q is not a pod-template-hash", t.Service, t.Revision)
	}
	return nil
}

// Result is one metric compared with its threshold.
type Result struct {
	Metric    string
	Query     string
	Observed  float64
	Threshold float64
	Status    Status
}

func (r Result) String() string {
	switch r.Status {
	case NoData:
		return fmt.Sprintf("%s: no data", r.Metric)
	case Fail:
		return fmt.Sprintf("%s %.4g above threshold %.4g", r.Metric, r.Observed, r.Threshold)
	default:
		return fmt.Sprintf("%s %.4g within threshold %.4g", r.Metric, r.Observed, r.Threshold)
	}
}

// Verdict is the gate's answer for one revision.
type Verdict struct {
	Target   Target
	Requests float64
	Results  []Result
}

// Passed reports whether every metric had data and stayed within its threshold.
func (v Verdict) Passed() bool {
	for _, r := range v.Results {
		if r.Status != Pass {
			return false
		}
	}
	return len(v.Results) > 0
}

// Failed reports whether a metric breached its threshold (as opposed to
// having no data).
func (v Verdict) Failed() bool {
	for _, r := range v.Results {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// String names the service, revision and every metric with its observed
// value and threshold, e.g.
// "auth-server@5d8f7c: FAIL (120 requests): 5xx_ratio 0.5 above threshold 0.05; p95_latency_seconds 0.004 within threshold 1".
func (v Verdict) String() string {
	state := "PASS"
	switch {
	case v.Failed():
		state = "FAIL"
	case !v.Passed():
		state = "NO DATA"
	}
	parts := make([]string, len(v.Results))
	for i, r := range v.Results {
		parts[i] = r.String()
	}
	return fmt.Sprintf("%s: %s (%.0f requests): %s", v.Target, state, v.Requests, strings.Join(parts, "; "))
}

// Gate queries one Prometheus.
type Gate struct {
	api        v1.API
	thresholds Thresholds
	// Budget bounds how long Check keeps asking while Prometheus errs or the
	// revision has not served MinRequests yet.
	Budget time.Duration
	// Interval is the pause between attempts.
	Interval time.Duration
}

// Option changes how a Gate reaches Prometheus.
type Option func(*promapi.Config)

// WithClient sends every query through c: a client whose transport dials
// a Prometheus pod through a port-forward, say (gate.PortForward).
func WithClient(c *http.Client) Option {
	return func(cfg *promapi.Config) { cfg.Client = c }
}

// New returns a gate for the Prometheus at address (http://host:port).
func New(address string, t Thresholds, opts ...Option) (*Gate, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	cfg := promapi.Config{Address: address}
	for _, o := range opts {
		o(&cfg)
	}
	client, err := promapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("metric gate: prometheus %s: %w", address, err)
	}
	return &Gate{api: v1.NewAPI(client), thresholds: t, Budget: 2 * time.Minute, Interval: 2 * time.Second}, nil
}

// errNoData marks an attempt that found too little traffic to judge.
var errNoData = errors.New("not enough requests yet")

// Check judges target. It retries while Prometheus is unreachable or the
// revision has served fewer than MinRequests requests, within Budget and
// ctx; then it returns the verdict (a NoData verdict if traffic never came).
// A breached threshold is returned at once: it is an answer, not a hiccup.
// The error is non-nil only when Prometheus could not be asked at all.
func (g *Gate) Check(ctx context.Context, target Target) (Verdict, error) {
	if err := target.Validate(); err != nil {
		return Verdict{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.Budget)
	defer cancel()
	var verdict Verdict
	var lastErr error
	backoff := retry.WithMaxDuration(g.Budget, retry.NewConstant(g.Interval))
	err := retry.Do(ctx, backoff, func(ctx context.Context) error {
		v, err := g.evaluate(ctx, target)
		if err != nil {
			// An attempt cut short by the deadline says less than the one before.
			if lastErr == nil || ctx.Err() == nil {
				lastErr = err
			}
			return retry.RetryableError(err)
		}
		verdict = v
		if !v.Failed() && !v.Passed() {
			return retry.RetryableError(errNoData)
		}
		return nil
	})
	if err != nil && verdict.Results == nil {
		if lastErr == nil {
			lastErr = err
		}
		return Verdict{Target: target}, fmt.Errorf("metric gate %s: Prometheus gave no answer within %s: %w", target, g.Budget, lastErr)
	}
	return verdict, nil
}

func (g *Gate) evaluate(ctx context.Context, target Target) (Verdict, error) {
	m, err := g.measure(ctx, target, g.thresholds.Window)
	if err != nil {
		return Verdict{Target: target}, err
	}
	return judge(target, m, g.thresholds), nil
}

// Measurement is what Prometheus says about one revision over a range:
// how many requests it served, their 5xx ratio and p95 latency, and the
// queries that said so. HasRatio and HasP95 are false when the range holds
// no rate to compute them from.
type Measurement struct {
	Requests   float64 `json:"requests"`
	ErrorRatio float64 `json:"errorRatio"`
	HasRatio   bool    `json:"hasRatio"`
	P95        float64 `json:"p95Seconds"`
	HasP95     bool    `json:"hasP95"`
	// RatioQuery and P95Query are the PromQL asked.
	RatioQuery string `json:"-"`
	P95Query   string `json:"-"`
}

// measure asks for target's requests, 5xx ratio and p95 over the range
// ending now.
func (g *Gate) measure(ctx context.Context, target Target, rng time.Duration) (Measurement, error) {
	sel := fmt.Sprintf(`service=%q,pod_template_hash=%q,%s`, target.Service, target.Revision, servedRoutes)
	w := model.Duration(rng).String()
	total := fmt.Sprintf(`sum(increase(http_requests_total{%s}[%s]))`, sel, w)
	m := Measurement{
		RatioQuery: fmt.Sprintf(`(sum(rate(http_requests_total{%s,status_code=~"5.."}[%s])) or vector(0)) / sum(rate(http_requests_total{%s}[%s]))`, sel, w, sel, w),
		P95Query:   fmt.Sprintf(`histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{%s}[%s])))`, sel, w),
	}
	var err error
	if m.Requests, _, err = g.scalar(ctx, total); err != nil {
		return m, err
	}
	if m.ErrorRatio, m.HasRatio, err = g.scalar(ctx, m.RatioQuery); err != nil {
		return m, err
	}
	if m.P95, m.HasP95, err = g.scalar(ctx, m.P95Query); err != nil {
		return m, err
	}
	return m, nil
}

// judge compares a measurement with the thresholds: no data below
// MinRequests, else each metric passes or fails on its own.
func judge(target Target, m Measurement, th Thresholds) Verdict {
	v := Verdict{Target: target, Requests: m.Requests}
	enough := m.Requests >= th.minRequests()
	for _, c := range []struct {
		name, query string
		val         float64
		ok          bool
		max         float64
	}{
		{MetricErrorRatio, m.RatioQuery, m.ErrorRatio, m.HasRatio, th.MaxErrorRatio},
		{MetricP95Latency, m.P95Query, m.P95, m.HasP95, th.MaxP95.Seconds()},
	} {
		r := Result{Metric: c.name, Query: c.query, Observed: c.val, Threshold: c.max, Status: Pass}
		switch {
		case !enough || !c.ok:
			r.Status = NoData
		case c.val > c.max:
			r.Status = Fail
		}
		v.Results = append(v.Results, r)
	}
	return v
}

func (t Thresholds) minRequests() float64 {
	if t.MinRequests == 0 {
		return 1
	}
	return t.MinRequests
}

// scalar runs an instant query expected to return at most one sample; ok is
// false for an empty result or NaN (no traffic in the window).
func (g *Gate) scalar(ctx context.Context, q string) (float64, bool, error) {
	val, _, _, err := g.api.Query(ctx, q, time.Now())
	if err != nil {
		return 0, false, fmt.Errorf("query %s: %w", q, err)
	}
	vec, isVec := val.(model.Vector)
	if !isVec {
		return 0, false, fmt.Errorf("query %s: got %s, want a vector", q, val.Type())
	}
	if len(vec) == 0 {
		return 0, false, nil
	}
	if len(vec) > 1 {
		return 0, false, fmt.Errorf("query %s: %d series, want one", q, len(vec))
	}
	f := float64(vec[0].Value)
	if math.IsNaN(f) {
		return 0, false, nil
	}
	return f, true, nil
}
