package gate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
)

// Workload is one Deployment the rollout gate waits for.
type Workload struct {
	Service    string `json:"service"`
	Deployment string `json:"deployment"`
}

// Phase is where a workload stands.
type Phase string

// Phases a workload moves through.
const (
	PhaseWaiting     Phase = "waiting"     // the Deployment or its new ReplicaSet does not exist yet
	PhaseProgressing Phase = "progressing" // new pods are being created or becoming ready
	PhaseAvailable   Phase = "available"   // the new generation is fully available
	PhaseFailed      Phase = "failed"      // a fatal problem was found
	PhaseChecking    Phase = "checking"    // readiness endpoint being asked
	PhaseReady       Phase = "ready"       // readiness endpoint answered 2xx
)

// Progress is one update about one service, streamed while a gate runs.
type Progress struct {
	Service string `json:"service"`
	Gate    string `json:"gate"`
	Phase   Phase  `json:"phase"`
	Ready   int32  `json:"ready"`
	Desired int32  `json:"desired"`
	// Attempt counts the readiness gate's requests to the service so far
	// (readiness progress only; it has no replica counts).
	Attempt int    `json:"attempt,omitempty"`
	Message string `json:"message,omitempty"`
}

// Counts is the progress's figures for a log line: "ready/desired" for the
// rollout gate, "attempt N" for the readiness gate (empty before the first
// request), never a meaningless "0/0".
func (p Progress) Counts() string {
	if p.Gate == ReadinessGate {
		if p.Attempt == 0 {
			return ""
		}
		return fmt.Sprintf("attempt %d", p.Attempt)
	}
	return fmt.Sprintf("%d/%d", p.Ready, p.Desired)
}

// Status is where a workload stood when the rollout gate ended.
type Status struct {
	Workload
	Phase   Phase  `json:"phase"`
	Ready   int32  `json:"ready"`
	Updated int32  `json:"updated"`
	Desired int32  `json:"desired"`
	Message string `json:"message,omitempty"`

	// unobserved is the Deployment's generation while the controller has not
	// observed it (observed is the one it has), 0 otherwise.
	unobserved, observed int64
}

// RolloutOptions configure WatchRollout.
type RolloutOptions struct {
	Namespace string
	// Release, when set, limits the pod watch to the release's pods
	// (label app.kubernetes.io/instance=<Release>).
	Release   string
	Workloads []Workload
	// Timeout bounds the whole gate. Required.
	Timeout time.Duration
	// UnschedulableGrace is how long a pod may stay unschedulable before the
	// gate fails (the cluster autoscaler may add a node meanwhile).
	UnschedulableGrace time.Duration
	// ControllerGrace is how long a Deployment's new generation may stay
	// unobserved by the Deployment controller before the gate fails with
	// ControllerNotActing, instead of waiting out Timeout for a controller
	// that is not running. 0 means DefaultControllerGrace.
	ControllerGrace time.Duration
	// APIRead bounds the retries of each direct read of the API server; 0
	// means budget.Defaults().APIRead.
	APIRead time.Duration
	// Progress receives an update whenever a workload's phase, ready count
	// or message changes. It is called from the gate's goroutine.
	Progress func(Progress)
}

// DefaultControllerGrace is RolloutOptions.ControllerGrace when unset.
const DefaultControllerGrace = budget.ControllerGrace

// waitingForController is a workload's message while its Deployment's new
// generation is not observed yet.
const waitingForController = "waiting for the controller to observe the new generation"

// RolloutGate is the gate's name in failures and progress.
const RolloutGate = "rollout"

