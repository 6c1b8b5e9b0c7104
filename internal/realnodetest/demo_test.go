package realnodetest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// TestDemoOnRealPods is `make demo`'s story on pods that really run, and
// what `make demo-real` shows (go test -v): the example images built and
// pushed to the node's registry, a healthy release verified through every
// gate, then a release whose auth-server image exits 1, caught from the
// real kubelet's CrashLoopBackOff and rolled back to the verified
// revision, then the history. Each report is printed as the CLI prints it.
func TestDemoOnRealPods(t *testing.T) {
	say := func(format string, args ...any) { t.Logf(format, args...) }
	show := func(d *deploy.Deployer, res *report.Result) {
		var b bytes.Buffer
		require.NoError(t, report.Table(&b, res, d.Redactor()))
		t.Log("\n" + b.String())
	}
	say("[1/4] a real node (containerd, kubelet, kube-proxy, kube-network-policies, CoreDNS) with the development bootstrap; MariaDB and Redis on the data-server address; the example API and SPA images pushed to the node's registry")
	w := newWorld(t, "development")
	ctx := context.Background()
	d := w.deployer()

	say("[2/4] deploy the example images to %q as the deployer ServiceAccount", w.ns)
	start := time.Now()
	res := d.Deploy(ctx, deploy.Request{Images: w.images, Values: w.with()})
	show(d, res)
	deploytest.RequireVerdict(t, report.Verified, res)
	say("verified in %.1fs: every pod Ready by its own probes, every API ready through a port-forward", time.Since(start).Seconds())

	say("[3/4] deploy an auth-server image that exits 1")
	crash := w.pushVariant(ctx, "auth-server", "demo-crash", func(c *v1.Config) {
		c.Entrypoint = []string{"node", "-e", `console.error("auth-server: cannot read settings, exiting"); process.exit(1)`}
	})
	start = time.Now()
	res = d.Deploy(ctx, deploy.Request{Images: with(w.images, "auth-server", crash), Values: w.with()})
	show(d, res)
	deploytest.RequireVerdict(t, report.RolledBack, res)
	p := problemOf(t, res, "auth-server", "auth-server")
	require.Contains(t, []gate.Class{gate.CrashLoop, gate.ExitError}, p.Class)
	require.NotEmpty(t, p.Pod)
	require.Contains(t, strings.Join(p.Logs, "\n"), "auth-server: cannot read settings, exiting")
	requireRendered(t, res, p.Pod, "auth-server: cannot read settings, exiting")
	w.requireRuns(ctx, "auth-server", w.images["auth-server"])
	say("rolled back to revision %d in %.1fs, the report quoting the container's own last line", res.RolledBackTo, time.Since(start).Seconds())

	say("[4/4] history: only revisions that passed every gate are verified")
	h := d.History(ctx)
	show(d, h)
	require.Len(t, h.History, 3)
}
