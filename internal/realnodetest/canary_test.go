package realnodetest_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/exampleimages"
	"github.com/krgeobuk/krgeobuk-infra/internal/realnodetest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// The monitoring stack's own Prometheus (the chart's kubernetes discovery and relabeling, its
// image built here) scrapes the API's stable and canary pods on the real node through the
// apps chart's NetworkPolicies, and tells them apart: every http_requests_total series of
// auth-server carries service, the pod_template_hash of its ReplicaSet and the track the chart
// rendered. The canary runs with the fault switch at errorRatio 0.5; bounded load through the
// Service then shows in Prometheus exactly as the load generator saw it: the 500s all on the
// canary, its 5xx ratio the configured one, the stable pods clean.
func TestPrometheusScrapesStableAndCanaryThroughThePolicies(t *testing.T) {
	w := newWorld(t, "development")
	ctx := context.Background()
	monNS := w.ns + "-mon"
	repo, digest, ok := strings.Cut(w.images["auth-server"], "@")
	require.True(t, ok, w.images["auth-server"])
	const errorRatio = 0.5
	values := w.with(map[string]any{
		"global": map[string]any{"prometheus": map[string]any{"namespace": monNS}},
		"services": map[string]any{"auth-server": map[string]any{"canary": map[string]any{
			"enabled": true, "replicas": 1,
			"image":  map[string]any{"repository": repo, "digest": digest},
			"faults": map[string]any{"errorRatio": errorRatio},
		}}},
	})
	deploytest.RequireVerdict(t, report.Verified, w.deployer().Deploy(ctx, deploy.Request{Images: w.images, Values: values}))

	img, err := exampleimages.Prometheus(ctx, binaries.DefaultCacheDir(), t.Logf)
	require.NoError(t, err)
	prom := realnodetest.StartPrometheus(t, w.c, w.admin, realnodetest.PrometheusOptions{
		Env: w.env, Namespace: monNS, Kubeconfig: w.kc, Image: img, ScrapeInterval: "5s", ScrapeTimeout: "4s"})

	// Each track's ReplicaSet, by the hash Kubernetes gave its pod template.
	rss, err := w.admin.AppsV1().ReplicaSets(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=auth-server"})
	require.NoError(t, err)
	trackOf := map[string]string{}
	for _, rs := range rss.Items {
		if rs.Spec.Replicas != nil && *rs.Spec.Replicas > 0 {
			trackOf[rs.Labels["pod-template-hash"]] = rs.Spec.Template.Labels[catalog.TrackLabel]
		}
	}
	require.ElementsMatch(t, []string{catalog.TrackStable, catalog.TrackCanary}, values2(trackOf), "one ReplicaSet per track: %v", trackOf)

	svc, err := w.admin.CoreV1().Services(w.ns).Get(ctx, "auth-server", metav1.GetOptions{})
	require.NoError(t, err)
	const n = 60
	loadCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	seen, err := realnodetest.Load(loadCtx, w.c, "http://"+svc.Spec.ClusterIP+"/api/ping", n)
	require.NoError(t, err)
	require.Equal(t, n, seen[200]+seen[500], "only the fault switch fails requests: %v", seen)
	require.NotZero(t, seen[500], "the Service sent the canary its share: %v", seen)

	q := `sum by (service, pod_template_hash, track, status_code) (http_requests_total{job="krgeobuk-apps",route="/api/ping"})`
	vec, err := prom.Eventually(ctx, q, 2*time.Minute, func(v model.Vector) error {
		var total float64
		for _, s := range v {
			total += float64(s.Value)
		}
		if total != n {
			return fmt.Errorf("%v of %d requests scraped", total, n)
		}
		return nil
	})
	require.NoError(t, err)
	byTrack := map[string]map[string]float64{}
	for _, s := range vec {
		require.Equal(t, "auth-server", string(s.Metric["service"]), "%v", s.Metric)
		hash := string(s.Metric["pod_template_hash"])
		track := string(s.Metric[catalog.PromTrackLabel])
		require.Equal(t, trackOf[hash], track, "series %v: the track of its ReplicaSet %s", s.Metric, hash)
		if byTrack[track] == nil {
			byTrack[track] = map[string]float64{}
		}
		byTrack[track][string(s.Metric["status_code"])] += float64(s.Value)
	}
	t.Logf("load generator saw %v; Prometheus counts by track and status %v", seen, byTrack)
	require.Zero(t, byTrack[catalog.TrackStable]["500"], "the stable pods run without faults: %v", byTrack)
	require.NotZero(t, byTrack[catalog.TrackStable]["200"], "the stable pods served their share: %v", byTrack)
	can := byTrack[catalog.TrackCanary]
	require.Equal(t, float64(seen[500]), can["500"], "Prometheus counts the 500s the load generator saw, all on the canary")
	canaryTotal := can["200"] + can["500"]
	require.Equal(t, math.Floor(canaryTotal*errorRatio), can["500"], "the switch fails exactly its share of the canary's requests")

	// The ratio a canary analysis would read, from Prometheus.
	ratio, err := prom.Query(ctx, `sum by (track) (http_requests_total{job="krgeobuk-apps",service="auth-server",route="/api/ping",status_code=~"5.."})
		/ sum by (track) (http_requests_total{job="krgeobuk-apps",service="auth-server",route="/api/ping"})`)
	require.NoError(t, err)
	require.Len(t, ratio, 1, "only the canary has 5xx: %v", ratio)
	require.Equal(t, catalog.TrackCanary, string(ratio[0].Metric[catalog.PromTrackLabel]))
	t.Logf("the canary's 5xx ratio in Prometheus: %v", ratio[0].Value)
	require.InDelta(t, errorRatio, float64(ratio[0].Value), 1/canaryTotal, "the canary's 5xx ratio is the configured one")
}

func values2(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
