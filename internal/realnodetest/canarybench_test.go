package realnodetest_test

import (
	"context"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// BenchmarkBadReleaseCanaryVsFullRollout measures what a release whose
// auth-server fails half its requests costs the callers, shipped two ways on
// the real node with the same analysis (the monitoring stack's Prometheus,
// 20 s window, a look every 2 s) and the same traffic through the Service:
//
//   - canary: the new pods first run as a one-pod canary beside the stable
//     pod, the fault switch on the canary only;
//   - full-rollout: no canary step, the new pods replace the stable one with
//     the fault switch on them.
//
// Both are rolled back by the analysis gate. Reported: the share of the
// requests sent during the deploy that failed, and how many failed. `make
// bench-canary` runs it.
func BenchmarkBadReleaseCanaryVsFullRollout(b *testing.B) {
	for _, bc := range []struct {
		name   string
		canary bool
	}{{"canary", true}, {"full-rollout", false}} {
		b.Run(bc.name, func(b *testing.B) {
			var failed, total int
			for i := range b.N {
				b.StopTimer()
				cw := newCanaryWorld(b)
				w := cw.w
				faults := map[string]any{"errorRatio": 0.5}
				svc := map[string]any{"faults": faults}
				if bc.canary {
					svc = map[string]any{"canary": map[string]any{"faults": faults}}
				} else {
					w.env.Analysis.Canary = nil
				}
				bad := w.pushVariant(context.Background(), "auth-server", "bench-bad-"+bc.name, func(c *v1.Config) {
					c.Labels = map[string]string{"krgeobuk.bench/run": string(rune('a' + i))}
				})
				d := w.deployer()
				cw.load.counts()
				b.StartTimer()
				res := d.Deploy(context.Background(), deploy.Request{Images: with(w.images, "auth-server", bad),
					Values: w.with(cw.scraped, map[string]any{"services": map[string]any{"auth-server": svc}})})
				b.StopTimer()
				seen, unanswered, _ := cw.load.counts()
				if res.Verdict != report.RolledBack {
					b.Fatalf("%s, want rolled back: %s", res.Verdict, res.Summary)
				}
				for code, n := range seen {
					total += n
					if code >= 500 {
						failed += n
					}
				}
				total += unanswered
				failed += unanswered
			}
			b.ReportMetric(float64(failed)/float64(total), "failed-share")
			b.ReportMetric(float64(failed)/float64(b.N), "failed-requests/op")
			b.ReportMetric(float64(total)/float64(b.N), "requests/op")
		})
	}
}
