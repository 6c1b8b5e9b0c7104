package deploy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// history reads the release history the way `krgeobuk history` does.
func (f *fixture) history(d *deploy.Deployer) []release.Revision {
	f.t.Helper()
	h, err := d.Release().History(context.Background())
	require.NoError(f.t, err)
	return h
}

// podTemplateLabels returns the live Deployment's pod template labels.
func (f *fixture) podTemplate(service string) (map[string]string, map[string]string, string) {
	f.t.Helper()
	dep, err := f.cs.AppsV1().Deployments(f.env.Namespace).Get(context.Background(), service, metav1.GetOptions{})
	require.NoError(f.t, err)
	return dep.Spec.Template.Labels, dep.Spec.Template.Annotations, dep.Spec.Template.Spec.Containers[0].Image
}

func TestGoodDeployThenNoOpThenStatusAndHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.deployer("alice")
	images := f.publish("1.0.0")
	ctx := context.Background()

	res := d.Deploy(ctx, deploy.Request{Images: images})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 1, res.Revision)
	require.Len(t, res.Services, 4)
	for _, s := range res.Services {
		require.Equal(t, "available", s.Phase, s.Name)
		require.Equal(t, s.Desired, s.Ready, s.Name)
		require.Equal(t, images[s.Name], s.Image, s.Name)
		if s.Name == "auth-server" || s.Name == "authz-server" {
			require.Equal(t, "ready", s.Readiness, s.Name)
		}
	}
	_, _, image := f.podTemplate("auth-server")
	require.Equal(t, images["auth-server"], image, "the Deployment runs the image pinned by digest")
	h := f.history(d)
	require.Len(t, h, 1)
	require.True(t, h[0].Verified)
	require.Equal(t, "alice", h[0].DeployedBy)
	require.Equal(t, images, h[0].Images)
	// The lock was released.
	lease, err := f.cs.CoordinationV1().Leases(f.env.Namespace).Get(ctx, deploy.LockName, metav1.GetOptions{})
	require.NoError(t, err)
	require.Nil(t, lease.Spec.HolderIdentity)

	// Same images, same values: nothing changes, and the report says so.
	res = d.Deploy(ctx, deploy.Request{Images: images})
	deploytest.RequireVerdict(t, report.Unchanged, res)
	require.Contains(t, res.Summary, "equal the verified revision 1")
	require.Len(t, f.history(d), 1, "a no-op deploy creates no revision")
	require.Len(t, res.Services, 4)
	require.Equal(t, "available", res.Services[0].Phase)

	// A new image is a change.
	next := f.publish("1.0.1")
	res = d.Deploy(ctx, deploy.Request{Images: next})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 2, res.Revision)

	st := d.Status(ctx)
	deploytest.RequireVerdict(t, report.Reported, st)
	require.Equal(t, 2, st.Revision)
	require.Contains(t, st.Summary, "Revision 2 is deployed and verified")
	require.Len(t, st.Services, 4)

	hist := d.History(ctx)
	deploytest.RequireVerdict(t, report.Reported, hist)
	require.Len(t, hist.History, 2)
	require.Equal(t, "superseded", hist.History[0].Status)
	require.Equal(t, next["portal-client"], hist.History[1].Images["portal-client"])
	require.Contains(t, hist.Summary, "2 revisions, 2 verified")
}

