package metricgate

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/promtest"
)

// revisions is the world of the analysis tests: one real Prometheus
// scraping promtest.App instances, each labelled as one revision of
// auth-server the way the monitoring stack's krgeobuk-apps job labels pods.
type revisions struct {
	prom string
	apps map[string]*promtest.App
}

// startRevisions starts an App per revision hash in the given mode,
// Prometheus scraping them every second, and, for the revisions in driven,
// steady traffic until the test ends.
func startRevisions(t testing.TB, modes map[string]promtest.Mode, driven ...string) *revisions {
	t.Helper()
	w := &revisions{apps: map[string]*promtest.App{}}
	var cfg strings.Builder
	cfg.WriteString("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: krgeobuk-apps\n    static_configs:\n")
	for rev, mode := range modes {
		app := promtest.StartApp(t)
		app.SetMode(mode)
		w.apps[rev] = app
		fmt.Fprintf(&cfg, "      - targets: [%q]\n        labels: {service: auth-server, pod_template_hash: %q}\n", app.Addr(), rev)
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o644))
	w.prom = promtest.StartPrometheus(t, dir).URL

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, rev := range driven {
		app := w.apps[rev]
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond) // pacing: at most ~80 requests/s
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					_ = app.Drive(ctx, 8)
				}
			}
		}()
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	w.waitScraped(t, len(modes))
	return w
}

// waitScraped waits until Prometheus has scraped every App three times, so
// a window starts with the revisions known, as after a readiness gate.
func (w *revisions) waitScraped(t testing.TB, n int) {
	t.Helper()
	g, err := New(w.prom, analysisThresholds)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q := `count(count_over_time(up{job="krgeobuk-apps"}[1m]) >= 3)`
	err = retry.Do(ctx, retry.NewConstant(200*time.Millisecond), func(ctx context.Context) error {
		got, _, err := g.scalar(ctx, q)
		if err != nil || int(got) < n {
			return retry.RetryableError(fmt.Errorf("%s = %v (want %d): %v", q, got, n, err))
		}
		return nil
	})
	require.NoError(t, err, "Prometheus never scraped every App")
}

var analysisThresholds = Thresholds{MaxErrorRatio: 0.05, MaxP95: time.Second, Window: time.Minute, MinRequests: 20}

// The window every analysis test watches: long enough for several looks at
// a 1s scrape interval, short enough for the suite.
var testWindow = Window{Duration: 8 * time.Second, Interval: time.Second, ErrorBudget: 3 * time.Second}

func TestAnalyseAgainstARealPrometheus(t *testing.T) {
	const (
		healthy = "5d8f7c9b4"
		failing = "6a7b8c9d1"
		slow    = "7c6d5e4f2"
		idle    = "8e9f0a1b3"
		canary  = "9a1b2c3d4"
	)
	w := startRevisions(t, map[string]promtest.Mode{
		healthy: promtest.Healthy, failing: promtest.Failing, slow: promtest.Slow, idle: promtest.Healthy, canary: promtest.Slow,
	}, healthy, failing, slow, canary)

	gate := func(t *testing.T, th Thresholds) *Gate {
		g, err := New(w.prom, th)
		require.NoError(t, err)
		return g
	}
	slowLimit := analysisThresholds
	slowLimit.MaxP95 = 100 * time.Millisecond
	tests := []struct {
		name     string
		th       Thresholds
		rev      string
		window   Window
		want     Status
		failedOn string // the metric that breached
		wantText string
		// full: the window runs to its end (no early decision).
		full bool
	}{
		{name: "healthy revision passes after the whole window", th: analysisThresholds, rev: healthy, window: testWindow, want: Pass, full: true,
			wantText: "auth-server@5d8f7c9b4: PASS after"},
		{name: "5xx revision fails at the first look that sees it", th: analysisThresholds, rev: failing, window: testWindow, want: Fail,
			failedOn: MetricErrorRatio, wantText: "5xx_ratio 1 above threshold 0.05"},
		{name: "slow revision fails on p95", th: slowLimit, rev: slow, window: testWindow, want: Fail,
			failedOn: MetricP95Latency, wantText: "p95_latency_seconds"},
		{name: "no traffic is no data, not a pass", th: analysisThresholds, rev: idle, window: testWindow, want: NoData, full: true,
			wantText: "no data: 0 requests, need 20"},
		{name: "canary slower than its baseline fails the comparison", th: analysisThresholds, rev: canary, want: Fail,
			window: func() Window {
				win := testWindow
				win.Baseline = &Baseline{Target: Target{Service: "auth-server", Revision: healthy}, MaxRatioIncrease: 0.01, MaxP95Factor: 2}
				return win
			}(), failedOn: MetricP95VsBaseline, wantText: "p95_vs_baseline"},
		{name: "revision like its baseline passes the comparison", th: analysisThresholds, rev: healthy, want: Pass, full: true,
			window: func() Window {
				win := testWindow
				// The baseline is the healthy revision itself: equal numbers pass.
				win.Baseline = &Baseline{Target: Target{Service: "auth-server", Revision: healthy}, MaxRatioIncrease: 0.01, MaxP95Factor: 1.5}
				return win
			}(), wantText: "5xx_ratio_vs_baseline 0 within threshold 0.01"},
		{name: "a 5xx canary fails against a healthy baseline even when the absolute limit allows it", rev: failing, want: Fail,
			th: Thresholds{MaxErrorRatio: 1, MaxP95: time.Second, Window: time.Minute, MinRequests: 20},
			window: func() Window {
				win := testWindow
				win.Baseline = &Baseline{Target: Target{Service: "auth-server", Revision: healthy}, MaxRatioIncrease: 0.01, MaxP95Factor: 2}
				return win
			}(), failedOn: MetricErrorRatioVsBaseline, wantText: "5xx_ratio_vs_baseline 1 above threshold 0.01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			a, err := gate(t, tt.th).Analyse(t.Context(), Target{Service: "auth-server", Revision: tt.rev}, tt.window)
			took := time.Since(start)
			for _, s := range a.Samples {
				t.Logf("look at %s: %v", s.Elapsed, s.Verdict)
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, a.Status, a.String())
			require.Contains(t, a.String(), tt.wantText)
			last, ok := a.Last()
			require.True(t, ok)
			for i, s := range a.Samples[:len(a.Samples)-1] {
				require.False(t, s.Verdict.Failed(), "look %d breached but the analysis went on", i)
			}
			if tt.full {
				require.GreaterOrEqual(t, took, tt.window.Duration-tt.window.Interval, "decided before the window ended")
				require.GreaterOrEqual(t, len(a.Samples), 6, "a look every interval")
			} else {
				require.Less(t, last.Elapsed, tt.window.Duration-tt.window.Interval, "a breach ends the window early")
			}
			if tt.failedOn != "" {
				var breached []string
				for _, r := range last.Verdict.Results {
					if r.Status == Fail {
						breached = append(breached, r.Metric)
					}
				}
				require.Contains(t, breached, tt.failedOn)
			}
			if tt.window.Baseline != nil {
				require.NotNil(t, last.Baseline, "the baseline's numbers are kept with the look")
				require.GreaterOrEqual(t, last.Baseline.Requests, 20.0)
			}
			if tt.want != NoData {
				require.GreaterOrEqual(t, last.Measured.Requests, 20.0)
			}
		})
	}
}

