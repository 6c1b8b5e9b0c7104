package realnodetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	retry "github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/promtest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/realnode"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/stack"
)

// Bootstrap returns what an admin applies for environment envName
// (k8s/environments/<env>, built by kustomize), decoded.
func Bootstrap(tb testing.TB, envName string) []render.Object {
	tb.Helper()
	wd, err := os.Getwd()
	require.NoError(tb, err)
	repo, err := binaries.FindRepoRoot(wd)
	require.NoError(tb, err)
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(repo, "k8s", "environments", envName))
	require.NoError(tb, err)
	out, err := resMap.AsYaml()
	require.NoError(tb, err)
	objs, err := render.Decode(string(out))
	require.NoError(tb, err)
	return objs
}

// PrometheusOptions say where StartPrometheus puts the monitoring stack and
// what it watches.
type PrometheusOptions struct {
	// Env is the apps' environment as the test deployed it (its Name selects
	// the bootstrap and the monitoring values, its Namespace is the apps
	// namespace Prometheus discovers).
	Env *environment.Environment
	// Namespace is the monitoring namespace to create; the apps release must
	// name it in global.prometheus.namespace for its NetworkPolicies to admit
	// the scrapes.
	Namespace string
	// Kubeconfig authenticates as the apps namespace's deployer, whom the
	// bootstrap binds in the monitoring namespace too (k8s/base/monitoring-rbac.yaml).
	Kubeconfig []byte
	// Image is the Prometheus image to run (exampleimages.Prometheus).
	Image v1.Image
	// ScrapeInterval is Prometheus's scrape and evaluation interval; "5s" keeps
	// tests short. ScrapeTimeout must not exceed it (Prometheus refuses the
	// configuration).
	ScrapeInterval, ScrapeTimeout string
}

// Prometheus is the monitoring stack's Prometheus running on the real node.
type Prometheus struct {
	// Namespace and Release are where the stack was deployed.
	Namespace, Release string
	api                promv1.API
}

// StartPrometheus bootstraps the monitoring namespace as an admin would (the
// Namespace, the deployer's Role and RoleBinding, quota and LimitRange of
// k8s/environments/<env>, and Prometheus's discovery ClusterRole and binding,
// named after the namespace so tests do not share them), then deploys the
// monitoring-stack chart with the gated deploy as the deployer: Prometheus
// only (no Alertmanager, no Grafana, no persistence), running opts.Image
// pushed to the node's registry under the chart's tag, discovering the apps
// namespace. It fails the test unless the deploy is verified. Everything is
// removed when the test ends.
func StartPrometheus(tb testing.TB, c *realnode.Cluster, admin kubernetes.Interface, opts PrometheusOptions) *Prometheus {
	tb.Helper()
	ctx := context.Background()
	const release = "monitoring"
	bootstrapMonitoring(tb, admin, opts.Env.Name, opts.Env.Namespace, opts.Namespace, release)

	repo := c.Registry() + "/prometheus/prometheus"
	tag, err := name.NewTag(repo+":v"+promtest.PrometheusVersion, name.Insecure)
	require.NoError(tb, err)
	require.NoError(tb, remote.Write(tag, opts.Image, remote.WithContext(ctx)))

	env := *opts.Env
	env.Monitoring = &environment.Placement{Namespace: opts.Namespace, Release: release}
	d, err := deploy.New(deploy.Config{Kubeconfig: opts.Kubeconfig, Env: &env, Stack: stack.Monitoring,
		Actor: "ci@realnode", Registry: &registry.Resolver{}, Log: &deploytest.Log{}})
	require.NoError(tb, err)
	res := d.Deploy(ctx, deploy.Request{Values: map[string]any{
		"apps":         map[string]any{"namespace": opts.Env.Namespace},
		"alertmanager": map[string]any{"enabled": false},
		"grafana":      map[string]any{"enabled": false},
		"prometheus": map[string]any{
			"image":       map[string]any{"repository": repo},
			"persistence": map[string]any{"enabled": false},
			// A test's Prometheus: small, and quick to see new series.
			"scrapeInterval": opts.ScrapeInterval, "evaluationInterval": opts.ScrapeInterval, "scrapeTimeout": opts.ScrapeTimeout,
			"resources": map[string]any{"requests": map[string]any{"cpu": "50m", "memory": "128Mi"}, "limits": map[string]any{"cpu": "500m", "memory": "512Mi"}},
		},
	}})
	deploytest.RequireVerdict(tb, report.Verified, res)

	svc, err := admin.CoreV1().Services(opts.Namespace).Get(ctx, release+"-prometheus", metav1.GetOptions{})
	require.NoError(tb, err)
	client, err := promapi.NewClient(promapi.Config{
		Address: fmt.Sprintf("http://%s:9090", svc.Spec.ClusterIP),
		// From the node, as root: kube-network-policies admits the node's own
		// traffic, as it admits the kubelet's probes.
		RoundTripper: &http.Transport{DialContext: c.DialContext},
	})
	require.NoError(tb, err)
	return &Prometheus{Namespace: opts.Namespace, Release: release, api: promv1.NewAPI(client)}
}