// Each failure class is caught, named with its pod and reason, and the
// release returns to the verified revision, gated again.
func TestFailureClassesRollBackToVerified(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		values  map[string]any
		class   gate.Class
		reasons []string // any of these
		pod     bool     // the problem names a pod of the failed service
	}{
		{name: "crashloop", values: fault("auth-server", testenv.FaultCrashLoop), class: gate.CrashLoop, reasons: []string{"CrashLoopBackOff"}, pod: true},
		{name: "image-pull", values: fault("authz-server", testenv.FaultImagePull), class: gate.ImagePull, reasons: []string{"ErrImagePull", "ImagePullBackOff"}, pod: true},
		{name: "exit-error", values: fault("portal-client", testenv.FaultExitError), class: gate.ExitError, reasons: []string{"Error"}, pod: true},
		{name: "unschedulable", values: svcValues("auth-client", map[string]any{"nodeSelector": map[string]any{testenv.UnschedulableSelectorKey: "nowhere"}}),
			class: gate.Unschedulable, reasons: []string{"Unschedulable"}, pod: true},
		{name: "readiness-endpoint", values: svcValues("auth-server", map[string]any{"podAnnotations": map[string]any{deploytest.ReadinessAnnotation: "fail"}}),
			class: gate.ReadinessEndpoint, reasons: []string{"HTTP 503"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			d := f.deployer("ci")
			ctx := context.Background()
			good := f.publish("1.0.0")
			deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: good}))

			res := d.Deploy(ctx, deploy.Request{Images: f.publish("2.0.0"), Values: tt.values})
			deploytest.RequireVerdict(t, report.RolledBack, res)
			require.Equal(t, 2, res.Revision)
			require.Equal(t, 1, res.RolledBackTo)
			require.Equal(t, 3, res.RollbackRevision)
			require.NotEmpty(t, res.Problems)
			p := res.Problems[0]
			require.Equal(t, tt.class, p.Class, "problem: %s", p)
			require.Contains(t, tt.reasons, p.Reason, "problem: %s", p)
			require.NotEmpty(t, p.Suggestion)
			svc := serviceOf(tt.values)
			require.Equal(t, svc, p.Service)
			if tt.pod {
				require.True(t, strings.HasPrefix(p.Pod, svc+"-"), "problem names the pod: %s", p)
			}
			require.Contains(t, res.Summary, "Rolled back to verified revision 1")

			h := f.history(d)
			require.Len(t, h, 3)
			require.Equal(t, "failed", h[1].Status, "the failed revision is marked failed in Helm's history")
			require.Contains(t, h[1].Description, string(tt.class))
			require.False(t, h[1].Verified)
			require.True(t, h[2].Verified, "the rollback revision passed its gates")
			require.Equal(t, "deployed", h[2].Status)
			require.Equal(t, good, h[2].Images, "revision 3 runs revision 1's images")
			for _, s := range res.Services {
				require.Equal(t, "available", s.Phase, s.Name)
				require.Equal(t, good[s.Name], s.Image)
			}
			_, _, image := f.podTemplate(svc)
			require.Equal(t, good[svc], image, "the cluster runs the verified images again")
		})
	}
}

func serviceOf(values map[string]any) string {
	for name := range values["services"].(map[string]any) {
		return name
	}
	return ""
}

func TestNeverReadyTimesOutAndRollsBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.env.Gates.RolloutTimeout = 10 * time.Second
	d := f.deployer("ci")
	ctx := context.Background()
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0")}))
	res := d.Deploy(ctx, deploy.Request{Images: f.publish("2.0.0"), Values: fault("auth-server", testenv.FaultNeverReady)})
	deploytest.RequireVerdict(t, report.RolledBack, res)
	require.Len(t, res.Problems, 1)
	p := res.Problems[0]
	require.Equal(t, gate.NotReady, p.Class)
	require.True(t, strings.HasPrefix(p.Pod, "auth-server-"), "%s", p)
	require.Contains(t, res.Summary, "rollout gate")
	var rollout report.Step
	for _, s := range res.Steps {
		if s.Name == "gate/rollout" {
			rollout = s
		}
	}
	require.Contains(t, rollout.Detail, "rollout gate timed out")
}

func TestFailedFirstInstallIsUninstalledWithDiagnostics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.deployer("ci")
	ctx := context.Background()
	res := d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0"), Values: fault("auth-server", testenv.FaultCrashLoop)})
	deploytest.RequireVerdict(t, report.Uninstalled, res)
	require.Equal(t, 1, res.Revision)
	require.NotEmpty(t, res.Problems)
	require.Equal(t, gate.CrashLoop, res.Problems[0].Class)
	require.True(t, strings.HasPrefix(res.Problems[0].Pod, "auth-server-"))
	require.NotEmpty(t, res.Problems[0].Events, "the pod's events are kept in the report")
	require.Empty(t, f.history(d), "the release is gone")
	deps, err := f.cs.AppsV1().Deployments(f.env.Namespace).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, deps.Items, "its workloads are gone")

	// The next, good, deploy is a clean first install.
	res = d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.1")})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 1, res.Revision)
}

