package charts_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"testing"

	promconfig "github.com/prometheus/prometheus/config"
	promlabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/util/strutil"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/internal/chartstest"
	"github.com/krgeobuk/krgeobuk-infra/internal/stackcheck"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/policy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// canaryDigest is the digest a canary deploy would pin: not the stable one.
var canaryDigest = chartstest.Digest("auth-server canary")

// canary turns on auth-server's canary, pinned by digest, with n pods.
func canary(n int) map[string]any {
	return chartstest.Set("services.auth-server.canary", map[string]any{
		"enabled": true, "replicas": n, "image": map[string]any{"digest": canaryDigest}})
}

func selects(t *testing.T, sel *metav1.LabelSelector, pod map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	require.NoError(t, err)
	return s.Matches(labels.Set(pod))
}

// The canary renders as a second Deployment beside the stable one: its own image, pods and
// track label; each Deployment's selector takes only its own pods while the Service, the
// NetworkPolicies and Prometheus's admission treat both tracks alike; the PDB and HPA of the
// service count stable pods only.
func TestAppsCanaryRendering(t *testing.T) {
	for _, env := range []string{"development", "staging", "production"} {
		t.Run(env, func(t *testing.T) {
			e := chartstest.Env(t, env)
			vals := values.Merge(chartstest.DeployValues(e), canary(2))
			require.NoError(t, render.Lint(charts.AppsDir, e.Namespace, vals), "helm lint --strict with a canary")
			res, err := chartstest.Render(t, e, vals)
			require.NoError(t, err)
			require.NoError(t, policy.Error(policy.Check(policy.Context{Environment: env, RequireDigest: env != "development"}, res.Objects)))

			stable := find[*appsv1.Deployment](res, "auth-server")
			can := find[*appsv1.Deployment](res, catalog.CanaryDeployment("auth-server"))
			require.NotNil(t, can)
			require.EqualValues(t, 2, *can.Spec.Replicas)
			require.Equal(t, "ghcr.io/krgeobuk/auth-server@"+canaryDigest, can.Spec.Template.Spec.Containers[0].Image)
			require.Equal(t, "ghcr.io/krgeobuk/auth-server@"+canaryDigest, can.Spec.Template.Spec.InitContainers[0].Image,
				"the canary waits for the database with its own image")
			require.Equal(t, "ghcr.io/krgeobuk/auth-server@"+chartstest.Digest("auth-server"), stable.Spec.Template.Spec.Containers[0].Image,
				"the stable Deployment keeps the stable image")

			sp, cp := stable.Spec.Template.Labels, can.Spec.Template.Labels
			require.Equal(t, catalog.TrackStable, sp[catalog.TrackLabel])
			require.Equal(t, catalog.TrackCanary, cp[catalog.TrackLabel])
			require.Equal(t, "auth-server", cp["app.kubernetes.io/name"], "the canary is the same application (Prometheus's service label)")
			require.Equal(t, catalog.CanaryInstance(e.Release), cp["app.kubernetes.io/instance"])
			require.Equal(t, canaryDigest[len("sha256:"):len("sha256:")+12], cp["app.kubernetes.io/version"])
			require.Equal(t, stable.Spec.Template.Annotations, can.Spec.Template.Annotations, "scraped and configured alike")

			require.True(t, selects(t, stable.Spec.Selector, sp))
			require.False(t, selects(t, stable.Spec.Selector, cp), "the stable Deployment must not adopt or count canary pods")
			require.True(t, selects(t, can.Spec.Selector, cp))
			require.False(t, selects(t, can.Spec.Selector, sp), "the canary Deployment must not adopt or count stable pods")
			for _, c := range []*corev1.PodSpec{&stable.Spec.Template.Spec, &can.Spec.Template.Spec} {
				require.Len(t, c.TopologySpreadConstraints, 1)
			}
			require.False(t, selects(t, stable.Spec.Template.Spec.TopologySpreadConstraints[0].LabelSelector, cp))
			require.True(t, selects(t, can.Spec.Template.Spec.TopologySpreadConstraints[0].LabelSelector, cp))

			require.True(t, gate.ReleasePods(e.Release).Matches(labels.Set(sp)), "the rollout gate watches the stable pods")
			require.True(t, gate.ReleasePods(e.Release).Matches(labels.Set(cp)), "and the canary's, to fail fast on them too")
			require.False(t, gate.ReleasePods("other").Matches(labels.Set(cp)))

			svc := find[*corev1.Service](res, "auth-server")
			require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(sp)))
			require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(cp)), "one Service sends traffic to both tracks")
			require.NotContains(t, svc.Spec.Selector, catalog.TrackLabel)
			// The canary's own Service, named as its Deployment: the readiness gate asks each
			// workload through the Service of its name.
			csvc := find[*corev1.Service](res, catalog.CanaryDeployment("auth-server"))
			require.NotNil(t, csvc)
			require.True(t, labels.SelectorFromSet(csvc.Spec.Selector).Matches(labels.Set(cp)))
			require.False(t, labels.SelectorFromSet(csvc.Spec.Selector).Matches(labels.Set(sp)), "the canary's Service reaches the canary only")
			require.Equal(t, svc.Spec.Ports, csvc.Spec.Ports)

			// Every NetworkPolicy treats the canary as it treats the stable pods.
			for _, o := range res.Objects {
				np, ok := o.Typed.(*networkingv1.NetworkPolicy)
				if !ok {
					continue
				}
				require.Equal(t, selects(t, &np.Spec.PodSelector, sp), selects(t, &np.Spec.PodSelector, cp), "%s selects one track only", o.Ref())
				for _, r := range np.Spec.Ingress {
					for _, p := range r.From {
						if p.PodSelector != nil && p.NamespaceSelector == nil {
							require.Equal(t, selects(t, p.PodSelector, sp), selects(t, p.PodSelector, cp), "%s admits one track only", o.Ref())
						}
					}
				}
				for _, r := range np.Spec.Egress {
					for _, p := range r.To {
						if p.PodSelector != nil && p.NamespaceSelector == nil {
							require.Equal(t, selects(t, p.PodSelector, sp), selects(t, p.PodSelector, cp), "%s reaches one track only", o.Ref())
						}
					}
				}
			}
			require.True(t, selects(t, &find[*networkingv1.NetworkPolicy](res, "auth-server").Spec.PodSelector, cp))
			require.True(t, selects(t, &find[*networkingv1.NetworkPolicy](res, e.Release+"-default-deny").Spec.PodSelector, cp))

			pdb := find[*policyv1.PodDisruptionBudget](res, "auth-server")
			require.True(t, selects(t, pdb.Spec.Selector, sp))
			require.False(t, selects(t, pdb.Spec.Selector, cp), "the service's PDB counts stable pods only")
			cpdb := find[*policyv1.PodDisruptionBudget](res, catalog.CanaryDeployment("auth-server"))
			require.NotNil(t, cpdb)
			require.True(t, selects(t, cpdb.Spec.Selector, cp))
			require.False(t, selects(t, cpdb.Spec.Selector, sp))

			if hpa := find[*autoscalingv2.HorizontalPodAutoscaler](res, "auth-server"); hpa != nil {
				require.Equal(t, "auth-server", hpa.Spec.ScaleTargetRef.Name, "the HPA scales the stable Deployment, whose selector excludes the canary")
			}
			require.Nil(t, find[*autoscalingv2.HorizontalPodAutoscaler](res, catalog.CanaryDeployment("auth-server")), "the canary has a fixed size")
			require.Nil(t, find[*appsv1.Deployment](res, catalog.CanaryDeployment("authz-server")), "no canary unless enabled")
		})
	}
}

