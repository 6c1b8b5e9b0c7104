package deploy_test

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/action"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// TestHelmRollbackToACrashLoopingRevision is what issue 12 found with the
// stock helm CLI: someone runs `helm rollback` to a revision that crash
// loops. status names the crash loop (pod, container, reason) instead of
// "0/1 progressing", and history does not credit the revision Helm made to
// the last person who deployed through the pipeline.
func TestHelmRollbackToACrashLoopingRevision(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.deployer("alice")
	ctx := context.Background()
	images := f.publish("1.0.0")
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: images}))
	res := d.Deploy(ctx, deploy.Request{Images: images, Values: fault("auth-server", testenv.FaultCrashLoop)})
	deploytest.RequireVerdict(t, report.RolledBack, res)
	require.Equal(t, 3, res.RollbackRevision)

	// `helm rollback krgeobuk-apps 2`, through Helm's own SDK as the CLI does.
	kc, err := kube.FromKubeconfig(f.kc, f.env.Namespace)
	require.NoError(t, err)
	helm := new(action.Configuration)
	require.NoError(t, helm.Init(kc.Getter(), f.env.Namespace, "secret", func(string, ...any) {}))
	rb := action.NewRollback(helm)
	rb.Version = 2
	require.NoError(t, rb.Run(f.env.Release))

	// Wait (bounded, watching) until the new pods show the crash loop.
	_, err = gate.WatchRollout(ctx, kc.Watch, gate.RolloutOptions{Namespace: f.env.Namespace, Release: f.env.Release,
		Workloads: []gate.Workload{{Service: "auth-server", Kind: gate.KindDeployment, Name: "auth-server"}}, Timeout: f.env.Gates.RolloutTimeout})
	var failure *gate.Failure
	require.ErrorAs(t, err, &failure)

	st := d.Status(ctx)
	deploytest.RequireVerdict(t, report.Reported, st)
	require.Equal(t, 4, st.Revision)
	require.NotEmpty(t, st.Problems, "status names what is wrong")
	p := st.Problems[0]
	require.Equal(t, gate.CrashLoop, p.Class)
	require.Equal(t, "auth-server", p.Service)
	require.Equal(t, "auth-server", p.Container)
	require.Equal(t, "CrashLoopBackOff", p.Reason)
	require.True(t, strings.HasPrefix(p.Pod, "auth-server-"), p.Pod)
	require.Contains(t, st.Summary, "CrashLoop in auth-server: pod "+p.Pod)
	for _, s := range st.Services {
		if s.Name == "auth-server" {
			require.Equal(t, string(gate.PhaseFailed), s.Phase)
		}
	}

	h := d.History(ctx).History
	require.Len(t, h, 4)
	tests := []struct {
		rev     int
		by      string
		outside bool
	}{
		{1, "alice", false},
		{2, "alice", false},
		{3, "alice", false}, // the pipeline's own rollback
		{4, "", true},       // helm rollback copied revision 2's labels
	}
	for _, tt := range tests {
		r := h[tt.rev-1]
		require.Equal(t, tt.by, r.DeployedBy, "revision %d", tt.rev)
		require.Equal(t, tt.outside, r.Outside, "revision %d", tt.rev)
	}
}

// TestControllerNotActingFailsFastTwice: with kube-controller-manager
// stopped nothing observes the new generation. The rollout gate gives up
// after the controller grace, naming the controller, instead of waiting out
// its timeout; the rollback is still applied (the controller rolls it out
// when it returns) and its gate is bounded by the same grace. So the run
// holds the lock about twice the grace, not twice the rollout timeout.
func TestControllerNotActingFailsFastTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Stopping the controller manager would stall every other test on the
	// shared cluster, so this test has a cluster of its own.
	c, err := testenv.Start(ctx, testenv.Options{Name: "no-controller", Dir: t.TempDir(), Log: os.Stderr})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Stop()) })
	f := newFixtureOn(t, c)
	f.env.Gates.ControllerGrace = 3 * time.Second
	d := f.deployer("ci")
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0")}))

	require.NoError(t, c.StopControllerManager(ctx))
	start := time.Now()
	res := d.Deploy(ctx, deploy.Request{Images: f.publish("2.0.0")})
	took := time.Since(start)
	deploytest.RequireVerdict(t, report.RollbackFailed, res)
	require.Less(t, took, f.env.Gates.RolloutTimeout, "bounded by the controller grace, not the rollout timeout")
	for _, ps := range [][]gate.Problem{res.Problems, res.RollbackProblems} {
		require.NotEmpty(t, ps)
		require.Equal(t, gate.ControllerNotActing, ps[0].Class)
		require.Contains(t, ps[0].Message, "the Deployment controller has not observed generation")
		require.Contains(t, ps[0].Message, "is kube-controller-manager running?")
		require.Contains(t, ps[0].Suggestion, "kube-controller-manager")
	}
	require.Equal(t, 1, res.RolledBackTo, "the rollback was applied all the same")

	// The controller returns: the next deploy goes through.
	require.NoError(t, c.StartControllerManager(ctx))
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: f.publish("3.0.0")}))
}

// TestDefaultActorWithoutUSER: cron jobs and containers often have no
// $USER; the revision is then credited to the OS user, not "unknown".
func TestDefaultActorWithoutUSER(t *testing.T) {
	t.Setenv("USER", "")
	host, err := os.Hostname()
	require.NoError(t, err)
	want := fmt.Sprintf("uid-%d", os.Getuid())
	if u, err := user.Current(); err == nil && u.Username != "" {
		want = u.Username
	}
	require.Equal(t, want+"@"+host, deploy.DefaultActor())
	require.NotContains(t, deploy.DefaultActor(), "unknown")
}

// TestTakeOverLockDeliberately: a lock held by a deploy on another machine
// that is known to be dead can be taken over on request instead of after
// its TTL; without the request the refusal says how.
func TestTakeOverLockDeliberately(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	holder := "bob (pid 7 on ci-runner-3, 2026-12-06T00:00:00Z)"
	secs := int32(60)
	now := metav1.NewMicroTime(time.Now())
	_, err := f.cs.CoordinationV1().Leases(f.env.Namespace).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: deploy.LockName},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now, AcquireTime: &now},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	d := f.deployer("alice")
	images := f.publish("1.0.0")

	res := d.Deploy(ctx, deploy.Request{Images: images})
	deploytest.RequireVerdict(t, report.Refused, res)
	require.Contains(t, res.Error, `is held by "`+holder+`": another deploy is running. It last renewed the lock at `)
	require.Contains(t, res.Error, "counts as stale at ")
	require.Contains(t, res.Error, "--take-over-lock")

	res = d.Deploy(ctx, deploy.Request{Images: images, TakeOverLock: true})
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Contains(t, strings.Join(res.Notes, "\n"), `The deploy lock was held by "`+holder+`": taken over deliberately while its lease was live until`)
}