// WatchRollout waits until every workload's newest generation is fully
// available: the controller observed the current generation, all desired
// replicas are updated and available, no old replica remains, and the new
// ReplicaSet (matched by revision, hence by pod-template-hash) reports them
// available. It watches (informers), never sleeps to poll, and fails fast
// with a *Failure naming pod, container, reason, message and events as soon
// as a pod of the new ReplicaSet shows a fatal Class. When the timeout
// passes it fails with TimedOut set and every pod that was not ready
// explained. Cancelling ctx returns ctx's error.
func WatchRollout(ctx context.Context, cs kubernetes.Interface, opts RolloutOptions) ([]Status, error) {
	if opts.Timeout <= 0 {
		return nil, errors.New("rollout gate: no timeout given")
	}
	if len(opts.Workloads) == 0 {
		return nil, nil
	}
	if opts.ControllerGrace <= 0 {
		opts.ControllerGrace = DefaultControllerGrace
	}
	gctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	podOpts := []informers.SharedInformerOption{informers.WithNamespace(opts.Namespace)}
	if opts.Release != "" {
		sel := labels.Set{"app.kubernetes.io/instance": opts.Release}.AsSelector().String()
		podOpts = append(podOpts, informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	}
	all := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(opts.Namespace))
	pods := informers.NewSharedInformerFactoryWithOptions(cs, 0, podOpts...)
	minGen, err := generations(gctx, cs, opts.Namespace, opts.Workloads, opts.APIRead)
	if err != nil {
		return nil, err
	}
	w := &watcher{
		opts:    opts,
		minGen:  minGen,
		cs:      cs,
		deploys: all.Apps().V1().Deployments().Lister(),
		sets:    all.Apps().V1().ReplicaSets().Lister(),
		pods:    pods.Core().V1().Pods().Lister(),
		changed: make(chan struct{}, 1),
		unsched: map[types.UID]time.Time{},
		unobs:   map[string]unobserved{},
		last:    map[string]Progress{},
	}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.poke() },
		UpdateFunc: func(any, any) { w.poke() },
		DeleteFunc: func(any) { w.poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		all.Apps().V1().Deployments().Informer(),
		all.Apps().V1().ReplicaSets().Informer(),
		pods.Core().V1().Pods().Informer(),
	} {
		if _, err := inf.AddEventHandler(notify); err != nil {
			return nil, fmt.Errorf("rollout gate: %w", err)
		}
	}
	all.Start(gctx.Done())
	pods.Start(gctx.Done())
	defer all.Shutdown()
	defer pods.Shutdown()
	defer cancel() // runs before Shutdown, which waits for the informers to stop

	for {
		statuses, problems, next := w.evaluate(time.Now())
		if len(problems) > 0 {
			return statuses, w.fail(ctx, statuses, problems, false)
		}
		if allAvailable(statuses) {
			return statuses, nil
		}
		var wake <-chan time.Time
		var timer *time.Timer
		if !next.IsZero() {
			timer = time.NewTimer(time.Until(next))
			wake = timer.C
		}
		select {
		case <-w.changed:
		case <-wake:
		case <-gctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if gctx.Err() != nil {
			if err := ctx.Err(); err != nil {
				return statuses, fmt.Errorf("rollout gate: %w", err)
			}
			statuses, _, _ = w.evaluate(time.Now())
			return statuses, w.fail(ctx, statuses, w.explainPending(statuses), true)
		}
	}
}

// generations reads each Deployment's current generation straight from the
// API server. Informer caches may start from a list older than the apply
// that preceded this gate; a cached Deployment older than this is ignored,
// so a stale view of the previous, fully available generation cannot pass
// the gate.
func generations(ctx context.Context, cs kubernetes.Interface, ns string, wls []Workload, apiRead time.Duration) (map[string]int64, error) {
	out := map[string]int64{}
	for _, wl := range wls {
		err := retryAPI(ctx, apiRead, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, wl.Deployment, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			out[wl.Deployment] = d.Generation
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("rollout gate: read Deployment %s/%s: %w", ns, wl.Deployment, err)
		}
	}
	return out, nil
}

