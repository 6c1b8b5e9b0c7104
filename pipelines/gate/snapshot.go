package gate

import (
	"context"
	"fmt"
	"sort"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Snapshot reads where each workload stands right now, without waiting for
// anything to change: one list of the Deployments and their ReplicaSets, the
// StatefulSets and the Pods. The
// list is bounded by timeout. For every workload that is not available it
// also returns what holds it back, found by the very classification the
// rollout gate fails on (Classify: pod, container, reason, message), with
// events and suggestions; a workload with a fatal problem is in
// PhaseFailed. An unschedulable pod is reported but does not fail its
// workload: how long it has been refused is the gate's judgement to make.
func Snapshot(ctx context.Context, cs kubernetes.Interface, namespace string, workloads []Workload, timeout time.Duration) ([]Status, []Problem, error) {
	if len(workloads) == 0 {
		return nil, nil, nil
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace))
	w := newWatcher(RolloutOptions{Namespace: namespace, Workloads: workloads}, cs, f, f)
	synced := make([]cache.InformerSynced, 0, len(w.informers))
	for _, inf := range w.informers {
		synced = append(synced, inf.HasSynced)
	}
	f.Start(sctx.Done())
	defer f.Shutdown()
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), synced...) {
		return nil, nil, fmt.Errorf("status of %s: the API server did not list workloads within %s", namespace, timeout)
	}
	out := make([]Status, 0, len(workloads))
	for _, wl := range workloads {
		st, _ := w.status(wl)
		out = append(out, st)
	}
	problems := w.explain(out, false)
	var fatal []Problem
	for _, p := range problems {
		if p.Class != Unschedulable {
			fatal = append(fatal, p)
		}
	}
	markFailed(out, fatal)
	// The worst first: a crash loop in one service matters more than the
	// pods of another still starting, and reports lead with the first.
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Class.Fatal() && !problems[j].Class.Fatal() })
	return out, w.describe(ctx, problems), nil
}
