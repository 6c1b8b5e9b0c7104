package realnodetest_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/exampleimages"
	"github.com/krgeobuk/krgeobuk-infra/internal/realnodetest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// traffic is a load generator sending bounded requests to a Service from
// inside the node's network until stopped, counting each answer.
type traffic struct {
	mu     sync.Mutex
	seen   map[int]int
	errs   int
	last   error
	cancel context.CancelFunc
	done   chan struct{}
}

func startTraffic(w *world, url string) *traffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{seen: map[int]int{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(50 * time.Millisecond) // at most 20 requests a second
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			got, err := realnodetest.Load(ctx, w.c, url, 1)
			tr.mu.Lock()
			for code, n := range got {
				tr.seen[code] += n
			}
			if err != nil && ctx.Err() == nil {
				tr.errs++
				tr.last = err
			}
			tr.mu.Unlock()
		}
	}()
	w.t.Cleanup(tr.stop)
	return tr
}

func (tr *traffic) stop() {
	tr.cancel()
	<-tr.done
}

// counts returns what was answered since the last call, how many requests
// got no answer, and the last such error.
func (tr *traffic) counts() (map[int]int, int, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	seen, errs, last := tr.seen, tr.errs, tr.last
	tr.seen, tr.errs, tr.last = map[int]int{}, 0, nil
	return seen, errs, last
}

// canaryWorld is the development environment on the real node with the
// monitoring stack's own Prometheus watching it, a first release verified,
// bounded traffic flowing through the auth-server Service, and a deployer
// whose environment analyses every deploy (short windows: a test's, not a
// platform's; staging watches 2 minutes) and runs a one-pod canary step.
type canaryWorld struct {
	w       *world
	d       *deploy.Deployer
	load    *traffic
	svc     *corev1.Service
	scraped map[string]any
	first   *report.Result
}

func newCanaryWorld(tb testing.TB) *canaryWorld {
	tb.Helper()
	w := newWorld(tb, "development")
	ctx := context.Background()
	monNS := w.ns + "-mon"
	img, err := exampleimages.Prometheus(ctx, binaries.DefaultCacheDir(), tb.Logf)
	require.NoError(tb, err)
	prom := realnodetest.StartPrometheus(tb, w.c, w.admin, realnodetest.PrometheusOptions{
		Env: w.env, Namespace: monNS, Kubeconfig: w.kc, Image: img, ScrapeInterval: "2s", ScrapeTimeout: "2s"})
	scraped := map[string]any{"global": map[string]any{"prometheus": map[string]any{"namespace": monNS}}}
	// The first release is what the canaries run beside (a first install has
	// no stable pods, and no traffic before its Service exists).
	first := w.deployer().Deploy(ctx, deploy.Request{Images: w.images, Values: w.with(scraped)})
	deploytest.RequireVerdict(tb, report.Verified, first)
	svc, err := w.admin.CoreV1().Services(w.ns).Get(ctx, "auth-server", metav1.GetOptions{})
	require.NoError(tb, err)
	load := startTraffic(w, "http://"+svc.Spec.ClusterIP+"/api/ping")

	w.env.Monitoring = &environment.Placement{Namespace: prom.Namespace, Release: prom.Release}
	w.env.Analysis = &environment.Analysis{Duration: 20 * time.Second, Interval: 2 * time.Second, MinRequests: 10,
		MaxErrorRatio: 0.05, MaxP95: time.Second,
		Canary: &environment.Canary{Steps: []environment.CanaryStep{{Pods: 1}}, MaxRatioIncrease: 0.02, MaxP95Factor: 3}}
	return &canaryWorld{w: w, d: w.deployer(), load: load, svc: svc, scraped: scraped, first: first}
}