type watcher struct {
	opts    RolloutOptions
	cs      kubernetes.Interface
	deploys appslisters.DeploymentLister
	sets    appslisters.ReplicaSetLister
	pods    corelisters.PodLister
	minGen  map[string]int64
	changed chan struct{}
	// unsched remembers when this gate first saw each pod unschedulable; the
	// grace period runs on this process's clock, not the scheduler's.
	unsched map[types.UID]time.Time
	// unobs remembers since when (on this clock) each Deployment's current
	// generation has been waiting for the controller.
	unobs map[string]unobserved
	last  map[string]Progress
}

type unobserved struct {
	generation int64
	since      time.Time
}

func (w *watcher) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func allAvailable(ss []Status) bool {
	for _, s := range ss {
		if s.Phase != PhaseAvailable {
			return false
		}
	}
	return true
}

// evaluate computes every workload's status from the informer caches, the
// fatal problems of new pods, and when an unschedulable pod's grace period
// ends (zero if none is pending).
func (w *watcher) evaluate(now time.Time) ([]Status, []Problem, time.Time) {
	var statuses []Status
	var problems []Problem
	var next time.Time
	for _, wl := range w.opts.Workloads {
		st, newPods := w.status(wl)
		fatal := 0
		if p, deadline, ok := w.controllerLag(wl, st, now); ok {
			problems = append(problems, p)
			fatal++
		} else if !deadline.IsZero() && (next.IsZero() || deadline.Before(next)) {
			next = deadline
		}
		for _, pod := range newPods {
			for _, p := range Classify(wl.Service, pod) {
				if p.Class == Unschedulable {
					first, ok := w.unsched[pod.UID]
					if !ok {
						first = now
						w.unsched[pod.UID] = now
					}
					deadline := first.Add(w.opts.UnschedulableGrace)
					if now.Before(deadline) {
						if next.IsZero() || deadline.Before(next) {
							next = deadline
						}
						continue
					}
					p.Message = fmt.Sprintf("%s (unschedulable for %s)", p.Message, now.Sub(first).Round(time.Second))
				}
				problems = append(problems, p)
				fatal++
			}
		}
		if st.Phase == PhaseFailed && fatal == 0 {
			// The controller itself gave up (ProgressDeadlineExceeded).
			problems = append(problems, Problem{Class: ProgressDeadline, Service: wl.Service, Reason: "ProgressDeadlineExceeded", Message: st.Message})
			fatal++
		}
		if fatal > 0 {
			st.Phase = PhaseFailed
		}
		statuses = append(statuses, st)
		w.report(Progress{Service: wl.Service, Gate: RolloutGate, Phase: st.Phase, Ready: st.Ready, Desired: st.Desired, Message: st.Message})
	}
	return statuses, problems, next
}

// controllerLag judges a workload whose new generation the Deployment
// controller has not observed: a ControllerNotActing problem once that has
// lasted ControllerGrace, else when the grace ends (zero when the
// generation is observed).
func (w *watcher) controllerLag(wl Workload, st Status, now time.Time) (Problem, time.Time, bool) {
	if st.unobserved == 0 {
		delete(w.unobs, wl.Deployment)
		return Problem{}, time.Time{}, false
	}
	u, ok := w.unobs[wl.Deployment]
	if !ok || u.generation != st.unobserved {
		u = unobserved{generation: st.unobserved, since: now}
		w.unobs[wl.Deployment] = u
	}
	deadline := u.since.Add(w.opts.ControllerGrace)
	if now.Before(deadline) {
		return Problem{}, deadline, false
	}
	return Problem{Class: ControllerNotActing, Service: wl.Service, Reason: "GenerationNotObserved",
		Message: fmt.Sprintf("the Deployment controller has not observed generation %d of Deployment %s for %s (observed: %d): is kube-controller-manager running?",
			st.unobserved, wl.Deployment, now.Sub(u.since).Round(time.Second), st.observed)}, deadline, true
}

