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

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// helmTimeout is Helm's default --timeout, used by both sides.
const helmTimeout = 5 * time.Minute

// benchWorld is one namespace with the development environment, a
// registry and stand-in readiness endpoints, shared by both sides of a
// comparison (each side gets its own namespace).
type benchWorld struct {
	b   *testing.B
	c   *testenv.Cluster
	cs  kubernetes.Interface
	env *environment.Environment
	reg *deploytest.Registry
	app *deploytest.Apps
	n   int
	mu  sync.Mutex
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

func (w *benchWorld) ours(env *environment.Environment) *deploy.Deployer {
	d, err := deploy.New(deploy.Config{Kubeconfig: w.c.Kubeconfig(), Env: env, Endpoints: w.app, Actor: "bench"})
	if err != nil {
		w.b.Fatal(err)
	}
	return d
}

// helm returns Helm's own configuration over the same kubeconfig.
func (w *benchWorld) helm(env *environment.Environment) *action.Configuration {
	kc, err := kube.FromKubeconfig(w.c.Kubeconfig(), env.Namespace)
	if err != nil {
		w.b.Fatal(err)
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(kc.Getter(), env.Namespace, "secret", func(string, ...any) {}); err != nil {
		w.b.Fatal(err)
	}
	return cfg
}

// helmValues are the values our deploy would give Helm: environment,
// overrides, image digests.
func (w *benchWorld) helmValues(env *environment.Environment, refs map[string]string, over map[string]any) map[string]any {
	values := mergeValues(mergeValues(env.Values, nil), over)
	for svc, ref := range refs {
		repo, digest, _ := strings.Cut(ref, "@")
		values = mergeValues(values, svcValues(svc, map[string]any{"image": map[string]any{"repository": repo, "digest": digest, "tag": ""}}))
	}
	return values
}

func (w *benchWorld) publish(v string) map[string]string {
	refs, err := w.reg.Publish(v)
	if err != nil {
		w.b.Fatal(err)
	}
	return refs
}

func (w *benchWorld) helmInstall(cfg *action.Configuration, env *environment.Environment, refs map[string]string) {
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace, in.Wait, in.Timeout = env.Release, env.Namespace, true, helmTimeout
	if _, err := in.Run(chartOf(nil), w.helmValues(env, refs, nil)); err != nil {
		w.b.Fatal(err)
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
	crash := fault("auth-server", testenv.FaultCrashLoop)
	took := map[string]time.Duration{}
	var crashSteps []report.Step
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

	measure("crashloop/ours", func(b *testing.B) time.Duration {
		b.StopTimer()
		e := w.namespace("ours")
		d := w.ours(e)
		if res := d.Deploy(context.Background(), deploy.Request{Images: w.publish("1.0.0")}); res.Verdict != report.Verified {
			b.Fatalf("setup: %s: %s", res.Verdict, res.Summary)
		}
		next := w.publish("2.0.0")
		b.StartTimer()
		start := time.Now()
		res := d.Deploy(context.Background(), deploy.Request{Images: next, Values: crash})
		elapsed := time.Since(start)
		if res.Verdict != report.RolledBack {
			b.Fatalf("%s: %s", res.Verdict, res.Summary)
		}
		crashSteps = res.Steps
		return elapsed
	})
	measure("crashloop/helm-atomic", func(b *testing.B) time.Duration {
		b.StopTimer()
		e := w.namespace("helm")
		cfg := w.helm(e)
		w.helmInstall(cfg, e, w.publish("1.0.0"))
		next := w.publish("2.0.0")
		up := action.NewUpgrade(cfg)
		up.Namespace, up.Atomic, up.Timeout = e.Namespace, true, helmTimeout
		b.StartTimer()
		start := time.Now()
		_, err := up.Run(e.Release, chartOf(nil), w.helmValues(e, next, crash))
		elapsed := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "rolled back") {
			b.Fatalf("helm --atomic should have rolled back, got %v", err)
		}
		return elapsed
	})
	measure("healthy/ours", func(b *testing.B) time.Duration {
		b.StopTimer()
		e := w.namespace("ours")
		d := w.ours(e)
		if res := d.Deploy(context.Background(), deploy.Request{Images: w.publish("1.0.0")}); res.Verdict != report.Verified {
			b.Fatalf("setup: %s", res.Summary)
		}
		next := w.publish("2.0.0")
		b.StartTimer()
		start := time.Now()
		res := d.Deploy(context.Background(), deploy.Request{Images: next})
		elapsed := time.Since(start)
		if res.Verdict != report.Verified {
			b.Fatalf("%s: %s", res.Verdict, res.Summary)
		}
		return elapsed
	})
	measure("healthy/helm-wait", func(b *testing.B) time.Duration {
		b.StopTimer()
		e := w.namespace("helm")
		cfg := w.helm(e)
		w.helmInstall(cfg, e, w.publish("1.0.0"))
		next := w.publish("2.0.0")
		up := action.NewUpgrade(cfg)
		up.Namespace, up.Wait, up.Timeout = e.Namespace, true, helmTimeout
		b.StartTimer()
		start := time.Now()
		_, err := up.Run(e.Release, chartOf(nil), w.helmValues(e, next, nil))
		elapsed := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		return elapsed
	})
	measure("noop/ours", func(b *testing.B) time.Duration {
		b.StopTimer()
		e := w.namespace("ours")
		d := w.ours(e)
		refs := w.publish("1.0.0")
		if res := d.Deploy(context.Background(), deploy.Request{Images: refs}); res.Verdict != report.Verified {
			b.Fatalf("setup: %s", res.Summary)
		}
		b.StartTimer()
		start := time.Now()
		res := d.Deploy(context.Background(), deploy.Request{Images: refs})
		elapsed := time.Since(start)
		if res.Verdict != report.Unchanged {
			b.Fatalf("%s: %s", res.Verdict, res.Summary)
		}
		return elapsed
	})
	measure("noop/helm-wait", func(b *testing.B) time.Duration {
		b.StopTimer()
		e := w.namespace("helm")
		cfg := w.helm(e)
		refs := w.publish("1.0.0")
		w.helmInstall(cfg, e, refs)
		up := action.NewUpgrade(cfg)
		up.Namespace, up.Wait, up.Timeout = e.Namespace, true, helmTimeout
		b.StartTimer()
		start := time.Now()
		_, err := up.Run(e.Release, chartOf(nil), w.helmValues(e, refs, nil))
		elapsed := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		return elapsed
	})

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
