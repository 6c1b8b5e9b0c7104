package deploy_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/stack"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// monFixture is one monitoring test's world on the shared cluster: a namespace of its own set up
// as k8s/base sets up `monitoring` (Pod Security restricted, the deployer's Role and RoleBinding
// from base/monitoring-rbac.yaml, the deployer's ServiceAccount in krgeobuk), a kubeconfig that
// authenticates as that ServiceAccount with a token from the API server (not the admin's), a
// registry holding the components' images, and stand-in readiness endpoints.
type monFixture struct {
	t     *testing.T
	admin kubernetes.Interface
	// deployer is a client with the deployer's token, kc its kubeconfig.
	deployer kubernetes.Interface
	kc       []byte
	token    string
	env      *environment.Environment
	ns       string
	reg      *deploytest.Registry
	apps     *deploytest.Apps
	log      *deploytest.Log
}

// components are the monitoring stack's, as the registry holds them.
var components = values.Monitoring.Components

func newMonitoringFixture(t *testing.T) *monFixture {
	t.Helper()
	c := testenv.Shared(t)
	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	ns := "mon-" + strings.Trim(nsName.ReplaceAllString(strings.ToLower(strings.TrimPrefix(t.Name(), "TestMonitoring")), "-"), "-")
	if len(ns) > 50 {
		ns = strings.Trim(ns[:50], "-")
	}

	// The bootstrap, as the admin applies it once per cluster, with the monitoring namespace's
	// name made this test's own.
	base := func(file string) []render.Object {
		data, err := k8s.Environments.ReadFile("base/" + file)
		require.NoError(t, err)
		objs, err := render.Decode(string(data))
		require.NoError(t, err)
		return objs
	}
	create := func(err error) {
		if !apierrors.IsAlreadyExists(err) {
			require.NoError(t, err)
		}
	}
	for _, o := range base("namespaces.yaml") {
		n := o.Typed.(*corev1.Namespace).DeepCopy()
		if n.Name == "monitoring" {
			n.Name = ns
		}
		_, err := admin.CoreV1().Namespaces().Create(ctx, n, metav1.CreateOptions{})
		create(err)
	}
	for _, o := range base("deployer-rbac.yaml") {
		if sa, ok := o.Typed.(*corev1.ServiceAccount); ok {
			_, err := admin.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa.DeepCopy(), metav1.CreateOptions{})
			create(err)
		}
	}
	var roles int
	for _, o := range base("monitoring-rbac.yaml") {
		switch v := o.Typed.(type) {
		case *rbacv1.Role:
			r := v.DeepCopy()
			r.Namespace = ns
			_, err := admin.RbacV1().Roles(ns).Create(ctx, r, metav1.CreateOptions{})
			require.NoError(t, err)
			roles++
		case *rbacv1.RoleBinding:
			b := v.DeepCopy()
			b.Namespace = ns
			_, err := admin.RbacV1().RoleBindings(ns).Create(ctx, b, metav1.CreateOptions{})
			require.NoError(t, err)
			roles++
		}
	}
	require.Equal(t, 2, roles, "the deployer's Role and RoleBinding")

	kc, token, err := c.ServiceAccountKubeconfig(ctx, "krgeobuk", "krgeobuk-deployer", time.Hour)
	require.NoError(t, err)
	rc, err := clientcmd.RESTConfigFromKubeConfig(kc)
	require.NoError(t, err)
	deployer, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)

	env, err := environment.Load(k8s.Environments, "development")
	require.NoError(t, err)
	env.Monitoring = &environment.Placement{Namespace: ns, Release: env.Monitoring.Release}
	env.Gates = environment.Gates{RolloutTimeout: 45 * time.Second, ReadinessTimeout: 4 * time.Second, UnschedulableGrace: 3 * time.Second}
	env.LockTTL = 6 * time.Second

	f := &monFixture{t: t, admin: admin, deployer: deployer, kc: kc, token: token, env: env, ns: ns,
		reg: deploytest.NewRegistry(), apps: deploytest.NewApps(admin), log: &deploytest.Log{}}
	t.Cleanup(func() {
		f.apps.Close()
		f.reg.Close()
		_ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		if t.Failed() {
			t.Logf("deploy log:\n%s", f.log.String())
		}
	})
	return f
}

