package deploy_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// bootstrapLimits builds environment env's cluster bootstrap (k8s/environments/<env>, kustomize)
// and returns the ResourceQuota and LimitRange it sets on the apps namespace.
func bootstrapLimits(t *testing.T, env string) (*corev1.ResourceQuota, *corev1.LimitRange) {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "../../k8s/environments/"+env)
	require.NoError(t, err)
	out, err := resMap.AsYaml()
	require.NoError(t, err)
	objs, err := render.Decode(string(out))
	require.NoError(t, err)
	var quota *corev1.ResourceQuota
	var limits *corev1.LimitRange
	for _, o := range objs {
		switch x := o.Typed.(type) {
		case *corev1.ResourceQuota:
			if x.Namespace == "krgeobuk" {
				quota = x
			}
		case *corev1.LimitRange:
			if x.Namespace == "krgeobuk" {
				limits = x
			}
		}
	}
	require.NotNil(t, quota, "%s: no ResourceQuota for the apps namespace", env)
	require.NotNil(t, limits, "%s: no LimitRange for the apps namespace", env)
	return quota, limits
}

// Production's own bootstrap quota and LimitRange, enforced by the real API server's admission,
// admit production's apps at their peak: both APIs at the HPA maximum (8 replicas, held there
// as load would, since nothing drives the HPA on the simulated cluster) and an upgrade surging
// one pod per Deployment. The deploy and the upgrade are verified and the quota counted every
// pod. The base quota (staging's) refuses those pods, and the upgrade is rolled back: the limits
// TestQuotaFitsTheChartAtPeak computes from the render are the ones admission applies.
func TestProductionDeploysUnderItsRealQuota(t *testing.T) {
	t.Parallel()
	f := peakFixture(t, "production")
	ctx := context.Background()
	d := f.deployer("alice")
	res := d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0"), Values: atHPAMaximum})
	deploytest.RequireVerdict(t, report.Verified, res)
	res = d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.1"), Values: atHPAMaximum})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 2, res.Revision, "the upgrade's surge pods were admitted")
	used, err := f.cs.CoreV1().ResourceQuotas(f.env.Namespace).Get(ctx, "krgeobuk", metav1.GetOptions{})
	require.NoError(t, err)
	pods := used.Status.Used[corev1.ResourcePods]
	require.EqualValues(t, 20, pods.Value(), "the quota counts production's 8+8+2+2 pods: %v", used.Status.Used)
}

// atHPAMaximum holds both APIs at production's HPA maximum.
var atHPAMaximum = map[string]any{"services": map[string]any{
	"auth-server":  map[string]any{"hpa": map[string]any{"enabled": false}, "replicas": 8},
	"authz-server": map[string]any{"hpa": map[string]any{"enabled": false}, "replicas": 8},
}}

func TestBaseQuotaRefusesProductionAtPeak(t *testing.T) {
	t.Parallel()
	f := peakFixture(t, "staging")
	ctx := context.Background()
	d := f.deployer("alice")
	res := d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0"), Values: atHPAMaximum})
	require.NotEqual(t, report.Verified, res.Verdict, "production at its peak does not fit the base quota: %s", res.Summary)
	out, err := json.Marshal(res)
	require.NoError(t, err)
	require.Contains(t, string(out), "exceeded quota: krgeobuk", "the report says why the pods were not created")
}

// peakFixture is a fixture deploying production's values into a namespace that carries the
// ResourceQuota and LimitRange of environment quotaEnv's bootstrap.
func peakFixture(t *testing.T, quotaEnv string) *fixture {
	t.Helper()
	f := newFixture(t)
	prod, err := environment.Load(k8s.Environments, "production")
	require.NoError(t, err)
	f.env.Values = prod.Values
	ctx := context.Background()
	quota, limits := bootstrapLimits(t, quotaEnv)
	for _, o := range []metav1.Object{quota, limits} {
		o.SetNamespace(f.env.Namespace)
		o.SetResourceVersion("")
	}
	_, err = f.cs.CoreV1().ResourceQuotas(f.env.Namespace).Create(ctx, quota, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = f.cs.CoreV1().LimitRanges(f.env.Namespace).Create(ctx, limits, metav1.CreateOptions{})
	require.NoError(t, err)
	return f
}
