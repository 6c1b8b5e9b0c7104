package deploy_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// canaried is the analysed fixture with canary steps: one pod, then half
// the stable pods, each step watched for the window beside the stable pods.
func canaried(t *testing.T) (*fixture, *podStandIns, *deploy.Deployer) {
	f, p, promURL := analysed(t)
	f.env.Analysis.Canary = &environment.Canary{Steps: []environment.CanaryStep{{Pods: 1}, {Percent: 50}}, MaxRatioIncrease: 0.02, MaxP95Factor: 2}
	d := f.deployerWith(deploy.Config{PrometheusURL: promURL, Actor: "ci"})
	return f, p, d
}

// stableHashes is the pod-template-hash of every ReplicaSet of the stable
// Deployments that has pods, by service.
func (f *fixture) stableHashes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	rss, err := f.cs.AppsV1().ReplicaSets(f.env.Namespace).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	for _, rs := range rss.Items {
		if rs.Labels[catalog.TrackLabel] == catalog.TrackCanary || rs.Spec.Replicas == nil || *rs.Spec.Replicas == 0 {
			continue
		}
		out[rs.Labels["app.kubernetes.io/name"]] = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	}
	return out
}

// A healthy new image runs first as a canary of one pod, then of half the
// stable pods, each step beside the stable pods of the verified revision
// and compared with their numbers; then it replaces them, and the canary
// Deployments are gone.
func TestCanaryStepsPromoteAHealthyImage(t *testing.T) {
	t.Parallel()
	f, _, d := canaried(t)
	ctx := context.Background()
	first := d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0")})
	deploytest.RequireVerdict(t, report.Verified, first)
	require.True(t, slices.ContainsFunc(first.Steps, func(s report.Step) bool {
		return s.Name == "preflight/canary" && s.Status == "skipped" && strings.Contains(s.Detail, "no verified revision to run a canary beside")
	}), "a first install has no stable pods to run a canary beside: %+v", first.Steps)

	res := d.Deploy(ctx, deploy.Request{Images: f.publish("2.0.0")})
	deploytest.RequireVerdict(t, report.Verified, res)
	var steps []string
	for _, a := range res.Analysis {
		require.Equal(t, "pass", a.Verdict, "%+v", a)
		if a.Step == "" {
			require.Nil(t, a.Stable, "the full rollout has nothing beside it")
			continue
		}
		steps = append(steps, a.Step)
		require.NotNil(t, a.Stable, "a canary step is compared with the stable pods: %+v", a)
		require.GreaterOrEqual(t, a.Stable.Requests, 20.0)
		require.NotEqual(t, a.Revision, a.Stable.Revision)
	}
	require.Len(t, steps, 4, "two steps of two scraped services")
	require.Contains(t, steps[0], "canary 1/2 (1): auth-server 1 beside 1, authz-server 1 beside 1")
	require.Contains(t, steps[len(steps)-1], "canary 2/2 (50%)")
	require.Equal(t, 4, res.Revision, "revisions 2 and 3 were the canary steps, 4 the full rollout")
	for _, svc := range []string{"auth-server", "authz-server"} {
		_, err := f.cs.AppsV1().Deployments(f.env.Namespace).Get(ctx, catalog.CanaryDeployment(svc), metav1.GetOptions{})
		require.True(t, apierrors.IsNotFound(err), "the canary Deployment of %s is gone after the full rollout: %v", svc, err)
	}
	hist := f.history(d)
	require.Len(t, hist, 4)
	require.True(t, hist[len(hist)-1].Verified, "the full rollout is verified")
	for _, h := range hist[1:3] {
		require.False(t, h.Verified, "a canary step is never a rollback target")
		require.Contains(t, h.Description, "canary step")
	}
}

// A canary that answers 5xx, one that is slow beside the stable pods, and
// one nobody calls are each stopped at the first step: every pod returns to
// the verified revision (the stable pods were never replaced) and the report
// names the canary with its numbers.
func TestCanaryStepsRollBackABadImage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    string
		class   gate.Class
		verdict string
		message string
	}{
		{mode: "failing", class: gate.MetricBreach, verdict: "fail", message: "5xx_ratio 1 above threshold 0.05"},
		{mode: "slow", class: gate.MetricBreach, verdict: "fail", message: "p95_vs_baseline"},
		{mode: "idle", class: gate.NoMetricData, verdict: "no-data", message: "no data"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			f, p, d := canaried(t)
			ctx := context.Background()
			deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0")}))
			stable := f.stableHashes(t)

			p.canaryMode = tt.mode
			start := time.Now()
			res := d.Deploy(ctx, deploy.Request{Images: f.publish("2.0.0")})
			deploytest.RequireVerdict(t, report.RolledBack, res)
			require.Equal(t, 1, res.RolledBackTo)
			require.Contains(t, res.Summary, "failed its analysis gate")
			require.NotEmpty(t, res.Problems)
			pr := res.Problems[0]
			require.Equal(t, tt.class, pr.Class, "problem: %s", pr)
			require.Contains(t, pr.Workload, "-canary", "the canary is named")
			require.Contains(t, pr.Message, tt.message)
			for _, a := range res.Analysis {
				require.Contains(t, a.Step, "canary 1/2", "stopped at the first step: %+v", a)
			}
			a := analysisOf(t, res, pr.Service)
			require.Equal(t, tt.verdict, a.Verdict)
			require.NotNil(t, a.Stable)
			if tt.mode != "idle" {
				require.Less(t, time.Since(start), 3*f.env.Analysis.Duration, "a breach ends the first step's window early")
			}

			require.Equal(t, stable, f.stableHashes(t), "the stable pods were never replaced")
			for _, svc := range []string{"auth-server", "authz-server"} {
				_, err := f.cs.AppsV1().Deployments(f.env.Namespace).Get(ctx, catalog.CanaryDeployment(svc), metav1.GetOptions{})
				require.True(t, apierrors.IsNotFound(err), "the rollback removed the canary of %s: %v", svc, err)
			}
		})
	}
}

// A deploy that changes more than images reaches every pod at once: no
// canary, said in the report, and the new revision is still analysed.
func TestCanaryStepsNeedAnImageOnlyChange(t *testing.T) {
	t.Parallel()
	f, _, d := canaried(t)
	ctx := context.Background()
	v1 := f.publish("1.0.0")
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: v1}))
	res := d.Deploy(ctx, deploy.Request{Images: f.publish("2.0.0"), Values: svcValues("auth-server", map[string]any{"config": map[string]any{"LOG_LEVEL": "info"}})})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.True(t, slices.ContainsFunc(res.Steps, func(s report.Step) bool {
		return s.Name == "preflight/canary" && s.Status == "skipped" && strings.Contains(s.Detail, "changes more than images")
	}), "%+v", res.Steps)
	for _, a := range res.Analysis {
		require.Empty(t, a.Step)
	}
	require.Equal(t, 2, res.Revision)
}