func (w *watcher) report(p Progress) {
	if w.opts.Progress == nil || w.last[p.Service] == p {
		return
	}
	w.last[p.Service] = p
	w.opts.Progress(p)
}

// revisionAnnotation is set by the Deployment controller on a Deployment and
// on the ReplicaSet that holds its current pod template.
const revisionAnnotation = "deployment.kubernetes.io/revision"

// status reads one workload and returns the pods of its new ReplicaSet.
func (w *watcher) status(wl Workload) (Status, []*corev1.Pod) {
	st := Status{Workload: wl, Phase: PhaseWaiting}
	d, err := w.deploys.Deployments(w.opts.Namespace).Get(wl.Deployment)
	if err != nil || d.Generation < w.minGen[wl.Deployment] {
		st.Message = "Deployment not seen yet"
		return st, nil
	}
	st.Desired = 1
	if d.Spec.Replicas != nil {
		st.Desired = *d.Spec.Replicas
	}
	st.Updated = d.Status.UpdatedReplicas
	if d.Generation > d.Status.ObservedGeneration {
		st.Phase, st.Message = PhaseProgressing, waitingForController
		st.unobserved, st.observed = d.Generation, d.Status.ObservedGeneration
		return st, nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			st.Phase, st.Message = PhaseFailed, c.Message
		}
	}
	rs := w.newReplicaSet(d)
	if rs == nil {
		st.Message = "new ReplicaSet not created yet"
		return st, nil
	}
	st.Ready = rs.Status.AvailableReplicas
	hash := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	all, _ := w.pods.Pods(w.opts.Namespace).List(labels.Everything())
	var newPods []*corev1.Pod
	for _, p := range all {
		if p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash && ownedBy(p.OwnerReferences, rs.UID) && p.DeletionTimestamp == nil {
			newPods = append(newPods, p)
		}
	}
	sort.Slice(newPods, func(i, j int) bool { return newPods[i].Name < newPods[j].Name })
	switch {
	case st.Phase == PhaseFailed:
	case d.Status.UpdatedReplicas < st.Desired:
		st.Phase, st.Message = PhaseProgressing, fmt.Sprintf("%d of %d new replicas created", d.Status.UpdatedReplicas, st.Desired)
	case d.Status.Replicas > d.Status.UpdatedReplicas:
		st.Phase, st.Message = PhaseProgressing, fmt.Sprintf("%d old replicas still terminating", d.Status.Replicas-d.Status.UpdatedReplicas)
	case d.Status.AvailableReplicas < st.Desired || rs.Status.AvailableReplicas < st.Desired:
		st.Phase, st.Message = PhaseProgressing, fmt.Sprintf("%d of %d new replicas available", rs.Status.AvailableReplicas, st.Desired)
	default:
		st.Phase, st.Message = PhaseAvailable, ""
	}
	return st, newPods
}

func (w *watcher) newReplicaSet(d *appsv1.Deployment) *appsv1.ReplicaSet {
	rev := d.Annotations[revisionAnnotation]
	if rev == "" {
		return nil
	}
	sets, _ := w.sets.ReplicaSets(w.opts.Namespace).List(labels.Everything())
	for _, rs := range sets {
		if ownedBy(rs.OwnerReferences, d.UID) && rs.Annotations[revisionAnnotation] == rev {
			return rs
		}
	}
	return nil
}

func ownedBy(refs []metav1.OwnerReference, uid types.UID) bool {
	for _, r := range refs {
		if r.UID == uid && r.Controller != nil && *r.Controller {
			return true
		}
	}
	return false
}

// explainPending lists, for every workload that is not available when the
// deadline passes, its not-ready pods or, when there is none to blame, the
// workload itself.
func (w *watcher) explainPending(statuses []Status) []Problem {
	return w.explain(statuses, true)
}

