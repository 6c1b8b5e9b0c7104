package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/promtest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// podStandIns plays the metrics side of the scraped APIs' pods, which kwok
// only pretends to run: for every ReplicaSet of auth-server or authz-server
// the cluster creates, a promtest.App in the mode the test set (STAND-IN for
// the pods' own /metrics; the real-pod proof is internal/realnodetest's),
// listed for a real Prometheus through file_sd with the labels the
// monitoring stack's krgeobuk-apps job gives a pod: service and
// pod_template_hash of the NEW ReplicaSet.
type podStandIns struct {
	t    *testing.T
	file string
	mu   sync.Mutex
	mode string // "healthy", "failing", "slow" or "idle" (no traffic)
	// canaryMode, when set, is the mode of canary ReplicaSets (pods
	// labelled with the chart's canary track); the stable ones keep mode.
	canaryMode string
	seen       []map[string]any
	apps       map[string]*promtest.App // by service@hash
	// driving stops the traffic at the end of the test.
	driving context.Context
	wg      sync.WaitGroup
}

func (p *podStandIns) setMode(m string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}

// startPrometheus runs a real Prometheus scraping the stand-ins, and the
// stand-ins as the cluster's ReplicaSets appear in f's namespace.
func startPrometheus(t *testing.T, f *fixture) (*podStandIns, string) {
	t.Helper()
	dir := t.TempDir()
	p := &podStandIns{t: t, file: filepath.Join(dir, "targets.json"), mode: "healthy", apps: map[string]*promtest.App{}}
	require.NoError(t, os.WriteFile(p.file, []byte("[]"), 0o644))
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: krgeobuk-apps
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
`, p.file)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644))
	prom := promtest.StartPrometheus(t, dir)

	ctx, cancel := context.WithCancel(context.Background())
	p.driving = ctx
	w, err := f.cs.AppsV1().ReplicaSets(f.env.Namespace).Watch(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for ev := range w.ResultChan() {
			if rs, ok := ev.Object.(*appsv1.ReplicaSet); ok && ev.Type == watch.Added {
				p.add(rs)
			}
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); p.wg.Wait() })
	return p, prom.URL
}

func (p *podStandIns) add(rs *appsv1.ReplicaSet) {
	svc, hash := rs.Labels["app.kubernetes.io/name"], rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	if (svc != "auth-server" && svc != "authz-server") || hash == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	app := promtest.StartApp(p.t)
	p.apps[svc+"@"+hash] = app
	mode := p.mode
	if rs.Labels[catalog.TrackLabel] == catalog.TrackCanary && p.canaryMode != "" {
		mode = p.canaryMode
	}
	switch mode {
	case "failing":
		app.SetMode(promtest.Failing)
	case "slow":
		app.SetMode(promtest.Slow)
	case "idle":
	default:
		app.SetMode(promtest.Healthy)
	}
	if mode != "idle" {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			tick := time.NewTicker(100 * time.Millisecond) // pacing: at most ~80 requests/s
			defer tick.Stop()
			for {
				select {
				case <-p.driving.Done():
					return
				case <-tick.C:
					_ = app.Drive(p.driving, 8)
				}
			}
		}()
	}
	p.seen = append(p.seen, map[string]any{"targets": []string{app.Addr()},
		"labels": map[string]string{"service": svc, "pod_template_hash": hash, "namespace": rs.Namespace}})
	b, err := json.Marshal(p.seen)
	if err == nil {
		tmp := p.file + ".tmp"
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, p.file) // Prometheus never reads half a file
		}
	}
	if err != nil {
		p.t.Errorf("file_sd: %v", err)
	}
}

// analysed is the fixture with the analysis gate on: a short window, a look
// every second, 20 requests at least. The window is 10s because Prometheus
// hands new targets to its scrapers at most every 5s (its discovery
// manager's fixed throttle): a stand-in listed when its ReplicaSet appears
// may be scraped first that late on a busy machine.
func analysed(t *testing.T) (*fixture, *podStandIns, string) {
	f := newFixture(t)
	f.env.Analysis = &environment.Analysis{Duration: 10 * time.Second, Interval: time.Second, MinRequests: 20, MaxErrorRatio: 0.05, MaxP95: time.Second}
	p, promURL := startPrometheus(t, f)
	return f, p, promURL
}

func (f *fixture) deployerWith(cfg deploy.Config) *deploy.Deployer {
	f.t.Helper()
	cfg.Kubeconfig, cfg.Env, cfg.Endpoints, cfg.Log, cfg.Registry = f.kc, f.env, f.apps, f.log, &registry.Resolver{}
	d, err := deploy.New(cfg)
	require.NoError(f.t, err)
	return d
}

func analysisOf(t *testing.T, res *report.Result, service string) report.Analysis {
	t.Helper()
	for _, a := range res.Analysis {
		if a.Service == service {
			return a
		}
	}
	t.Fatalf("no analysis of %s in %+v", service, res.Analysis)
	return report.Analysis{}
}

// A healthy revision is watched and verified; a later deploy of one
// service analyses that service only.
func TestAnalysisPassesAHealthyRevision(t *testing.T) {
	t.Parallel()
	f, _, promURL := analysed(t)
	d := f.deployerWith(deploy.Config{PrometheusURL: promURL, Actor: "ci"})
	ctx := context.Background()
	images := f.publish("1.0.0")
	res := d.Deploy(ctx, deploy.Request{Images: images})
	deploytest.RequireVerdict(t, report.Verified, res)
	for _, svc := range []string{"auth-server", "authz-server"} {
		a := analysisOf(t, res, svc)
		require.Equal(t, "pass", a.Verdict, "%+v", a)
		require.GreaterOrEqual(t, a.Requests, 20.0)
		require.NotNil(t, a.ErrorRatio)
		require.Zero(t, *a.ErrorRatio)
		require.GreaterOrEqual(t, len(a.Samples), 9, "a look every second for the whole window")
		require.NotEmpty(t, a.Revision)
	}
	require.Len(t, res.Analysis, 2, "the SPAs are not scraped, so not analysed")

	next := f.publish("1.0.1")
	res = d.Deploy(ctx, deploy.Request{Images: map[string]string{"auth-server": next["auth-server"]}, Services: []string{"auth-server"}})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, "pass", analysisOf(t, res, "auth-server").Verdict)
	un := analysisOf(t, res, "authz-server")
	require.Equal(t, "skipped", un.Verdict)
	require.Contains(t, un.Detail, "pod template unchanged since revision 1")
}

// A revision answering 5xx fails the analysis at once and is rolled back;
// the report shows the numbers against the thresholds. A revision nobody
// calls is rolled back too, as "no data".
func TestAnalysisRollsBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    string
		class   gate.Class
		verdict string
		message string
		early   bool
	}{
		{mode: "failing", class: gate.MetricBreach, verdict: "fail", message: "5xx_ratio 1 above threshold 0.05", early: true},
		{mode: "idle", class: gate.NoMetricData, verdict: "no-data", message: "no data: 0 requests, need 20"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			f, p, promURL := analysed(t)
			// Credentials in the URL (Prometheus ignores them) must not reach the report.
			u, err := url.Parse(promURL)
			require.NoError(t, err)
			u.User = url.UserPassword("deployer", "s3cr3t-prom-pass")
			d := f.deployerWith(deploy.Config{PrometheusURL: u.String(), Actor: "ci"})
			ctx := context.Background()
			deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0")}))

			p.setMode(tt.mode)
			res := d.Deploy(ctx, deploy.Request{Images: f.publish("2.0.0")})
			deploytest.RequireVerdict(t, report.RolledBack, res)
			require.Equal(t, 1, res.RolledBackTo)
			require.NotEmpty(t, res.Problems)
			pr := res.Problems[0]
			require.Equal(t, tt.class, pr.Class, "problem: %s", pr)
			require.Contains(t, pr.Message, tt.message)
			require.NotEmpty(t, pr.Suggestion)
			require.Contains(t, res.Summary, "failed its analysis gate")
			a := analysisOf(t, res, pr.Service)
			require.Equal(t, tt.verdict, a.Verdict)
			require.Equal(t, 0.05, a.MaxRatio)
			if tt.early {
				require.Less(t, time.Duration(a.Elapsed), 9*time.Second, "a breach ends the 10s window early")
				require.NotNil(t, a.ErrorRatio)
				require.Equal(t, 1.0, *a.ErrorRatio)
			}

			var table, md, js bytes.Buffer
			require.NoError(t, report.Table(&table, res, d.Redactor()))
			require.NoError(t, report.Markdown(&md, res, d.Redactor()))
			require.NoError(t, report.JSON(&js, res, d.Redactor()))
			require.Contains(t, table.String(), "ANALYSIS")
			require.Contains(t, md.String(), "#### Metric analysis")
			if tt.early {
				require.Contains(t, table.String(), "1 > 0.05")
			} else {
				require.Contains(t, table.String(), "(min 20)")
			}
			for _, out := range []string{table.String(), md.String(), js.String(), f.log.String()} {
				require.NotContains(t, out, "s3cr3t-prom-pass")
			}
		})
	}
}

// With analysis on, a deploy that can reach no Prometheus is refused
// before anything changes.
func TestAnalysisWithoutPrometheusIsRefusedAtPreflight(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.env.Analysis = &environment.Analysis{Duration: 6 * time.Second, Interval: time.Second, MinRequests: 20, MaxErrorRatio: 0.05, MaxP95: time.Second}
	f.env.Monitoring = nil
	d := f.deployerWith(deploy.Config{Actor: "ci"})
	res := d.Deploy(context.Background(), deploy.Request{Images: f.publish("1.0.0")})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "no Prometheus can be reached")
	require.Contains(t, res.Error, "--prometheus-url")
	require.Empty(t, f.history(d), "nothing was released")
}