// A revision applied without gates (plain Helm) that breaks is never a
// rollback target: rollback skips it for the newest verified one.
func TestRollbackSkipsUnverifiedRevision(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.deployer("ci")
	ctx := context.Background()
	good := f.publish("1.0.0")
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: good}))

	// Revision 2: someone ran helm upgrade by hand with a broken image.
	values := pinnedValues(f.env, f.publish("1.5.0"), fault("auth-server", testenv.FaultCrashLoop))
	rev, err := d.Release().Apply(ctx, chartOf(t), values, release.ApplyOptions{DeployedBy: "someone-by-hand"})
	require.NoError(t, err)
	require.Equal(t, 2, rev.Number)

	res := d.Deploy(ctx, deploy.Request{Images: f.publish("3.0.0"), Values: fault("authz-server", testenv.FaultExitError)})
	deploytest.RequireVerdict(t, report.RolledBack, res)
	require.Equal(t, 3, res.Revision)
	require.Equal(t, 1, res.RolledBackTo, "rollback goes to the newest VERIFIED revision, not current-1")
	require.Equal(t, 4, res.RollbackRevision)
	h := f.history(d)
	require.Equal(t, good, h[3].Images)
	require.True(t, h[3].Verified)
	labels, _, _ := f.podTemplate("auth-server")
	require.NotContains(t, labels, testenv.FaultLabel, "the broken revision 2 is not what runs")
}

func TestStuckPendingReleaseIsRecovered(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.deployer("ci")
	ctx := context.Background()
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0")}))

	// A deployer died mid-upgrade: revision 2 is pending-upgrade and its
	// lock has expired.
	stuck := f.publish("1.1.0")
	rev, err := d.Release().Apply(ctx, chartOf(t), pinnedValues(f.env, stuck, nil), release.ApplyOptions{DeployedBy: "crashed-ci-job"})
	require.NoError(t, err)
	setStatus(t, f, 2, "pending-upgrade")
	staleLease(t, f, "crashed-ci-job")
	require.Equal(t, 2, rev.Number)

	res := d.Deploy(ctx, deploy.Request{Images: f.publish("1.2.0")})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 3, res.Revision)
	notes := strings.Join(res.Notes, "\n")
	require.Contains(t, notes, `Revision 2 was stuck in pending-upgrade; its deploy (lock holder "crashed-ci-job") is gone, so it was marked failed`)
	require.Contains(t, notes, `took the lock over`)
	h := f.history(d)
	// Helm supersedes it on the next successful upgrade; the record keeps why.
	require.Equal(t, "superseded", h[1].Status)
	require.Contains(t, h[1].Description, "pending-upgrade; marked failed by deploy recovery")
	require.True(t, h[2].Verified)
}

func TestConcurrentDeployIsRefusedNamingTheHolder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	first := f.deployer("alice")
	deploytest.RequireVerdict(t, report.Verified, first.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0")}))

	// Alice's second deploy is slow to become ready; while its gate waits,
	// Bob deploys.
	slow := values.Merge(fault("auth-server", testenv.FaultSlowReady),
		svcValues("auth-server", map[string]any{"podAnnotations": map[string]any{testenv.ReadyAfterAnnotation: "10s"}}))
	done := make(chan *report.Result, 1)
	f.drain()
	go func() { done <- first.Deploy(ctx, deploy.Request{Images: f.publish("2.0.0"), Values: slow}) }()
	waitForStep(t, f, "gate/rollout")

	bob := f.deployer("bob")
	res := bob.Deploy(ctx, deploy.Request{Images: f.publish("3.0.0")})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "is held by \"alice (pid")
	require.NotNil(t, res.Lock)
	require.True(t, strings.HasPrefix(res.Lock.Holder, "alice "), res.Lock.Holder)
	require.Contains(t, res.Summary, "Refused before anything changed")

	alice := <-done
	deploytest.RequireVerdict(t, report.Verified, alice)
	require.Equal(t, 2, alice.Revision)
	require.Len(t, f.history(first), 2, "bob's refused deploy created no revision")
}

func TestStaleLockIsTakenOver(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	staleLease(t, f, "ghost-job")
	res := f.deployer("ci").Deploy(context.Background(), deploy.Request{Images: f.publish("1.0.0")})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Contains(t, strings.Join(res.Notes, "\n"), `The deploy lock was held by "ghost-job": its lease expired`)
}

