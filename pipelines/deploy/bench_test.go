package deploy_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// helmTimeout is Helm's default --timeout, used by both sides.
const helmTimeout = 5 * time.Minute

// benchWorld holds what both sides of a comparison share: the cluster, the
// development environment, a registry and stand-in readiness endpoints.
// Every measured run gets a namespace of its own.
type benchWorld struct {
	b   *testing.B
	c   *testenv.Cluster
	cs  kubernetes.Interface
	env *environment.Environment
	reg *deploytest.Registry
	app *deploytest.Apps
	mu  sync.Mutex
	n   int
}

func (w *benchWorld) namespace(prefix string) *environment.Environment {
	w.b.Helper()
	w.mu.Lock()
	w.n++
	ns := fmt.Sprintf("bench-%s-%d", prefix, w.n)
	w.mu.Unlock()
	if _, err := w.cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		w.b.Fatal(err)
	}
	w.b.Cleanup(func() { _ = w.cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	env := *w.env
	env.Namespace = ns
	return &env
}

func (w *benchWorld) publish(v string) map[string]string {
	refs, err := w.reg.Publish(v)
	if err != nil {
		w.b.Fatal(err)
	}
	return refs
}

// ours installs refs with our deploy in a fresh namespace and returns the
// deployer, ready for the measured run.
func (w *benchWorld) ours(refs map[string]string) *deploy.Deployer {
	d, err := deploy.New(deploy.Config{Kubeconfig: w.c.Kubeconfig(), Env: w.namespace("ours"), Endpoints: w.app, Actor: "bench"})
	if err != nil {
		w.b.Fatal(err)
	}
	if res := d.Deploy(context.Background(), deploy.Request{Images: refs}); res.Verdict != report.Verified {
		w.b.Fatalf("setup: %s: %s", res.Verdict, res.Summary)
	}
	return d
}

// helm installs refs with Helm's SDK (--wait) in a fresh namespace and
// returns an upgrade action over the same kubeconfig, plus the values for
// the measured run.
func (w *benchWorld) helm(refs map[string]string) (*action.Upgrade, *environment.Environment) {
	env := w.namespace("helm")
	kc, err := kube.FromKubeconfig(w.c.Kubeconfig(), env.Namespace)
	if err != nil {
		w.b.Fatal(err)
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(kc.Getter(), env.Namespace, "secret", func(string, ...any) {}); err != nil {
		w.b.Fatal(err)
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace, in.Wait, in.Timeout = env.Release, env.Namespace, true, helmTimeout
	if _, err := in.Run(chartOf(nil), pinnedValues(env, refs, nil)); err != nil {
		w.b.Fatal(err)
	}
	up := action.NewUpgrade(cfg)
	up.Namespace, up.Timeout = env.Namespace, helmTimeout
	return up, env
}

// oursCase measures our deploy of next (with values) after installing first.
func (w *benchWorld) oursCase(first, next map[string]string, values map[string]any, want report.Verdict, steps *[]report.Step) func(*testing.B) time.Duration {
	return func(b *testing.B) time.Duration {
		b.StopTimer()
		d := w.ours(first)
		b.StartTimer()
		start := time.Now()
		res := d.Deploy(context.Background(), deploy.Request{Images: next, Values: values})
		elapsed := time.Since(start)
		if res.Verdict != want {
			b.Fatalf("%s, want %s: %s", res.Verdict, want, res.Summary)
		}
		if steps != nil {
			*steps = res.Steps
		}
		return elapsed
	}
}

// helmCase measures Helm's upgrade of next (with values) after installing
// first; atomic selects --atomic, otherwise --wait.
func (w *benchWorld) helmCase(first, next map[string]string, values map[string]any, atomic bool) func(*testing.B) time.Duration {
	return func(b *testing.B) time.Duration {
		b.StopTimer()
		up, env := w.helm(first)
		up.Wait, up.Atomic = true, atomic
		b.StartTimer()
		start := time.Now()
		_, err := up.Run(env.Release, chartOf(nil), pinnedValues(env, next, values))
		elapsed := time.Since(start)
		switch {
		case atomic && (err == nil || !strings.Contains(err.Error(), "rolled back")):
			b.Fatalf("helm --atomic should have rolled back, got %v", err)
		case !atomic && err != nil:
			b.Fatal(err)
		}
		return elapsed
	}
}

// BenchmarkDeploy compares our gated deploy with Helm's SDK on the same
// cluster, chart, values and timeout, and prints the ratios. Run it with
// `make bench-deploy` (-benchtime=1x: Helm's --atomic side waits out its
// 5-minute timeout).
func BenchmarkDeploy(b *testing.B) {
	c := testenv.Shared(b)
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		b.Fatal(err)
	}
	env, err := environment.Load(k8s.Environments, "development")
	if err != nil {
		b.Fatal(err)
	}
	env.Gates.RolloutTimeout = helmTimeout
	w := &benchWorld{b: b, c: c, cs: cs, env: env, reg: deploytest.NewRegistry(), app: deploytest.NewApps(cs)}
	defer w.reg.Close()
	defer w.app.Close()
	v1, v2 := w.publish("1.0.0"), w.publish("2.0.0")
	crash := fault("auth-server", testenv.FaultCrashLoop)

	took := map[string]time.Duration{}
	measure := func(name string, fn func(b *testing.B) time.Duration) {
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				total += fn(b)
			}
			took[name] = total / time.Duration(b.N)
			b.ReportMetric(took[name].Seconds(), "s/deploy")
		})
	}
	var crashSteps []report.Step
	measure("crashloop/ours", w.oursCase(v1, v2, crash, report.RolledBack, &crashSteps))
	measure("crashloop/helm-atomic", w.helmCase(v1, v2, crash, true))
	measure("healthy/ours", w.oursCase(v1, v2, nil, report.Verified, nil))
	measure("healthy/helm-wait", w.helmCase(v1, v2, nil, false))
	measure("noop/ours", w.oursCase(v1, v1, nil, report.Unchanged, nil))
	measure("noop/helm-wait", w.helmCase(v1, v1, nil, false))

	fmt.Fprintln(os.Stdout)
	fmt.Fprintln(os.Stdout, "deploy comparison (same cluster, chart, values; timeout", helmTimeout, "on both sides)")
	for _, cmp := range []struct{ what, ours, helm string }{
		{"crash-loop upgrade until the previous revision serves again", "crashloop/ours", "crashloop/helm-atomic"},
		{"healthy upgrade of all four services", "healthy/ours", "healthy/helm-wait"},
		{"no-op deploy (same images and values)", "noop/ours", "noop/helm-wait"},
	} {
		o, h := took[cmp.ours], took[cmp.helm]
		if o == 0 || h == 0 {
			continue // filtered out by -bench
		}
		fmt.Fprintf(os.Stdout, "  %-62s ours %8.2fs  helm %8.2fs  ours/helm %6.1f%%\n", cmp.what, o.Seconds(), h.Seconds(), 100*o.Seconds()/h.Seconds())
	}
	if len(crashSteps) > 0 {
		fmt.Fprint(os.Stdout, "  where ours spent the crash-loop case:")
		for _, s := range crashSteps {
			fmt.Fprintf(os.Stdout, " %s %.2fs;", s.Name, time.Duration(s.Duration).Seconds())
		}
		fmt.Fprintln(os.Stdout)
	}
}