// What chart 0.1.0 (before canaries) rendered: each Deployment's selector and pod labels, per
// environment (testdata/apps-0.1.0-deployments.json, dumped from that chart).
type oldDeployment struct {
	Selector  map[string]string `json:"selector"`
	PodLabels map[string]string `json:"podLabels"`
}

// An upgrade of a running release from chart 0.1.0 succeeds and keeps serving: the API
// server refuses a changed Deployment selector (immutable), so each stays as it was; the pods
// 0.1.0 started keep matching the Service and their NetworkPolicies while the rollout replaces
// them (else they would drop out of the Service or be cut off before their replacements are
// Ready); and a canary enabled at the same time adopts none of them.
func TestAppsCanaryUpgradeFromChart010(t *testing.T) {
	data, err := os.ReadFile("testdata/apps-0.1.0-deployments.json")
	require.NoError(t, err)
	var old map[string]map[string]oldDeployment
	require.NoError(t, json.Unmarshal(data, &old))
	require.Len(t, old, 3)
	for env, deps := range old {
		for _, withCanary := range []bool{false, true} {
			var over []map[string]any
			if withCanary {
				over = append(over, canary(1))
			}
			res := chartstest.MustRender(t, env, over...)
			for name, was := range deps {
				d := find[*appsv1.Deployment](res, name)
				require.NotNil(t, d, "%s %s", env, name)
				require.Equal(t, was.Selector, d.Spec.Selector.MatchLabels, "%s %s: a Deployment's selector is immutable", env, name)
				require.Empty(t, d.Spec.Selector.MatchExpressions)

				svc := find[*corev1.Service](res, name)
				require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(was.PodLabels)),
					"%s %s: the Service must keep the pods chart 0.1.0 started", env, name)
				np := find[*networkingv1.NetworkPolicy](res, name)
				require.True(t, selects(t, &np.Spec.PodSelector, was.PodLabels), "%s %s: its NetworkPolicy must keep the old pods", env, name)
				require.True(t, selects(t, &find[*networkingv1.NetworkPolicy](res, "krgeobuk-apps-default-deny").Spec.PodSelector, was.PodLabels))
				if c := find[*appsv1.Deployment](res, catalog.CanaryDeployment(name)); c != nil {
					require.False(t, selects(t, c.Spec.Selector, was.PodLabels), "%s %s: the canary must not adopt the old pods", env, name)
				}
			}
		}
	}
}