// A Prometheus that stops answering ends the analysis with an error within
// its error budget, never a pass; the looks already taken are kept.
func TestAnalyseEndsWithAnErrorWhenPrometheusGoesAway(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	g, err := New("http://"+addr, analysisThresholds)
	require.NoError(t, err)
	start := time.Now()
	win := Window{Duration: 5 * time.Second, Interval: 500 * time.Millisecond, ErrorBudget: 1500 * time.Millisecond}
	a, err := g.Analyse(t.Context(), Target{Service: "auth-server", Revision: "5d8f7c9b4"}, win)
	require.ErrorContains(t, err, "metric analysis auth-server@5d8f7c9b4: Prometheus gave no answer within 1.5s")
	require.ErrorContains(t, err, "connection refused")
	require.NotEqual(t, Pass, a.Status)
	require.Less(t, time.Since(start), win.Duration, "the error budget, not the window, bounds a dead Prometheus")
	require.ErrorContains(t, g.Ping(t.Context(), time.Second), "prometheus did not answer within 1s")
}

func TestWindowRefusesWhatCannotJudge(t *testing.T) {
	base := &Baseline{Target: Target{Service: "auth-server", Revision: "5d8f7c9b4"}, MaxRatioIncrease: 0.01, MaxP95Factor: 2}
	tests := []struct {
		name    string
		w       Window
		wantErr string
	}{
		{"interval as long as the window", Window{Duration: time.Second, Interval: time.Second}, "duration 1s must be longer than the interval 1s"},
		{"no interval", Window{Duration: time.Minute}, "interval 0s must be at least 100ms"},
		{"baseline factor below 1", Window{Duration: time.Minute, Interval: time.Second, Baseline: &Baseline{Target: base.Target, MaxP95Factor: 0.5}},
			"max p95 factor 0.5 must be at least 1"},
		{"baseline tolerance of 1", Window{Duration: time.Minute, Interval: time.Second, Baseline: &Baseline{Target: base.Target, MaxRatioIncrease: 1, MaxP95Factor: 2}},
			"max ratio increase 1 must be in [0, 1)"},
		{"baseline without a revision", Window{Duration: time.Minute, Interval: time.Second, Baseline: &Baseline{Target: Target{Service: "auth-server"}, MaxP95Factor: 2}},
			"analysis baseline: metric gate auth-server: revision"},
	}
	g, err := New("http://127.0.0.1:9", analysisThresholds)
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.Analyse(t.Context(), Target{Service: "auth-server", Revision: "6a7b8c9d1"}, tt.w)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// BenchmarkBreachToDecision measures, side by side for several analysis
// intervals, the time from the first 5xx answer of a revision that was
// healthy until Analyse decides Fail (Prometheus scraping every second):
//
//	go test -run '^$' -bench BreachToDecision -benchtime 3x ./pipelines/metricgate/
func BenchmarkBreachToDecision(b *testing.B) {
	for _, interval := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second} {
		b.Run("interval="+interval.String(), func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				const rev = "5d8f7c9b4"
				w := startRevisions(b, map[string]promtest.Mode{rev: promtest.Healthy}, rev)
				g, err := New(w.prom, analysisThresholds)
				require.NoError(b, err)
				// The fault starts part-way through the window, at a phase
				// unrelated to the looks, as a real one would.
				var mu sync.Mutex
				var broke time.Time
				timer := time.AfterFunc(2*interval+interval/3, func() {
					mu.Lock()
					broke = time.Now()
					mu.Unlock()
					w.apps[rev].SetMode(promtest.Failing)
				})
				a, err := g.Analyse(b.Context(), Target{Service: "auth-server", Revision: rev}, Window{Duration: 10 * interval, Interval: interval, ErrorBudget: 3 * time.Second})
				decided := time.Now()
				timer.Stop()
				require.NoError(b, err)
				require.Equal(b, Fail, a.Status, a.String())
				mu.Lock()
				total += decided.Sub(broke)
				mu.Unlock()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s-to-decision")
			b.ReportMetric(interval.Seconds(), "s-interval")
		})
	}
}
