package metricgate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sethvargo/go-retry"
)

// Metric names of the baseline comparisons.
const (
	MetricErrorRatioVsBaseline = "5xx_ratio_vs_baseline"
	MetricP95VsBaseline        = "p95_vs_baseline"
)

// Window is how an analysis watches a revision.
type Window struct {
	// Duration is how long the revision is watched; it is also the range
	// every rate is taken over, so the last look covers the whole window.
	Duration time.Duration
	// Interval is the pause between looks; a breach ends the window at the
	// first look that sees it.
	Interval time.Duration
	// ErrorBudget bounds how long one look retries while Prometheus errs
	// before the analysis ends with an error. Zero means Interval.
	ErrorBudget time.Duration
	// Baseline, when set, also compares each look with another revision's
	// numbers (the stable one, beside a canary).
	Baseline *Baseline
}

// Baseline compares a revision with another one serving the same traffic.
type Baseline struct {
	Target Target
	// MaxRatioIncrease is how far the revision's 5xx ratio may exceed the
	// baseline's (absolute, in [0, 1)).
	MaxRatioIncrease float64
	// MaxP95Factor is how many times the baseline's p95 the revision's may
	// be (at least 1).
	MaxP95Factor float64
}

// Validate refuses a window that cannot judge anything.
func (w Window) Validate() error {
	switch {
	case w.Interval < 100*time.Millisecond:
		return fmt.Errorf("analysis: interval %v must be at least 100ms", w.Interval)
	case w.Duration <= w.Interval:
		return fmt.Errorf("analysis: duration %v must be longer than the interval %v", w.Duration, w.Interval)
	case w.ErrorBudget < 0:
		return fmt.Errorf("analysis: error budget %v must not be negative", w.ErrorBudget)
	}
	if b := w.Baseline; b != nil {
		if err := b.Target.Validate(); err != nil {
			return fmt.Errorf("analysis baseline: %w", err)
		}
		if !(b.MaxRatioIncrease >= 0 && b.MaxRatioIncrease < 1) {
			return fmt.Errorf("analysis baseline: max ratio increase %v must be in [0, 1)", b.MaxRatioIncrease)
		}
		if !(b.MaxP95Factor >= 1) {
			return fmt.Errorf("analysis baseline: max p95 factor %v must be at least 1", b.MaxP95Factor)
		}
	}
	return nil
}

// Sample is one look at the revision.
type Sample struct {
	// Elapsed is the time since the analysis began.
	Elapsed  time.Duration `json:"elapsed"`
	Measured Measurement   `json:"measured"`
	// Baseline is the baseline's numbers at the same look, when compared.
	Baseline *Measurement `json:"baseline,omitempty"`
	Verdict  Verdict      `json:"-"`
}

// Analysis is a window's outcome: Pass, Fail (a breach, the window ended at
// that look) or NoData (too few requests, or nothing to compare with).
type Analysis struct {
	Target      Target
	Status      Status
	MinRequests float64
	Samples     []Sample
}

// Last is the look the status was decided on.
func (a Analysis) Last() (Sample, bool) {
	if len(a.Samples) == 0 {
		return Sample{}, false
	}
	return a.Samples[len(a.Samples)-1], true
}

// String names the target, the status, the looks taken and the deciding
// look's numbers against their thresholds, e.g.
// "auth-server@5d8f7c: FAIL after 2 looks (3s): 5xx_ratio 1 above threshold 0.05; ...".
func (a Analysis) String() string {
	last, ok := a.Last()
	if !ok {
		return fmt.Sprintf("%s: no look taken", a.Target)
	}
	head := fmt.Sprintf("%s: %s after %d looks (%s)", a.Target, strings.ToUpper(string(a.Status)), len(a.Samples), last.Elapsed.Round(time.Second))
	if a.Status == NoData && last.Measured.Requests < a.MinRequests {
		return fmt.Sprintf("%s: no data: %.0f requests, need %.0f", head, last.Measured.Requests, a.MinRequests)
	}
	parts := make([]string, len(last.Verdict.Results))
	for i, r := range last.Verdict.Results {
		parts[i] = r.String()
	}
	return fmt.Sprintf("%s (%.0f requests): %s", head, last.Measured.Requests, strings.Join(parts, "; "))
}

