// Command demo shows a gated deploy end to end on a simulated cluster: it
// starts a real control plane with fake nodes (internal/testenv), an
// in-process OCI registry holding synthetic images of the four services,
// deploys a healthy release, then a release whose auth-server crash-loops,
// and shows the fail-fast detection and the automatic rollback to the
// verified revision. `make demo` runs it; the first run builds the
// control-plane binaries into $KRGEOBUK_CACHE.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

func main() {
	markdown := flag.String("markdown", "", "also append the Markdown summaries to this file")
	keep := flag.Bool("keep", false, "keep the cluster running after the demo until interrupted (prints its kubeconfig path)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	if err := run(ctx, os.Stdout, *markdown, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, markdown string, keep bool) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	say("== krgeobuk demo: gated Helm deploys on a simulated cluster ==")
	say("")
	say("[1/5] Starting a real kube-apiserver, controller-manager, scheduler and etcd with kwok nodes")
	say("      (the first run builds them from the Go module proxy into $KRGEOBUK_CACHE; later runs take seconds)")
	cluster, err := testenv.Start(ctx, testenv.Options{Name: "demo", Log: indent(out)})
	if err != nil {
		return err
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		}
	}()
	cs, err := kubernetes.NewForConfig(cluster.RESTConfig())
	if err != nil {
		return err
	}
	env, err := environment.Load(k8s.Environments, "development")
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: env.Namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}

	reg := deploytest.NewRegistry()
	defer reg.Close()
	good, err := reg.Publish("1.0.0")
	if err != nil {
		return err
	}
	next, err := reg.Publish("1.1.0")
	if err != nil {
		return err
	}
	say("")
	say("[2/5] In-process OCI registry at %s holds synthetic images of the four services, 1.0.0 and 1.1.0", reg.Host)
	apps := deploytest.NewApps(cs)
	defer apps.Close()

	var start time.Time
	var applied, detected time.Time
	progress := func(ev deploy.Event) {
		switch {
		case ev.Gate != nil:
			g := ev.Gate
			if g.Phase == "available" || g.Phase == "failed" || g.Phase == "ready" {
				say("      %6.2fs  %-24s %-14s %-10s %s %s", ev.Time.Sub(start).Seconds(), ev.Step, g.Service, g.Phase, g.Counts(), g.Message)
			}
		case ev.Status == "ok" || ev.Status == "failed" || ev.Status == "skipped":
			say("      %6.2fs  %-24s %-6s %s", ev.Time.Sub(start).Seconds(), ev.Step, ev.Status, short(ev.Detail, 110))
			if ev.Step == "release" && ev.Status == "ok" {
				applied = ev.Time
			}
			if ev.Step == "gate/rollout" && ev.Status == "failed" {
				detected = ev.Time
			}
		}
	}
	d, err := deploy.New(deploy.Config{Kubeconfig: cluster.Kubeconfig(), Env: env, Endpoints: apps, Actor: "demo", Progress: progress})
	if err != nil {
		return err
	}
	show := func(res *report.Result) error {
		say("")
		if err := report.Table(indent(out), res, d.Redactor()); err != nil {
			return err
		}
		if markdown == "" {
			return nil
		}
		f, err := os.OpenFile(markdown, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		return report.Markdown(f, res, d.Redactor())
	}

	say("")
	say("[3/5] Deploy 1.0.0 to environment %q (namespace %s): preflight, upgrade --install, gates, verdict", env.Name, env.Namespace)
	start = time.Now()
	res := d.Deploy(ctx, deploy.Request{Images: good})
	if err := show(res); err != nil {
		return err
	}
	if res.Verdict != report.Verified {
		return fmt.Errorf("the healthy deploy ended %s", res.Verdict)
	}

	say("")
	say("[4/5] Deploy 1.1.0 with auth-server crash-looping (values: services.auth-server.podLabels.%s=%s)", testenv.FaultLabel, testenv.FaultCrashLoop)
	bad := map[string]any{"services": map[string]any{"auth-server": map[string]any{
		"podLabels": map[string]any{testenv.FaultLabel: testenv.FaultCrashLoop}}}}
	start = time.Now()
	res = d.Deploy(ctx, deploy.Request{Images: next, Values: bad})
	took := time.Since(start)
	if err := show(res); err != nil {
		return err
	}
	if res.Verdict != report.RolledBack {
		return fmt.Errorf("the crash-looping deploy ended %s, want %s", res.Verdict, report.RolledBack)
	}
	say("")
	if !applied.IsZero() && !detected.IsZero() {
		say("      The crash loop was detected %.1fs after Helm applied revision %d; verified revision %d was serving again",
			detected.Sub(applied).Seconds(), res.Revision, res.RolledBackTo)
		say("      (as revision %d, gated and verified) %.1fs after the deploy started. Helm's --atomic would have waited", res.RollbackRevision, took.Seconds())
		say("      for its timeout (5m by default) before rolling back: see `make bench-deploy`.")
	}

	say("")
	say("[5/5] History: only revisions that passed every gate are verified; rollback picks the newest of them")
	if err := show(d.History(ctx)); err != nil {
		return err
	}
	if keep {
		say("")
		say("The cluster keeps running; kubeconfig: %s", cluster.KubeconfigPath())
		say("Try: go run ./pipelines/cmd/krgeobuk status --env development --kubeconfig %s", cluster.KubeconfigPath())
		say("Press Ctrl-C to stop it.")
		<-ctx.Done()
	}
	return nil
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

// indent prefixes every line written through it.
func indent(w io.Writer) io.Writer { return &indenter{w: w, bol: true} }

type indenter struct {
	w   io.Writer
	bol bool
}

func (i *indenter) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, c := range string(p) {
		if i.bol {
			b.WriteString("      ")
		}
		b.WriteRune(c)
		i.bol = c == '\n'
	}
	if _, err := io.WriteString(i.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
