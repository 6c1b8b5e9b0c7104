package realnodetest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/krgeobuk/krgeobuk-infra/charts"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

// benchTimeout bounds both sides alike: our rollout gate and Helm's
// --timeout.
const benchTimeout = 2 * time.Minute

// BenchmarkRealNodeDeploy compares our gated deploy with Helm's SDK
// (--wait, and --atomic for the failing release) on the real node: the
// same chart, values, images, stores and timeout, each run in a namespace
// of its own, reported side by side. `make bench-realnode` runs it.
//
//   - healthy: an upgrade of auth-server to a new image that starts and
//     becomes ready;
//   - crash-loop: an upgrade to an image that exits 1, rolled back (ours:
//     as soon as the kubelet reports CrashLoopBackOff; Helm --atomic: when
//     --timeout has passed).
func BenchmarkRealNodeDeploy(b *testing.B) {
	for _, bc := range []struct {
		name   string
		change func(*v1.Config)
		want   report.Verdict
	}{
		{"healthy", func(c *v1.Config) { c.Env = append(c.Env, "BENCH_REVISION=2") }, report.Verified},
		{"crash-loop", func(c *v1.Config) { c.Entrypoint = []string{"node", "-e", "process.exit(1)"} }, report.RolledBack},
	} {
		b.Run(bc.name+"/ours", func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				w := newBenchWorld(b)
				d := w.deployer()
				if res := d.Deploy(context.Background(), deploy.Request{Images: w.images, Values: w.with()}); res.Verdict != report.Verified {
					b.Fatalf("setup: %s: %s", res.Verdict, res.Summary)
				}
				next := with(w.images, "auth-server", w.pushVariant(context.Background(), "auth-server", "bench-"+bc.name, bc.change))
				b.StartTimer()
				res := d.Deploy(context.Background(), deploy.Request{Images: next, Values: w.with()})
				b.StopTimer()
				if res.Verdict != bc.want {
					b.Fatalf("%s, want %s: %s", res.Verdict, bc.want, res.Summary)
				}
			}
		})
		b.Run(bc.name+"/helm", func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				w := newBenchWorld(b)
				cfg := w.helmConfig()
				in := action.NewInstall(cfg)
				in.ReleaseName, in.Namespace, in.Wait, in.Timeout = w.env.Release, w.ns, true, benchTimeout
				if _, err := in.Run(appsChart(), w.pinned(w.images)); err != nil {
					b.Fatal(err)
				}
				next := with(w.images, "auth-server", w.pushVariant(context.Background(), "auth-server", "bench-"+bc.name, bc.change))
				up := action.NewUpgrade(cfg)
				up.Namespace, up.Timeout, up.Wait = w.ns, benchTimeout, true
				up.Atomic = bc.want == report.RolledBack
				b.StartTimer()
				_, err := up.Run(w.env.Release, appsChart(), w.pinned(next))
				b.StopTimer()
				switch {
				case up.Atomic && (err == nil || !strings.Contains(err.Error(), "rolled back")):
					b.Fatalf("helm --atomic should have rolled back, got %v", err)
				case !up.Atomic && err != nil:
					b.Fatal(err)
				}
			}
		})
	}
}

// newBenchWorld is a world for a benchmark: the same bootstrap, stores and
// images as the tests, with both sides' timeout.
func newBenchWorld(b *testing.B) *world {
	b.Helper()
	w := newWorld(b, "development")
	w.env.Gates.RolloutTimeout = benchTimeout
	return w
}

// helmConfig is Helm's SDK over the deployer's kubeconfig.
func (w *world) helmConfig() *action.Configuration {
	kc, err := kube.FromKubeconfig(w.kc, w.ns)
	if err != nil {
		w.t.Fatal(err)
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(kc.Getter(), w.ns, "secret", func(string, ...any) {}); err != nil {
		w.t.Fatal(err)
	}
	return cfg
}

// pinned are the values a deploy hands Helm: the environment's, the
// stores', then each image by digest.
func (w *world) pinned(refs map[string]string) map[string]any {
	pins := map[string]values.Image{}
	for svc, ref := range refs {
		repo, digest, _ := strings.Cut(ref, "@")
		pins[svc] = values.Image{Repository: repo, Digest: digest}
	}
	return values.Layer(w.env.Values, w.with(), pins)
}

func appsChart() *chart.Chart {
	ch, err := render.LoadFS(charts.Apps, charts.AppsDir)
	if err != nil {
		panic(err) // the embedded chart always loads; the chart tests say why if not
	}
	return ch
}
