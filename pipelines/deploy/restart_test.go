package deploy_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// The API server goes away while the gates watch and comes back: the
// watches resume, the verdict is the right one, and it is recorded.
func TestAPIServerRestartMidDeploy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Restarting the API server would disturb the other tests' shared
	// cluster, so this test has one of its own.
	c, err := testenv.Start(ctx, testenv.Options{Name: "restart", Dir: t.TempDir(), Log: os.Stderr})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Stop()) })
	f := newFixtureOn(t, c)
	f.env.LockTTL = 30 * time.Second
	d := f.deployer("ci")
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: f.publish("1.0.0")}))

	restartDuring := func(values map[string]any, version string) *report.Result {
		f.drain()
		done := make(chan *report.Result, 1)
		go func() { done <- d.Deploy(ctx, deploy.Request{Images: f.publish(version), Values: values}) }()
		waitForStep(t, f, "gate/rollout")
		require.NoError(t, c.StopAPIServer(ctx))
		require.NoError(t, c.StartAPIServer(ctx))
		return <-done
	}

	slow := values.Merge(fault("auth-server", testenv.FaultSlowReady),
		svcValues("auth-server", map[string]any{"podAnnotations": map[string]any{testenv.ReadyAfterAnnotation: "3s"}}))
	res := restartDuring(slow, "2.0.0")
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Equal(t, 2, res.Revision)
	require.True(t, f.history(d)[1].Verified)

	res = restartDuring(fault("authz-server", testenv.FaultCrashLoop), "3.0.0")
	deploytest.RequireVerdict(t, report.RolledBack, res)
	require.Equal(t, gate.CrashLoop, res.Problems[0].Class)
	require.Equal(t, 2, res.RolledBackTo)
	h := f.history(d)
	require.Len(t, h, 4)
	require.True(t, h[3].Verified)
}