// explain names what holds back every workload that is not available: each
// pod of its new ReplicaSet classified exactly as the gate classifies it
// (Classify), or merely not Ready. With blameWorkload, a workload with no
// pod to blame gets a RolloutTimeout problem of its own; a workload the
// controller gave up on (ProgressDeadlineExceeded) always gets its
// ProgressDeadline problem.
func (w *watcher) explain(statuses []Status, blameWorkload bool) []Problem {
	var out []Problem
	for _, st := range statuses {
		if st.Phase == PhaseAvailable {
			continue
		}
		var found, fatal bool
		if _, pods := w.status(st.Workload); len(pods) > 0 {
			for _, pod := range pods {
				ps := Classify(st.Service, pod) // unschedulable within its grace, say
				if len(ps) == 0 {
					if p, ok := notReady(st.Service, pod); ok {
						ps = []Problem{p}
					}
				}
				for _, p := range ps {
					fatal = fatal || p.Class.Fatal()
				}
				out = append(out, ps...)
				found = found || len(ps) > 0
			}
		}
		switch {
		case st.Phase == PhaseFailed && !fatal:
			// The controller itself gave up; no pod state says why.
			out = append(out, Problem{Class: ProgressDeadline, Service: st.Service, Reason: "ProgressDeadlineExceeded", Message: st.Message})
		case found:
		case blameWorkload:
			msg := st.Message
			if msg == "" {
				msg = fmt.Sprintf("%d of %d replicas available", st.Ready, st.Desired)
			}
			out = append(out, Problem{Class: RolloutTimeout, Service: st.Service, Reason: "Timeout", Message: msg})
		}
	}
	return out
}

// fail builds the Failure: problems described, each pod's recent events
// attached.
func (w *watcher) fail(ctx context.Context, statuses []Status, problems []Problem, timedOut bool) error {
	markFailed(statuses, problems)
	for _, st := range statuses {
		w.report(Progress{Service: st.Service, Gate: RolloutGate, Phase: st.Phase, Ready: st.Ready, Desired: st.Desired, Message: st.Message})
	}
	return &Failure{Gate: RolloutGate, TimedOut: timedOut, Problems: w.describe(ctx, problems)}
}

// markFailed sets the phase of every workload with a fatal problem.
func markFailed(statuses []Status, problems []Problem) {
	for i := range statuses {
		for _, p := range problems {
			if p.Service == statuses[i].Service && p.Class.Fatal() {
				statuses[i].Phase = PhaseFailed
			}
		}
	}
}

// describe attaches each pod's recent events (read with a short, separate
// deadline so a failing API server cannot hold the verdict back) and a
// suggestion to every problem.
func (w *watcher) describe(ctx context.Context, problems []Problem) []Problem {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	events := map[string][]string{}
	for i, p := range problems {
		if p.Pod != "" {
			if _, ok := events[p.Pod]; !ok {
				events[p.Pod] = RecentEvents(ectx, w.cs, w.opts.Namespace, p.Pod, 5)
			}
			problems[i].Events = events[p.Pod]
		}
		problems[i] = Describe(w.opts.Namespace, problems[i])
	}
	return problems
}

// RecentEvents returns up to n of the newest events about pod, oldest first,
// as "Reason: message (xCount)". It returns nothing when events cannot be
// read: they enrich a verdict, they never decide it.
func RecentEvents(ctx context.Context, cs kubernetes.Interface, namespace, pod string, n int) []string {
	list, err := cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pod,
	})
	if err != nil || apierrors.IsNotFound(err) {
		return nil
	}
	items := list.Items
	sort.SliceStable(items, func(i, j int) bool { return eventTime(items[i]).Before(eventTime(items[j])) })
	if len(items) > n {
		items = items[len(items)-n:]
	}
	out := make([]string, 0, len(items))
	for _, e := range items {
		s := fmt.Sprintf("%s: %s", e.Reason, e.Message)
		if e.Count > 1 {
			s += fmt.Sprintf(" (x%d)", e.Count)
		}
		out = append(out, s)
	}
	return out
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
