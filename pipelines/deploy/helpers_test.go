package deploy_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	helmrelease "helm.sh/helm/v3/pkg/release"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// fixture is one test's world: its own namespace in the shared cluster, a
// registry with published images and stand-in readiness endpoints.
type fixture struct {
	t      *testing.T
	cs     kubernetes.Interface
	kc     []byte
	env    *environment.Environment
	reg    *deploytest.Registry
	apps   *deploytest.Apps
	log    *deploytest.Log
	events chan deploy.Event
}

var nsName = regexp.MustCompile(`[^a-z0-9-]+`)

// newFixture loads the development environment and points it at a fresh
// namespace with short gates, as the tests' time budget wants.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, testenv.Shared(t))
}

// newFixtureOn is newFixture on a cluster of the test's own.
func newFixtureOn(t *testing.T, c *testenv.Cluster) *fixture {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	env, err := environment.Load(k8s.Environments, "development")
	require.NoError(t, err)
	ns := strings.Trim(nsName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(ns) > 55 {
		ns = strings.Trim(ns[len(ns)-55:], "-")
	}
	env.Namespace = ns
	env.Gates = environment.Gates{RolloutTimeout: 45 * time.Second, ReadinessTimeout: 4 * time.Second, UnschedulableGrace: 3 * time.Second}
	env.LockTTL = 6 * time.Second
	_, err = cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	reg := deploytest.NewRegistry()
	apps := deploytest.NewApps(cs)
	f := &fixture{t: t, cs: cs, kc: c.Kubeconfig(), env: env, reg: reg, apps: apps, log: &deploytest.Log{}, events: make(chan deploy.Event, 4096)}
	t.Cleanup(func() {
		apps.Close()
		reg.Close()
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		if t.Failed() {
			t.Logf("deploy log:\n%s", f.log.String())
		}
	})
	return f
}

// deployer builds a Deployer for the fixture; actor names who deploys.
func (f *fixture) deployer(actor string) *deploy.Deployer {
	f.t.Helper()
	d, err := deploy.New(deploy.Config{
		Kubeconfig: f.kc, Env: f.env, Endpoints: f.apps, Actor: actor, Log: f.log, Verbose: true,
		Registry: &registry.Resolver{},
		Progress: func(ev deploy.Event) {
			select {
			case f.events <- ev:
			default:
			}
		},
	})
	require.NoError(f.t, err)
	return d
}

// drain forgets the progress events of earlier runs.
func (f *fixture) drain() {
	for {
		select {
		case <-f.events:
		default:
			return
		}
	}
}

func (f *fixture) publish(version string) map[string]string {
	f.t.Helper()
	refs, err := f.reg.Publish(version)
	require.NoError(f.t, err)
	return refs
}

// fault returns values that put a testenv fault on one service's pods.
func fault(service, kind string) map[string]any {
	return svcValues(service, map[string]any{"podLabels": map[string]any{testenv.FaultLabel: kind}})
}

func svcValues(service string, v map[string]any) map[string]any {
	return map[string]any{"services": map[string]any{service: v}}
}

// pinnedValues are the values a deploy hands Helm: the environment's, then
// over, then each service's image by digest.
func pinnedValues(env *environment.Environment, refs map[string]string, over map[string]any) map[string]any {
	pins := map[string]values.Image{}
	for svc, ref := range refs {
		repo, digest, _ := strings.Cut(ref, "@")
		pins[svc] = values.Image{Repository: repo, Digest: digest}
	}
	return values.Layer(env.Values, over, pins)
}

// chartOf loads the embedded chart; a fresh copy every time, as Helm
// mutates the charts it is given.
func chartOf(t testing.TB) *chart.Chart {
	ch, err := render.LoadFS(charts.Apps, charts.AppsDir)
	if err != nil {
		panic(err) // the embedded chart always loads; the chart tests say why if not
	}
	return ch
}

// setStatus rewrites a revision's Helm status, as a deployer killed
// mid-operation leaves it.
func setStatus(t *testing.T, f *fixture, rev int, status string) {
	t.Helper()
	kc, err := kube.FromKubeconfig(f.kc, f.env.Namespace)
	require.NoError(t, err)
	cfg := new(action.Configuration)
	require.NoError(t, cfg.Init(kc.Getter(), f.env.Namespace, "secret", func(string, ...any) {}))
	rel, err := cfg.Releases.Get(f.env.Release, rev)
	require.NoError(t, err)
	rel.Info.Status = helmrelease.Status(status)
	require.NoError(t, cfg.Releases.Update(rel))
}

// staleLease leaves the deploy lock held by holder, expired an hour ago.
func staleLease(t *testing.T, f *fixture, holder string) {
	t.Helper()
	secs := int32(60)
	old := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	spec := coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &old, AcquireTime: &old}
	leases := f.cs.CoordinationV1().Leases(f.env.Namespace)
	l, err := leases.Get(context.Background(), deploy.LockName, metav1.GetOptions{})
	if err == nil {
		l.Spec = spec
		_, err = leases.Update(context.Background(), l, metav1.UpdateOptions{})
	} else {
		_, err = leases.Create(context.Background(), &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: deploy.LockName}, Spec: spec}, metav1.CreateOptions{})
	}
	require.NoError(t, err)
}