// The canary steps on real pods, judged by the monitoring stack's own
// Prometheus (the chart's discovery and relabeling, scraping through the
// chart's NetworkPolicies), reached the default way: a port-forward to its
// pod as the deployer. Bounded traffic flows through the auth-server Service
// all along. A new image made to fail half its requests, one made slow and
// one that gets no traffic are each stopped at the canary step and rolled
// back, the stable pod untouched; a healthy one is promoted and verified.
// The bad images are the example API with the chart's fault switch on its
// canary (a value, not a code change), so the stable pods stay healthy.
func TestCanaryStepsOnRealPods(t *testing.T) {
	cw := newCanaryWorld(t)
	w, d, load, svc, scraped := cw.w, cw.d, cw.load, cw.svc, cw.scraped
	ctx := context.Background()
	stableHash := w.stableHash(ctx, t)
	// Each rollback restores the newest verified revision as a new revision,
	// itself verified: the next bad deploy returns to that one.
	verified := cw.first.Revision

	tests := []struct {
		name    string
		faults  map[string]any
		idle    bool
		class   gate.Class
		message string
	}{
		{name: "half its requests fail", faults: map[string]any{"errorRatio": 0.5}, class: gate.MetricBreach, message: "5xx_ratio"},
		{name: "slow", faults: map[string]any{"delayMillis": 1500}, class: gate.MetricBreach, message: "p95"},
		{name: "no traffic", idle: true, class: gate.NoMetricData, message: "no data"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.idle {
				load.stop()
				defer func() { load = startTraffic(w, "http://"+svc.Spec.ClusterIP+"/api/ping") }()
			}
			bad := w.pushVariant(ctx, "auth-server", "canary-bad-"+string(rune('a'+i)), func(c *v1.Config) {
				c.Labels = map[string]string{"krgeobuk.test/variant": tt.name}
			})
			values := w.with(scraped)
			if tt.faults != nil {
				values = w.with(scraped, map[string]any{"services": map[string]any{"auth-server": map[string]any{"canary": map[string]any{"faults": tt.faults}}}})
			}
			load.counts()
			res := d.Deploy(ctx, deploy.Request{Images: with(w.images, "auth-server", bad), Values: values})
			seen, _, _ := load.counts()
			deploytest.RequireVerdict(t, report.RolledBack, res)
			require.Equal(t, verified, res.RolledBackTo)
			verified = res.RollbackRevision
			require.NotEmpty(t, res.Problems)
			p := res.Problems[0]
			require.Equal(t, "auth-server", p.Service, "%+v", p)
			require.Equal(t, "Deployment/"+catalog.CanaryDeployment("auth-server"), p.Workload, "the canary is named: %+v", p)
			require.Equal(t, tt.class, p.Class, "%+v", p)
			require.Contains(t, p.Message, tt.message)
			for _, a := range res.Analysis {
				require.True(t, strings.HasPrefix(a.Step, "canary 1/1"), "stopped at the canary step: %+v", a)
				if !tt.idle {
					require.NotNil(t, a.Stable, "compared with the stable pod's numbers: %+v", a)
				}
			}
			require.Equal(t, stableHash, w.stableHash(ctx, t), "the stable pod was never replaced")
			_, err := w.admin.AppsV1().Deployments(w.ns).Get(ctx, catalog.CanaryDeployment("auth-server"), metav1.GetOptions{})
			require.True(t, apierrors.IsNotFound(err), "the rollback removed the canary: %v", err)
			w.requireRuns(ctx, "auth-server", w.images["auth-server"])
			t.Logf("requests answered during the deploy: %v", seen)
		})
	}

	t.Run("a healthy image is promoted", func(t *testing.T) {
		good := w.pushVariant(ctx, "auth-server", "canary-good", func(c *v1.Config) {
			c.Labels = map[string]string{"krgeobuk.test/variant": "healthy"}
		})
		load.counts()
		res := d.Deploy(ctx, deploy.Request{Images: with(w.images, "auth-server", good), Values: w.with(scraped)})
		seen, errs, last := load.counts()
		deploytest.RequireVerdict(t, report.Verified, res)
		var steps []string
		for _, a := range res.Analysis {
			if a.Service != "auth-server" {
				require.Equal(t, "skipped", a.Verdict, "only auth-server changed: %+v", a)
				continue
			}
			require.Equal(t, "pass", a.Verdict, "%+v", a)
			steps = append(steps, a.Step)
		}
		require.Equal(t, []string{"canary 1/1 (1): auth-server 1 beside 1", ""}, steps, "the canary step, then the full rollout")
		w.requireRuns(ctx, "auth-server", good)
		require.Zero(t, seen[500], "no request failed while a healthy image replaced the stable one: %v", seen)
		require.Zero(t, errs, "no request went unanswered either (the pods drain before they stop: global.drainSeconds); last: %v", last)
	})
}

// stableHash is the pod-template-hash of auth-server's stable ReplicaSet
// that runs pods.
func (w *world) stableHash(ctx context.Context, t *testing.T) string {
	t.Helper()
	rss, err := w.admin.AppsV1().ReplicaSets(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=auth-server," + catalog.TrackLabel + "=" + catalog.TrackStable})
	require.NoError(t, err)
	var hashes []string
	for _, rs := range rss.Items {
		if rs.Spec.Replicas != nil && *rs.Spec.Replicas > 0 {
			hashes = append(hashes, rs.Labels["pod-template-hash"])
		}
	}
	require.Len(t, hashes, 1, "one stable ReplicaSet runs pods")
	return hashes[0]
}