// deployer builds a Deployer of the monitoring stack that acts as the deployer ServiceAccount.
func (f *monFixture) deployerAs(actor string) *deploy.Deployer {
	f.t.Helper()
	d, err := deploy.New(deploy.Config{
		Kubeconfig: f.kc, Env: f.env, Stack: stack.Monitoring, Endpoints: f.apps, Actor: actor, Log: f.log, Verbose: true,
		Registry: &registry.Resolver{},
	})
	require.NoError(f.t, err)
	return d
}

// publish pushes every component's image tagged version and returns the references by tag (as
// the chart names its images) and by digest.
func (f *monFixture) publish(version string) (tags, digests map[string]string) {
	f.t.Helper()
	pub, err := f.reg.PublishTagged(version, components...)
	require.NoError(f.t, err)
	tags, digests = map[string]string{}, map[string]string{}
	for c, p := range pub {
		tags[c], digests[c] = p.Tag, p.Digest
	}
	return tags, digests
}

func (f *monFixture) statefulSet(name string) *appsv1.StatefulSet {
	f.t.Helper()
	s, err := f.admin.AppsV1().StatefulSets(f.ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(f.t, err)
	return s
}

// requireRuns checks that each workload's pod template runs the component's image by digest,
// with the tag kept beside it for people, and that the StatefulSets finished their rollout.
func (f *monFixture) requireRuns(digests map[string]string, tag string) {
	f.t.Helper()
	for _, name := range []string{"monitoring-prometheus", "monitoring-alertmanager"} {
		s := f.statefulSet(name)
		component := s.Labels["app.kubernetes.io/name"]
		repo, digest, _ := strings.Cut(digests[component], "@")
		require.Equal(f.t, repo+":"+tag+"@"+digest, s.Spec.Template.Spec.Containers[0].Image, name)
		require.Equal(f.t, s.Status.UpdateRevision, s.Status.CurrentRevision, "%s: the rollout is complete", name)
		require.Equal(f.t, *s.Spec.Replicas, s.Status.ReadyReplicas, name)
	}
	g, err := f.admin.AppsV1().Deployments(f.ns).Get(context.Background(), "monitoring-grafana", metav1.GetOptions{})
	require.NoError(f.t, err)
	repo, digest, _ := strings.Cut(digests["grafana"], "@")
	require.Equal(f.t, repo+":"+tag+"@"+digest, g.Spec.Template.Spec.Containers[0].Image)
}

// TestMonitoringDeploysAsTheDeployer: the monitoring stack's first install through the gated flow,
// as the deployer ServiceAccount: images named by tag are pinned by digest, the rollout gate
// watches both StatefulSets and the Deployment, every readiness check passes, the revision is
// verified. A second deploy with the same images changes nothing; a new version is verified;
// status, history and a manual rollback work for the monitoring release as for the apps. What the
// deployer may not do (create cluster RBAC) is refused by the API server, and a deploy that would
// need it is refused at preflight with nothing changed. The token never reaches a report or log.
func TestMonitoringDeploysAsTheDeployer(t *testing.T) {
	t.Parallel()
	f := newMonitoringFixture(t)
	ctx := context.Background()
	d := f.deployerAs("alice")
	v1, v1Digests := f.publish("1.0.0")

	res := d.Deploy(ctx, deploy.Request{Images: v1})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, stack.Monitoring, res.Stack)
	require.Equal(t, f.ns, res.Namespace)
	require.Equal(t, "monitoring", res.Release)
	require.Equal(t, 1, res.Revision)
	require.Len(t, res.Services, 3)
	for _, s := range res.Services {
		require.Equal(t, "available", s.Phase, s.Name)
		require.Equal(t, s.Desired, s.Ready, s.Name)
		require.Equal(t, v1Digests[s.Name], s.Image, "%s: the report shows the image by digest", s.Name)
		require.Equal(t, "ready", s.Readiness, "%s: its readiness endpoint answered through its Service", s.Name)
	}
	f.requireRuns(v1Digests, "1.0.0")
	var rollout report.Step
	for _, s := range res.Steps {
		if s.Name == "gate/rollout" {
			rollout = s
		}
	}
	require.Equal(t, "3 workloads fully available", rollout.Detail, "two StatefulSets and a Deployment")
	h, err := d.Release().History(ctx)
	require.NoError(t, err)
	require.Len(t, h, 1)
	require.True(t, h[0].Verified)
	require.Equal(t, "alice", h[0].DeployedBy)
	require.Equal(t, v1Digests, h[0].Images, "history reads the monitoring stack's images from <component>.image")

	res = d.Deploy(ctx, deploy.Request{Images: v1})
	deploytest.RequireVerdict(t, report.Unchanged, res)

	v2, v2Digests := f.publish("2.0.0")
	res = d.Deploy(ctx, deploy.Request{Images: v2})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 2, res.Revision)
	f.requireRuns(v2Digests, "2.0.0")

	st := d.Status(ctx)
	deploytest.RequireVerdict(t, report.Reported, st)
	require.Contains(t, st.Summary, "Revision 2 is deployed and verified")
	lease, err := f.admin.CoordinationV1().Leases(f.ns).Get(ctx, deploy.LockName, metav1.GetOptions{})
	require.NoError(t, err, "the monitoring stack's deploy lock is a Lease in its own namespace")
	require.Nil(t, lease.Spec.HolderIdentity, "released")
	require.Len(t, st.Services, 3)
	for _, s := range st.Services {
		require.Equal(t, "available", s.Phase, s.Name)
		require.Equal(t, v2Digests[s.Name], s.Image, s.Name)
	}

	back := d.Rollback(ctx, deploy.RollbackRequest{})
	deploytest.RequireVerdict(t, report.Verified, back)
	require.Equal(t, 1, back.RolledBackTo, "the newest verified revision before the current")
	require.Equal(t, 3, back.Revision)
	f.requireRuns(v1Digests, "1.0.0")

	hist := d.History(ctx)
	deploytest.RequireVerdict(t, report.Reported, hist)
	require.Contains(t, hist.Summary, "3 revisions, 3 verified")
	require.Equal(t, v1Digests, hist.History[2].Images)

	// The deployer's credentials create no cluster RBAC...
	_, err = f.deployer.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "mon-" + f.ns}}, metav1.CreateOptions{})
	require.True(t, apierrors.IsForbidden(err), "creating a ClusterRole as the deployer: %v", err)
	_, err = f.deployer.RbacV1().RoleBindings(f.ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "grab"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "krgeobuk-deployer", Namespace: "krgeobuk"}}}, metav1.CreateOptions{})
	require.True(t, apierrors.IsForbidden(err), "binding cluster-admin as the deployer: %v", err)
	// ...so a deploy that would render the chart's own discovery RBAC is refused before anything changes.
	res = d.Deploy(ctx, deploy.Request{Images: v2, Values: map[string]any{"prometheus": map[string]any{"rbac": map[string]any{"create": true}}}})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "server-side dry run rejected")
	require.Contains(t, res.Error, `clusterroles.rbac.authorization.k8s.io "`+f.ns+`-monitoring-prometheus" is forbidden: User "system:serviceaccount:krgeobuk:krgeobuk-deployer"`)
	h, err = d.Release().History(ctx)
	require.NoError(t, err)
	require.Len(t, h, 3, "nothing was applied")

	var out bytes.Buffer
	require.NoError(t, report.JSON(&out, res, d.Redactor()))
	require.NotContains(t, out.String()+f.log.String(), f.token, "the deployer's token never reaches a report or the log")
}