// Query runs an instant PromQL query whose result is a vector.
func (p *Prometheus) Query(ctx context.Context, q string) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, _, _, err := p.api.Query(ctx, q, time.Now())
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %s: a %s, not a vector", q, v.Type())
	}
	return vec, nil
}

// Eventually repeats query q until check accepts its result or within
// passes (new samples arrive once per scrape interval), and returns the last
// result with check's last complaint.
func (p *Prometheus) Eventually(ctx context.Context, q string, within time.Duration, check func(model.Vector) error) (model.Vector, error) {
	var last model.Vector
	var why error
	err := retry.Do(ctx, retry.WithMaxDuration(within, retry.NewConstant(time.Second)), func(ctx context.Context) error {
		v, err := p.Query(ctx, q)
		if err != nil {
			why = err
			return retry.RetryableError(err)
		}
		last = v
		if why = check(v); why != nil {
			return retry.RetryableError(why)
		}
		return nil
	})
	if err != nil {
		return last, fmt.Errorf("after %s: %w (last result: %v)", within, errors.Join(err, why), last)
	}
	return last, nil
}

// bootstrapMonitoring applies the monitoring side of `kubectl apply -k
// k8s/environments/<env>` with the monitoring namespace renamed to monNS and
// the apps namespace to appsNS; the cluster-scoped discovery ClusterRole and
// binding are named after monNS and bound to release's Prometheus there.
func bootstrapMonitoring(tb testing.TB, admin kubernetes.Interface, envName, appsNS, monNS, release string) {
	tb.Helper()
	ctx := context.Background()
	objs := Bootstrap(tb, envName)
	var err error
	const fromApps, fromMon = "krgeobuk", "monitoring"
	clusterName := monNS + "-prometheus"
	tb.Cleanup(func() {
		ctx := context.Background()
		_ = admin.CoreV1().Namespaces().Delete(ctx, monNS, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoleBindings().Delete(ctx, clusterName, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoles().Delete(ctx, clusterName, metav1.DeleteOptions{})
	})
	applied := map[string]int{}
	for _, o := range objs {
		switch x := o.Typed.(type) {
		case *corev1.Namespace:
			if x.Name != fromMon {
				continue
			}
			n := x.DeepCopy()
			n.Name = monNS
			_, err = admin.CoreV1().Namespaces().Create(ctx, n, metav1.CreateOptions{})
		case *rbacv1.Role:
			if x.Namespace != fromMon {
				continue
			}
			r := x.DeepCopy()
			r.Namespace = monNS
			_, err = admin.RbacV1().Roles(monNS).Create(ctx, r, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			if x.Namespace != fromMon {
				continue
			}
			b := x.DeepCopy()
			b.Namespace = monNS
			for i := range b.Subjects {
				if b.Subjects[i].Namespace == fromApps {
					b.Subjects[i].Namespace = appsNS
				}
			}
			_, err = admin.RbacV1().RoleBindings(monNS).Create(ctx, b, metav1.CreateOptions{})
		case *corev1.ResourceQuota:
			if x.Namespace != fromMon {
				continue
			}
			q := x.DeepCopy()
			q.Namespace = monNS
			_, err = admin.CoreV1().ResourceQuotas(monNS).Create(ctx, q, metav1.CreateOptions{})
		case *corev1.LimitRange:
			if x.Namespace != fromMon {
				continue
			}
			l := x.DeepCopy()
			l.Namespace = monNS
			_, err = admin.CoreV1().LimitRanges(monNS).Create(ctx, l, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			if x.Name != release+"-prometheus" {
				continue
			}
			r := x.DeepCopy()
			r.Name = clusterName
			_, err = admin.RbacV1().ClusterRoles().Create(ctx, r, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			if x.Name != release+"-prometheus" {
				continue
			}
			b := x.DeepCopy()
			b.Name, b.RoleRef.Name = clusterName, clusterName
			for i := range b.Subjects {
				if b.Subjects[i].Namespace == fromMon {
					b.Subjects[i].Namespace = monNS
				}
			}
			_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{})
		default:
			continue
		}
		require.NoError(tb, err, o.Ref())
		applied[o.U.GetKind()]++
	}
	require.Equal(tb, map[string]int{"Namespace": 1, "Role": 1, "RoleBinding": 1, "ResourceQuota": 1, "LimitRange": 1, "ClusterRole": 1, "ClusterRoleBinding": 1}, applied,
		"the monitoring namespace's bootstrap")
}