func TestCancelledDeployReleasesLockAndIsRecoverable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	d := f.deployer("ci")
	good := f.publish("1.0.0")
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: good}))

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan *report.Result, 1)
	f.drain()
	go func() {
		done <- d.Deploy(cctx, deploy.Request{Images: f.publish("2.0.0"), Values: fault("auth-server", testenv.FaultNeverReady)})
	}()
	waitForStep(t, f, "gate/rollout")
	cancel()
	res := <-done
	deploytest.RequireVerdict(t, report.Cancelled, res)
	require.Contains(t, res.Summary, "revision 2 was applied but is not verified")
	lease, err := f.cs.CoordinationV1().Leases(f.env.Namespace).Get(ctx, deploy.LockName, metav1.GetOptions{})
	require.NoError(t, err)
	require.Nil(t, lease.Spec.HolderIdentity, "the lock is released")

	// Recoverable: a manual rollback returns to the verified revision 1.
	rb := d.Rollback(ctx, deploy.RollbackRequest{})
	deploytest.RequireVerdict(t, report.Verified, rb)
	require.Equal(t, 1, rb.RolledBackTo)
	require.Equal(t, 3, rb.Revision)
	_, _, image := f.podTemplate("auth-server")
	require.Equal(t, good["auth-server"], image)
}

func TestManualRollback(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	d := f.deployer("ci")
	v1 := f.publish("1.0.0")
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: v1}))
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: f.publish("2.0.0")}))
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: f.publish("3.0.0")}))
	// Revision 4 unverified: applied by hand.
	_, err := d.Release().Apply(ctx, chartOf(t), pinnedValues(f.env, f.publish("4.0.0"), nil), release.ApplyOptions{})
	require.NoError(t, err)

	refusals := []struct {
		req  deploy.RollbackRequest
		want string
	}{
		{deploy.RollbackRequest{Revision: 9}, "revision 9 does not exist (history holds 1..4)"},
		{deploy.RollbackRequest{Revision: 4}, "revision 4 is the current revision"},
		{deploy.RollbackRequest{Revision: -1}, "revision -1 does not exist"},
	}
	for _, r := range refusals {
		res := d.Rollback(ctx, r.req)
		deploytest.RequireVerdict(t, report.Refused, res)
		require.Contains(t, res.Error, r.want)
	}

	res := d.Rollback(ctx, deploy.RollbackRequest{Revision: 1})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 1, res.RolledBackTo)
	require.Equal(t, 5, res.Revision)
	h := f.history(d)
	require.Len(t, h, 5)
	require.True(t, h[4].Verified)
	require.Equal(t, v1, h[4].Images)
	_, _, image := f.podTemplate("authz-server")
	require.Equal(t, v1["authz-server"], image)

	// Revision 4 was never verified: refused unless forced.
	res = d.Rollback(ctx, deploy.RollbackRequest{Revision: 4})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "revision 4 was never verified; pass --force")
	res = d.Rollback(ctx, deploy.RollbackRequest{Revision: 4, Force: true})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 6, res.Revision)

	// No target given: the newest verified revision older than the current.
	res = d.Rollback(ctx, deploy.RollbackRequest{})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 5, res.RolledBackTo)
}

func TestRegistryThatAnswers503IsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	images := f.publish("1.0.0")
	f.reg.Fail503(3)
	before := f.reg.ManifestReads()
	res := f.deployer("ci").Deploy(context.Background(), deploy.Request{Images: images})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, int64(4+3), f.reg.ManifestReads()-before, "four images, three 503s retried")
}

func TestMissingImageIsRefusedBeforeAnythingChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	images := f.publish("1.0.0")
	missing := f.reg.Repository("authz-server") + "@sha256:" + strings.Repeat("ab", 32)
	images["authz-server"] = missing
	d := f.deployer("ci")
	res := d.Deploy(context.Background(), deploy.Request{Images: images})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, "service authz-server: image "+missing+" not found in its registry")
	require.Empty(t, f.history(d), "no release was created")
	_, err := f.cs.CoordinationV1().Leases(f.env.Namespace).Get(context.Background(), deploy.LockName, metav1.GetOptions{})
	require.Error(t, err, "the lock was never taken")
}

func TestPreflightRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	images := f.publish("1.0.0")
	tests := []struct {
		name   string
		mutate func(req *deploy.Request, env *deploy.Config)
		step   string
		want   string
	}{
		{name: "image missing for a service", step: "preflight/images", want: "no image given for enabled service(s) [portal-client]",
			mutate: func(req *deploy.Request, _ *deploy.Config) { delete(req.Images, "portal-client") }},
		{name: "image for a disabled service", step: "preflight/images", want: "image given for service(s) [auth-client] that the environment does not deploy",
			mutate: func(req *deploy.Request, _ *deploy.Config) {
				req.Values = svcValues("auth-client", map[string]any{"enabled": false})
			}},
		{name: "schema violation", step: "preflight/render", want: "replicas",
			mutate: func(req *deploy.Request, _ *deploy.Config) {
				req.Values = svcValues("auth-server", map[string]any{"replicas": "two"})
			}},
		{name: "policy rule broken", step: "preflight/policy", want: "policy violation(s)",
			mutate: func(_ *deploy.Request, cfg *deploy.Config) { cfg.Chart = withRogueDeployment(t) }},
		{name: "namespace missing fails the server-side dry run", step: "preflight/dry-run", want: `namespaces "no-such-namespace" not found`,
			mutate: func(_ *deploy.Request, cfg *deploy.Config) {
				env := *cfg.Env
				env.Namespace = "no-such-namespace"
				cfg.Env = &env
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := deploy.Request{Images: map[string]string{}}
			for k, v := range images {
				req.Images[k] = v
			}
			cfg := deploy.Config{Kubeconfig: f.kc, Env: f.env, Endpoints: f.apps}
			tt.mutate(&req, &cfg)
			d, err := deploy.New(cfg)
			require.NoError(t, err)
			res := d.Deploy(context.Background(), req)
			deploytest.RequireVerdict(t, report.Refused, res)
			last := res.Steps[len(res.Steps)-1]
			require.Equal(t, tt.step, last.Name)
			require.Equal(t, "failed", last.Status)
			require.Contains(t, res.Error, tt.want)
			require.Empty(t, f.history(d))
		})
	}
}

// withRogueDeployment is the embedded chart plus a Deployment that keeps no
// rule: no probes, no resources, no security context, an image by tag. The
// schema and the API server accept it; only the policy rules refuse it.
func withRogueDeployment(t *testing.T) *chart.Chart {
	ch := chartOf(t)
	ch.Templates = append(ch.Templates, &chart.File{Name: "templates/rogue.yaml", Data: []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: rogue
spec:
  selector: {matchLabels: {app: rogue}}
  template:
    metadata: {labels: {app: rogue}}
    spec:
      containers:
        - name: rogue
          image: busybox:latest
`)})
	return ch
}

// A secret that reaches a message (here: a readiness body echoing the
// database password) never shows in the JSON, table, Markdown or log, nor
// do the kubeconfig's credentials.
func TestSecretsNeverReachReportsOrLogs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const password = "s3cr3t-db-password-1234"
	f.apps.SetFailBody("Access denied for user 'krgeobuk'@'10.0.0.1' (using password: " + password + ")")
	d := f.deployer("ci")
	ctx := context.Background()
	secretValues := svcValues("auth-server", map[string]any{"secret": map[string]any{"values": map[string]any{"MYSQL_PASSWORD": password}}})
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0"), Values: secretValues}))
	bad := values.Merge(secretValues, svcValues("auth-server", map[string]any{"podAnnotations": map[string]any{deploytest.ReadinessAnnotation: "fail"}}))
	res := d.Deploy(ctx, deploy.Request{Images: f.publish("2.0.0"), Values: bad})
	deploytest.RequireVerdict(t, report.RolledBack, res)
	require.Equal(t, gate.ReadinessEndpoint, res.Problems[0].Class)
	require.Contains(t, res.Problems[0].Message, "Access denied", "the message itself is kept")

	outputs := map[string]string{"log": f.log.String()}
	for name, render := range map[string]func(*strings.Builder) error{
		"json":     func(b *strings.Builder) error { return report.JSON(b, res, d.Redactor()) },
		"table":    func(b *strings.Builder) error { return report.Table(b, res, d.Redactor()) },
		"markdown": func(b *strings.Builder) error { return report.Markdown(b, res, d.Redactor()) },
	} {
		var b strings.Builder
		require.NoError(t, render(&b))
		outputs[name] = b.String()
	}
	secrets := append(report.SecretsFromKubeconfig(f.kc), password, "dev-only-password")
	for name, out := range outputs {
		require.Contains(t, out, "Access denied", name)
		for _, s := range secrets {
			if len(s) >= 4 {
				require.NotContains(t, out, s, "%s leaks a secret", name)
			}
		}
		if name != "log" {
			require.Contains(t, out, report.Redacted, name)
		}
	}
}

func waitForStep(t *testing.T, f *fixture, step string) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev := <-f.events:
			if ev.Step == step && ev.Status == "start" {
				return
			}
		case <-timeout:
			t.Fatalf("step %s never started", step)
		}
	}
}