// TestMonitoringFailedUpgradeRollsBack: an upgrade of the monitoring stack whose Prometheus
// crash-loops (a StatefulSet), whose Alertmanager never becomes ready (a StatefulSet, found when
// the rollout gate times out), or whose Grafana answers 503 through its Service (the readiness
// gate) is rolled back, as the deployer, to the last verified revision; the report names the
// workload, pod and reason, the failed revision is marked failed, and the cluster runs the
// verified images again with every StatefulSet's rollout complete. The rollback of a pod template
// that never became Ready heals because the chart's StatefulSets are Parallel
// (TestStatefulSetStuckOnABrokenPodIsExplained shows OrderedReady would stall).
func TestMonitoringFailedUpgradeRollsBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		component string
		values    map[string]any
		timeout   time.Duration
		class     gate.Class
		reason    string
		workload  string
		pod       string
	}{
		{name: "crashloop", component: "prometheus", values: monFault("prometheus", "podLabels", testenv.FaultLabel, testenv.FaultCrashLoop),
			class: gate.CrashLoop, reason: "CrashLoopBackOff", workload: "StatefulSet/monitoring-prometheus", pod: "monitoring-prometheus-0"},
		{name: "never-ready", component: "alertmanager", values: monFault("alertmanager", "podLabels", testenv.FaultLabel, testenv.FaultNeverReady),
			timeout: 8 * time.Second, class: gate.NotReady, reason: "ContainersNotReady", workload: "StatefulSet/monitoring-alertmanager", pod: "monitoring-alertmanager-0"},
		{name: "readiness-endpoint", component: "grafana", values: monFault("grafana", "podAnnotations", deploytest.ReadinessAnnotation, "fail"),
			class: gate.ReadinessEndpoint, reason: "HTTP 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newMonitoringFixture(t)
			if tt.timeout > 0 {
				f.env.Gates.RolloutTimeout = tt.timeout
			}
			ctx := context.Background()
			d := f.deployerAs("ci")
			good, goodDigests := f.publish("1.0.0")
			deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: good}))

			next, _ := f.publish("1.1.0")
			res := d.Deploy(ctx, deploy.Request{Images: next, Values: tt.values})
			deploytest.RequireVerdict(t, report.RolledBack, res)
			require.Equal(t, 2, res.Revision)
			require.Equal(t, 1, res.RolledBackTo)
			require.Equal(t, 3, res.RollbackRevision)
			require.NotEmpty(t, res.Problems)
			p := res.Problems[0]
			require.Equal(t, tt.class, p.Class, "problem: %s", p)
			require.Equal(t, tt.component, p.Service)
			require.Equal(t, tt.reason, p.Reason, "problem: %s", p)
			require.Equal(t, tt.workload, p.Workload, "the report names the workload")
			require.Equal(t, tt.pod, p.Pod)
			require.NotEmpty(t, p.Suggestion)
			require.Contains(t, res.Summary, "Rolled back to verified revision 1")

			h, err := d.Release().History(ctx)
			require.NoError(t, err)
			require.Len(t, h, 3)
			require.Equal(t, "failed", h[1].Status)
			require.Contains(t, h[1].Description, string(tt.class))
			require.True(t, h[2].Verified, "the rollback passed its gates")
			require.Equal(t, goodDigests, h[2].Images)
			for _, s := range res.Services {
				require.Equal(t, "available", s.Phase, s.Name)
				require.Equal(t, goodDigests[s.Name], s.Image, s.Name)
			}
			f.requireRuns(goodDigests, "1.0.0")
			for _, name := range []string{"monitoring-prometheus", "monitoring-alertmanager"} {
				require.NotContains(t, f.statefulSet(name).Spec.Template.Labels, testenv.FaultLabel, "%s: the bad template is gone", name)
			}
		})
	}
}