// Fault injection renders into the API's environment, the canary's own for the canary.
func TestAppsFaultsRenderInDevelopment(t *testing.T) {
	res := chartstest.MustRender(t, "development", canary(1),
		chartstest.Set("services.auth-server.canary.faults", map[string]any{"errorRatio": 0.25}),
		chartstest.Set("services.authz-server.faults", map[string]any{"delayMillis": 800}))
	env := func(name string) map[string]string {
		out := map[string]string{}
		for _, e := range find[*appsv1.Deployment](res, name).Spec.Template.Spec.Containers[0].Env {
			out[e.Name] = e.Value
		}
		return out
	}
	require.Equal(t, map[string]string{"FAULT_ERROR_RATIO": "0.25"}, env(catalog.CanaryDeployment("auth-server")))
	require.Empty(t, env("auth-server"), "the stable pods run without faults")
	require.Equal(t, map[string]string{"FAULT_DELAY_MS": "800", "FAULT_DELAY_RATIO": "1"}, env("authz-server"), "every request is delayed unless delayRatio says otherwise")
	require.Empty(t, find[*appsv1.Deployment](res, "auth-server").Spec.Template.Spec.InitContainers[0].Env[2:], "the init container gets no faults")
}

// Bad canary and fault values are refused before anything is rendered, naming the value.
func TestAppsCanaryRefusals(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		values  map[string]any
		wantErr []string
	}{
		{name: "no canary pods", env: "development", values: values.Merge(canary(1), chartstest.Set("services.auth-server.canary.replicas", 0)),
			wantErr: []string{"/services/auth-server/canary/replicas"}},
		{name: "canary without an image", env: "development", values: chartstest.Set("services.auth-server.canary", map[string]any{"enabled": true, "replicas": 1}),
			wantErr: []string{"/services/auth-server/canary"}},
		{name: "canary with an empty image", env: "development",
			values:  chartstest.Set("services.auth-server.canary", map[string]any{"enabled": true, "replicas": 1, "image": map[string]any{"repository": "ghcr.io/krgeobuk/auth-server"}}),
			wantErr: []string{"/services/auth-server/canary/image"}},
		{name: "canary by tag where digests are demanded", env: "production",
			values:  chartstest.Set("services.auth-server.canary", map[string]any{"enabled": true, "replicas": 1, "image": map[string]any{"tag": "2.0.0"}}),
			wantErr: []string{`services.auth-server.canary.image.digest is required: environment "production" deploys images by digest only (imagePolicy=digest)`}},
		{name: "canary on latest", env: "development",
			values:  chartstest.Set("services.auth-server.canary", map[string]any{"enabled": true, "replicas": 1, "image": map[string]any{"tag": "latest"}}),
			wantErr: []string{`services.auth-server.canary.image.tag: "latest" is a floating tag; give a version or a digest`}},
		{name: "malformed canary digest", env: "staging", values: values.Merge(canary(1), chartstest.Set("services.auth-server.canary.image.digest", "sha256:abc")),
			wantErr: []string{"/services/auth-server/canary/image/digest"}},
		{name: "faults in production", env: "production", values: chartstest.Set("services.auth-server.faults", map[string]any{"errorRatio": 0.5}),
			wantErr: []string{"services.auth-server.faults: fault injection makes a share of requests fail or slow down on purpose; it is for development only and refused in production. Remove it"}},
		{name: "canary faults in staging", env: "staging", values: values.Merge(canary(1), chartstest.Set("services.auth-server.canary.faults", map[string]any{"delayMillis": 100})),
			wantErr: []string{"services.auth-server.canary.faults: fault injection makes a share of requests fail or slow down on purpose; it is for development only and refused in staging"}},
		{name: "faults on an SPA", env: "development", values: chartstest.Set("services.auth-client.faults", map[string]any{"errorRatio": 0.5}),
			wantErr: []string{"services.auth-client.faults: only the APIs have the fault switch (FAULT_* variables); auth-client is a spa"}},
		{name: "error ratio above one", env: "development", values: chartstest.Set("services.auth-server.faults", map[string]any{"errorRatio": 1.5}),
			wantErr: []string{"/services/auth-server/faults/errorRatio"}},
		{name: "unknown fault", env: "development", values: chartstest.Set("services.auth-server.faults", map[string]any{"crash": true}),
			wantErr: []string{"/services/auth-server/faults", "crash"}},
		{name: "faults through config", env: "development", values: chartstest.Set("services.auth-server.config.FAULT_ERROR_RATIO", "1"),
			wantErr: []string{"services.auth-server.config.FAULT_ERROR_RATIO: fault injection is set with services.auth-server.faults (development only), never through config"}},
		{name: "track label by hand", env: "development", values: chartstest.Set("services.auth-server.podLabels", map[string]any{catalog.TrackLabel: "canary"}),
			wantErr: []string{"/services/auth-server/podLabels/krgeobuk.io~1track"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := chartstest.Env(t, tt.env)
			_, err := chartstest.Render(t, env, values.Merge(chartstest.DeployValues(env), tt.values))
			require.Error(t, err)
			for _, w := range tt.wantErr {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// Prometheus's own relabeling, run over the rendered scrape job with the discovery labels
// Kubernetes gives each API pod as the apps chart renders it: stable and canary series carry the
// same service, their own pod_template_hash, and the track; SPAs (not annotated) are not scraped.
func TestMonitoringScrapeCarriesTheTrack(t *testing.T) {
	mon, _ := chartstest.MustRenderMonitoring(t, "development")
	files, err := stackcheck.Extract(mon.Objects)
	require.NoError(t, err)
	cfg, err := promconfig.Load(files.Prometheus, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	var job *promconfig.ScrapeConfig
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName == "krgeobuk-apps" {
			job = sc
		}
	}
	require.NotNil(t, job)

	apps := chartstest.MustRender(t, "development", canary(1))
	scrape := func(name, hash string) labels.Set {
		d := find[*appsv1.Deployment](apps, name)
		b := promlabels.NewBuilder(promlabels.FromStrings(
			"__address__", "10.244.0.7", "__meta_kubernetes_namespace", "krgeobuk",
			"__meta_kubernetes_pod_name", name+"-"+hash+"-x1", "__meta_kubernetes_pod_phase", "Running",
			"__meta_kubernetes_pod_label_pod_template_hash", hash))
		for k, v := range d.Spec.Template.Labels {
			b.Set("__meta_kubernetes_pod_label_"+strutil.SanitizeLabelName(k), v)
		}
		for k, v := range d.Spec.Template.Annotations {
			b.Set("__meta_kubernetes_pod_annotation_"+strutil.SanitizeLabelName(k), v)
		}
		if !relabel.ProcessBuilder(b, job.RelabelConfigs...) {
			return nil
		}
		return labels.Set(b.Labels().Map())
	}
	st, ca := scrape("auth-server", "5d8f7c9b4"), scrape(catalog.CanaryDeployment("auth-server"), "7f6b5c4d3")
	require.NotNil(t, st)
	require.NotNil(t, ca)
	require.Equal(t, "10.244.0.7:8000", st["__address__"])
	require.Equal(t, "/metrics", st["__metrics_path__"])
	for _, c := range []struct {
		got              labels.Set
		hash, track, pod string
	}{{st, "5d8f7c9b4", catalog.TrackStable, "auth-server-5d8f7c9b4-x1"}, {ca, "7f6b5c4d3", catalog.TrackCanary, "auth-server-canary-7f6b5c4d3-x1"}} {
		require.Equal(t, "auth-server", c.got["service"])
		require.Equal(t, c.hash, c.got["pod_template_hash"])
		require.Equal(t, c.track, c.got[catalog.PromTrackLabel])
		require.Equal(t, c.pod, c.got["pod"])
	}
	require.Nil(t, scrape("auth-client", "6c5b4a392"), "an SPA is not scraped")
}