// Analyse watches target for w.Duration, asking Prometheus every
// w.Interval. The first look that breaches a threshold ends it as Fail;
// otherwise the last look decides: Pass, or NoData when the revision served
// fewer than MinRequests requests in the window (or the baseline had
// nothing to compare with). Every look is kept. A look Prometheus cannot
// answer within w.ErrorBudget ends the analysis with an error, never a
// pass. It returns within Duration plus the error budget, or when ctx ends.
func (g *Gate) Analyse(ctx context.Context, target Target, w Window) (Analysis, error) {
	a := Analysis{Target: target, MinRequests: g.thresholds.minRequests()}
	if err := target.Validate(); err != nil {
		return a, err
	}
	if err := w.Validate(); err != nil {
		return a, err
	}
	if w.ErrorBudget == 0 {
		w.ErrorBudget = w.Interval
	}
	ctx, cancel := context.WithTimeout(ctx, w.Duration+w.ErrorBudget)
	defer cancel()
	start := time.Now()
	tick := time.NewTicker(w.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return a, fmt.Errorf("metric analysis %s: %w", target, context.Cause(ctx))
		case <-tick.C:
		}
		s, err := g.look(ctx, target, w)
		if err != nil {
			return a, fmt.Errorf("metric analysis %s: Prometheus gave no answer within %s: %w", target, w.ErrorBudget, err)
		}
		s.Elapsed = time.Since(start)
		a.Samples = append(a.Samples, s)
		if s.Verdict.Failed() {
			a.Status = Fail
			return a, nil
		}
		if s.Elapsed >= w.Duration-w.Interval/2 {
			a.Status = NoData
			if s.Verdict.Passed() {
				a.Status = Pass
			}
			return a, nil
		}
	}
}

// look takes one sample, retrying while Prometheus errs within the error
// budget.
func (g *Gate) look(ctx context.Context, target Target, w Window) (Sample, error) {
	var s Sample
	pause := min(w.Interval, time.Second)
	err := retry.Do(ctx, retry.WithMaxDuration(w.ErrorBudget, retry.NewConstant(pause)), func(ctx context.Context) error {
		m, err := g.measure(ctx, target, w.Duration)
		if err != nil {
			return retry.RetryableError(err)
		}
		s = Sample{Measured: m, Verdict: judge(target, m, g.thresholds)}
		if w.Baseline == nil {
			return nil
		}
		base, err := g.measure(ctx, w.Baseline.Target, w.Duration)
		if err != nil {
			return retry.RetryableError(fmt.Errorf("baseline %s: %w", w.Baseline.Target, err))
		}
		s.Baseline = &base
		s.Verdict.Results = append(s.Verdict.Results, compare(m, base, *w.Baseline, g.thresholds.minRequests())...)
		return nil
	})
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("retries exhausted: %w", err)
	}
	return s, err
}

// compare judges the revision against the baseline: its 5xx ratio may not
// exceed the baseline's plus the tolerance, nor its p95 the baseline's
// times the factor. Either side without enough data is NoData.
func compare(m, base Measurement, b Baseline, minRequests float64) []Result {
	enough := m.Requests >= minRequests && base.Requests >= minRequests
	out := []Result{
		{Metric: MetricErrorRatioVsBaseline, Observed: m.ErrorRatio, Threshold: base.ErrorRatio + b.MaxRatioIncrease, Status: Pass,
			Query: m.RatioQuery + " vs " + base.RatioQuery},
		{Metric: MetricP95VsBaseline, Observed: m.P95, Threshold: base.P95 * b.MaxP95Factor, Status: Pass,
			Query: m.P95Query + " vs " + base.P95Query},
	}
	has := []bool{m.HasRatio && base.HasRatio, m.HasP95 && base.HasP95}
	for i := range out {
		switch {
		case !enough || !has[i]:
			out[i].Status = NoData
		case out[i].Observed > out[i].Threshold:
			out[i].Status = Fail
		}
	}
	return out
}

// Ping asks Prometheus a constant query, retrying within budget: whether
// it can be asked at all, before a deploy changes anything.
func (g *Gate) Ping(ctx context.Context, budget time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	var last error
	err := retry.Do(ctx, retry.WithMaxDuration(budget, retry.NewConstant(time.Second)), func(ctx context.Context) error {
		if _, _, err := g.scalar(ctx, "vector(1)"); err != nil {
			last = err
			return retry.RetryableError(err)
		}
		return nil
	})
	if err != nil {
		if last == nil {
			last = err
		}
		return fmt.Errorf("prometheus did not answer within %s: %w", budget, last)
	}
	return nil
}