// monFault puts key=value in one component's podLabels or podAnnotations.
func monFault(component, field, key, value string) map[string]any {
	return map[string]any{component: map[string]any{field: map[string]any{key: value}}}
}

// TestMonitoringPreflightRefusesAnImageNotInTheRegistry: a Prometheus image that its registry does
// not serve is refused at preflight naming the component and the reference; nothing changes (no
// revision, the StatefulSet untouched, the lock never taken). An image for a component the stack
// does not have is refused before the registry is asked.
func TestMonitoringPreflightRefusesAnImageNotInTheRegistry(t *testing.T) {
	t.Parallel()
	f := newMonitoringFixture(t)
	ctx := context.Background()
	d := f.deployerAs("ci")
	good, goodDigests := f.publish("1.0.0")
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: good}))
	before := f.statefulSet("monitoring-prometheus")

	missing := f.reg.Repository("prometheus") + ":9.9.9"
	res := d.Deploy(ctx, deploy.Request{Images: map[string]string{"prometheus": missing}})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "service prometheus: image "+missing+" not found in its registry")
	require.Equal(t, "preflight/images", res.Steps[len(res.Steps)-1].Name)
	for _, s := range res.Steps {
		require.NotEqual(t, "preflight/lock", s.Name, "refused before the lock")
	}
	h, err := d.Release().History(ctx)
	require.NoError(t, err)
	require.Len(t, h, 1, "no revision")
	after := f.statefulSet("monitoring-prometheus")
	require.Equal(t, before.Generation, after.Generation, "the StatefulSet is untouched")
	f.requireRuns(goodDigests, "1.0.0")

	res = d.Deploy(ctx, deploy.Request{Images: map[string]string{"loki": f.reg.Repository("loki") + ":1.0.0"}})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "image given for component(s) [loki] that the environment does not deploy (known and enabled: [prometheus alertmanager grafana])")
}
