package gate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/budget"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// Workload kinds the rollout gate watches.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
)

// Workload is one Deployment or StatefulSet the rollout gate waits for.
type Workload struct {
	// Service is the component it runs, as reports name it (auth-server,
	// prometheus).
	Service string `json:"service"`
	// Kind is KindDeployment or KindStatefulSet.
	Kind string `json:"kind"`
	// Name is the workload object's name.
	Name string `json:"name"`
}

// Ref is Kind/Name, as problems and messages name the workload.
func (w Workload) Ref() string { return w.Kind + "/" + w.Name }

// Phase is where a workload stands.
type Phase string

// Phases a workload moves through.
const (
	PhaseWaiting     Phase = "waiting"     // the workload (or a Deployment's new ReplicaSet) does not exist yet
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

	// unobserved is the workload's generation while its controller has not
	// observed it (observed is the one it has), 0 otherwise.
	unobserved, observed int64
}

// RolloutOptions configure WatchRollout.
type RolloutOptions struct {
	Namespace string
	// Release, when set, limits the pod watch to the release's pods
	// (label app.kubernetes.io/instance <Release>, or its canary's,
	// catalog.CanaryInstance).
	Release   string
	Workloads []Workload
	// Timeout bounds the whole gate. Required.
	Timeout time.Duration
	// UnschedulableGrace is how long a pod may stay unschedulable before the
	// gate fails (the cluster autoscaler may add a node meanwhile).
	UnschedulableGrace time.Duration
	// ControllerGrace is how long a workload's new generation may stay
	// unobserved by its controller before the gate fails with
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

// waitingForController is a workload's message while its new generation is
// not observed yet.
const waitingForController = "waiting for the controller to observe the new generation"

// RolloutGate is the gate's name in failures and progress.
const RolloutGate = "rollout"

// ReleasePods selects the pods of release: its own and its canary's (whose
// instance label differs so that no Deployment selector takes both), so a
// canary that cannot start fails the gate as fast as a stable pod would.
func ReleasePods(release string) labels.Selector {
	r, err := labels.NewRequirement("app.kubernetes.io/instance", selection.In, []string{release, catalog.CanaryInstance(release)})
	if err != nil {
		// Only an invalid label value fails, and Helm refuses such release names.
		return labels.Nothing()
	}
	return labels.NewSelector().Add(*r)
}

// WatchRollout waits until every workload's newest generation is fully
// available. For a Deployment: the controller observed the current
// generation, all desired replicas are updated and available, no old
// replica remains, and the new ReplicaSet (matched by revision, hence by
// pod-template-hash) reports them available. For a StatefulSet: the
// controller observed the current generation, every replica runs the update
// revision (pod label controller-revision-hash) and is ready and available,
// none is left over, and the update revision has become the current one. It
// watches (informers), never sleeps to poll, and fails fast with a *Failure
// naming workload, pod, container, reason, message and events as soon as a
// pod of the new revision shows a fatal Class. When the timeout passes it
// fails with TimedOut set and every pod that was not ready explained.
// Cancelling ctx returns ctx's error.
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
		sel := ReleasePods(opts.Release).String()
		podOpts = append(podOpts, informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	}
	all := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(opts.Namespace))
	pods := informers.NewSharedInformerFactoryWithOptions(cs, 0, podOpts...)
	minGen, err := generations(gctx, cs, opts.Namespace, opts.Workloads, opts.APIRead)
	if err != nil {
		return nil, err
	}
	w := newWatcher(opts, cs, all, pods)
	w.minGen = minGen
	w.changed = make(chan struct{}, 1)
	w.unsched = map[types.UID]time.Time{}
	w.unobs = map[string]unobserved{}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.poke() },
		UpdateFunc: func(any, any) { w.poke() },
		DeleteFunc: func(any) { w.poke() },
	}
	for _, inf := range w.informers {
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

// generations reads each workload's current generation straight from the
// API server. Informer caches may start from a list older than the apply
// that preceded this gate; a cached workload older than this is ignored, so
// a stale view of the previous, fully available generation cannot pass the
// gate.
func generations(ctx context.Context, cs kubernetes.Interface, ns string, wls []Workload, apiRead time.Duration) (map[string]int64, error) {
	out := map[string]int64{}
	for _, wl := range wls {
		err := retryAPI(ctx, apiRead, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var meta metav1.Object
			var err error
			switch wl.Kind {
			case KindStatefulSet:
				meta, err = cs.AppsV1().StatefulSets(ns).Get(ctx, wl.Name, metav1.GetOptions{})
			case KindDeployment:
				meta, err = cs.AppsV1().Deployments(ns).Get(ctx, wl.Name, metav1.GetOptions{})
			default:
				return fmt.Errorf("workload %s: the rollout gate watches Deployments and StatefulSets", wl.Ref())
			}
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			out[wl.Ref()] = meta.GetGeneration()
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("rollout gate: read %s %s/%s: %w", wl.Kind, ns, wl.Name, err)
		}
	}
	return out, nil
}

type watcher struct {
	opts    RolloutOptions
	cs      kubernetes.Interface
	deploys appslisters.DeploymentLister
	sets    appslisters.ReplicaSetLister
	stss    appslisters.StatefulSetLister
	pods    corelisters.PodLister
	// informers are the ones this watcher's workloads need: ReplicaSets
	// only for Deployments, StatefulSets only for StatefulSets, so a
	// deployer whose Role has no grant on a kind it does not deploy is never
	// refused a list it does not need.
	informers []cache.SharedIndexInformer
	minGen    map[string]int64
	changed   chan struct{}
	// unsched remembers when this gate first saw each pod unschedulable; the
	// grace period runs on this process's clock, not the scheduler's.
	unsched map[types.UID]time.Time
	// unobs remembers since when (on this clock) each workload's current
	// generation has been waiting for its controller.
	unobs map[string]unobserved
	last  map[string]Progress
}

// newWatcher registers the informers the workloads need on all (every
// object of the namespace) and pods (the release's pods).
func newWatcher(opts RolloutOptions, cs kubernetes.Interface, all, pods informers.SharedInformerFactory) *watcher {
	w := &watcher{opts: opts, cs: cs, pods: pods.Core().V1().Pods().Lister(), last: map[string]Progress{}}
	kinds := map[string]bool{}
	for _, wl := range opts.Workloads {
		kinds[wl.Kind] = true
	}
	if kinds[KindDeployment] {
		w.deploys = all.Apps().V1().Deployments().Lister()
		w.sets = all.Apps().V1().ReplicaSets().Lister()
		w.informers = append(w.informers, all.Apps().V1().Deployments().Informer(), all.Apps().V1().ReplicaSets().Informer())
	}
	if kinds[KindStatefulSet] {
		w.stss = all.Apps().V1().StatefulSets().Lister()
		w.informers = append(w.informers, all.Apps().V1().StatefulSets().Informer())
	}
	w.informers = append(w.informers, pods.Core().V1().Pods().Informer())
	return w
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
				p.Workload = wl.Ref()
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
			problems = append(problems, Problem{Class: ProgressDeadline, Service: wl.Service, Workload: wl.Ref(), Reason: "ProgressDeadlineExceeded", Message: st.Message})
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

// controllerLag judges a workload whose new generation its controller has
// not observed: a ControllerNotActing problem once that has lasted
// ControllerGrace, else when the grace ends (zero when the generation is
// observed).
func (w *watcher) controllerLag(wl Workload, st Status, now time.Time) (Problem, time.Time, bool) {
	if st.unobserved == 0 {
		delete(w.unobs, wl.Ref())
		return Problem{}, time.Time{}, false
	}
	u, ok := w.unobs[wl.Ref()]
	if !ok || u.generation != st.unobserved {
		u = unobserved{generation: st.unobserved, since: now}
		w.unobs[wl.Ref()] = u
	}
	deadline := u.since.Add(w.opts.ControllerGrace)
	if now.Before(deadline) {
		return Problem{}, deadline, false
	}
	return Problem{Class: ControllerNotActing, Service: wl.Service, Workload: wl.Ref(), Reason: "GenerationNotObserved",
		Message: fmt.Sprintf("the %s controller has not observed generation %d of %s for %s (observed: %d): is kube-controller-manager running?",
			wl.Kind, st.unobserved, wl.Ref(), now.Sub(u.since).Round(time.Second), st.observed)}, deadline, true
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

// status reads one workload and returns the pods of its new revision.
func (w *watcher) status(wl Workload) (Status, []*corev1.Pod) {
	if wl.Kind == KindStatefulSet {
		return w.statefulSetStatus(wl)
	}
	return w.deploymentStatus(wl)
}

// deploymentStatus reads a Deployment and returns the pods of its new
// ReplicaSet.
func (w *watcher) deploymentStatus(wl Workload) (Status, []*corev1.Pod) {
	st := Status{Workload: wl, Phase: PhaseWaiting}
	d, err := w.deploys.Deployments(w.opts.Namespace).Get(wl.Name)
	if err != nil || d.Generation < w.minGen[wl.Ref()] {
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
	newPods := w.ownPods(rs.UID, appsv1.DefaultDeploymentUniqueLabelKey, hash)
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
	if why := replicaFailure(rs); why != "" && st.Phase == PhaseProgressing {
		// The controller cannot create the pods (a quota, a LimitRange, an admission webhook):
		// the reason is on the ReplicaSet, not on any pod, so say it here or nowhere.
		st.Message += ": " + why
	}
	return st, newPods
}

// replicaFailure returns the message of a ReplicaSet's ReplicaFailure condition (pods it could
// not create, such as "exceeded quota"), or "".
func replicaFailure(rs *appsv1.ReplicaSet) string {
	for _, c := range rs.Status.Conditions {
		if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
			return c.Message
		}
	}
	return ""
}

// statefulSetStatus reads a StatefulSet and returns the pods of its update
// revision. A StatefulSet is available only once its controller has
// observed the current generation, every replica runs the update revision
// and is ready and available, no replica beyond the desired count remains,
// and the update revision has become the current one (currentRevision ==
// updateRevision): what `kubectl rollout status` waits for.
func (w *watcher) statefulSetStatus(wl Workload) (Status, []*corev1.Pod) {
	st := Status{Workload: wl, Phase: PhaseWaiting}
	s, err := w.stss.StatefulSets(w.opts.Namespace).Get(wl.Name)
	if err != nil || s.Generation < w.minGen[wl.Ref()] {
		st.Message = "StatefulSet not seen yet"
		return st, nil
	}
	st.Desired = 1
	if s.Spec.Replicas != nil {
		st.Desired = *s.Spec.Replicas
	}
	st.Updated = s.Status.UpdatedReplicas
	if s.Generation > s.Status.ObservedGeneration {
		st.Phase, st.Message = PhaseProgressing, waitingForController
		st.unobserved, st.observed = s.Generation, s.Status.ObservedGeneration
		return st, nil
	}
	rev := s.Status.UpdateRevision
	if rev == "" {
		st.Message = "update revision not computed yet"
		return st, nil
	}
	newPods := w.ownPods(s.UID, appsv1.ControllerRevisionHashLabelKey, rev)
	for _, p := range newPods {
		if podReady(p) {
			st.Ready++
		}
	}
	switch {
	case s.Status.UpdatedReplicas < st.Desired:
		st.Phase, st.Message = PhaseProgressing, fmt.Sprintf("%d of %d replicas updated to revision %s", s.Status.UpdatedReplicas, st.Desired, rev)
	case s.Status.Replicas > st.Desired:
		st.Phase, st.Message = PhaseProgressing, fmt.Sprintf("%d replicas beyond %d still terminating", s.Status.Replicas-st.Desired, st.Desired)
	case st.Ready < st.Desired || s.Status.ReadyReplicas < st.Desired || s.Status.AvailableReplicas < st.Desired:
		st.Phase, st.Message = PhaseProgressing, fmt.Sprintf("%d of %d new replicas ready", st.Ready, st.Desired)
	case s.Status.CurrentRevision != rev:
		st.Phase, st.Message = PhaseProgressing, fmt.Sprintf("update revision %s is not current yet (current: %s)", rev, s.Status.CurrentRevision)
	default:
		st.Phase, st.Message = PhaseAvailable, ""
	}
	return st, newPods
}

// ownPods lists, sorted by name, the live pods that owner controls and whose
// label key has value: a Deployment's new ReplicaSet's pods by
// pod-template-hash, a StatefulSet's update revision by
// controller-revision-hash.
func (w *watcher) ownPods(owner types.UID, key, value string) []*corev1.Pod {
	all, _ := w.pods.Pods(w.opts.Namespace).List(labels.Everything())
	var out []*corev1.Pod
	for _, p := range all {
		if p.Labels[key] == value && ownedBy(p.OwnerReferences, owner) && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
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
// pod of its new revision classified exactly as the gate classifies it
// (Classify), or merely not Ready; for a StatefulSet with no such pod to
// blame, a pod left on another revision that is not Ready (the StatefulSet
// controller may wait for it forever: kubernetes/kubernetes#67250). With
// blameWorkload, a workload with no pod to blame gets a RolloutTimeout
// problem of its own; a workload the controller gave up on
// (ProgressDeadlineExceeded) always gets its ProgressDeadline problem.
func (w *watcher) explain(statuses []Status, blameWorkload bool) []Problem {
	var out []Problem
	for _, st := range statuses {
		if st.Phase == PhaseAvailable {
			continue
		}
		_, pods := w.status(st.Workload)
		ps, fatal := blame(st.Workload, pods, "")
		if len(ps) == 0 && st.Kind == KindStatefulSet {
			ps, fatal = w.blameStale(st.Workload)
		}
		out = append(out, ps...)
		switch {
		case st.Phase == PhaseFailed && !fatal:
			// The controller itself gave up; no pod state says why.
			out = append(out, Problem{Class: ProgressDeadline, Service: st.Service, Workload: st.Ref(), Reason: "ProgressDeadlineExceeded", Message: st.Message})
		case len(ps) > 0:
		case blameWorkload:
			msg := st.Message
			if msg == "" {
				msg = fmt.Sprintf("%d of %d replicas available", st.Ready, st.Desired)
			}
			out = append(out, Problem{Class: RolloutTimeout, Service: st.Service, Workload: st.Ref(), Reason: "Timeout", Message: msg})
		}
	}
	return out
}

// blame classifies pods of wl as the gate does, or names them not Ready
// (an unschedulable pod within its grace, say), adding note to each
// message; fatal says whether any problem is of a fatal class.
func blame(wl Workload, pods []*corev1.Pod, note string) ([]Problem, bool) {
	var out []Problem
	var fatal bool
	for _, pod := range pods {
		ps := Classify(wl.Service, pod)
		if len(ps) == 0 {
			if p, ok := notReady(wl.Service, pod); ok {
				ps = []Problem{p}
			}
		}
		for i := range ps {
			ps[i].Workload = wl.Ref()
			ps[i].Message += note
			fatal = fatal || ps[i].Class.Fatal()
		}
		out = append(out, ps...)
	}
	return out, fatal
}

// blameStale names a StatefulSet's pods that run another revision than its
// update revision and are not Ready. Under the OrderedReady pod management
// policy the controller waits for such a pod to become Ready before it
// replaces it, which a pod of a bad revision never does: a rollback then
// stalls until the pod is deleted (kubernetes/kubernetes#67250). Parallel
// replaces it by itself.
func (w *watcher) blameStale(wl Workload) ([]Problem, bool) {
	s, err := w.stss.StatefulSets(w.opts.Namespace).Get(wl.Name)
	if err != nil || s.Status.UpdateRevision == "" {
		return nil, false
	}
	all, _ := w.pods.Pods(w.opts.Namespace).List(labels.Everything())
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	var out []Problem
	var fatal bool
	for _, p := range all {
		rev := p.Labels[appsv1.ControllerRevisionHashLabelKey]
		if !ownedBy(p.OwnerReferences, s.UID) || p.DeletionTimestamp != nil || podReady(p) || rev == s.Status.UpdateRevision {
			continue
		}
		note := fmt.Sprintf(" (the pod runs revision %s, not the update revision %s, and the StatefulSet controller waits for it to become Ready: "+
			"delete the pod to let the rollout continue)", rev, s.Status.UpdateRevision)
		ps, f := blame(wl, []*corev1.Pod{p}, note)
		out, fatal = append(out, ps...), fatal || f
	}
	return out, fatal
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

// describe attaches each pod's recent events and the container's last log
// lines and a suggestion to every problem. Each read has a short deadline of
// its own, and all of them together a bound, so a failing API server cannot
// hold the verdict back and a slow read cannot starve the next problem's.
func (w *watcher) describe(ctx context.Context, problems []Problem) []Problem {
	all, cancel := context.WithTimeout(context.WithoutCancel(ctx), describeBound)
	defer cancel()
	read := func(fn func(context.Context)) {
		rctx, cancel := context.WithTimeout(all, describeReadBound)
		defer cancel()
		fn(rctx)
	}
	events := map[string][]string{}
	for i, p := range problems {
		if p.Pod != "" {
			if _, ok := events[p.Pod]; !ok {
				read(func(rctx context.Context) { events[p.Pod] = RecentEvents(rctx, w.cs, w.opts.Namespace, p.Pod, 5) })
			}
			problems[i].Events = events[p.Pod]
			if p.Container != "" {
				read(func(rctx context.Context) {
					problems[i].Logs = LastLogLines(rctx, w.cs, w.opts.Namespace, p.Pod, p.Container, p.Restarts > 0 || p.Class == ExitError, logLines)
				})
			}
		}
		problems[i] = Describe(w.opts.Namespace, problems[i])
	}
	return problems
}

// The bounds of describe: one read, and all of a verdict's reads together.
const (
	describeReadBound = 5 * time.Second
	describeBound     = 15 * time.Second
)

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

// logLines is how many of a failing container's last log lines a report
// quotes: enough for a stack trace's head or a "cannot connect" line.
const logLines = 8

// LastLogLines returns up to n of the container's last log lines (of its
// previous instance when previous is set and there is one), each cut to a
// readable length. Like events, logs enrich a verdict and never decide it:
// nothing comes back when the kubelet cannot give them.
func LastLogLines(ctx context.Context, cs kubernetes.Interface, namespace, pod, container string, previous bool, n int) []string {
	read := func(previous bool) ([]byte, error) {
		tail, limit := int64(n), int64(16<<10)
		return cs.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{
			Container: container, Previous: previous, TailLines: &tail, LimitBytes: &limit,
		}).DoRaw(ctx)
	}
	out, err := read(previous)
	if err != nil && previous {
		// A container that failed before its first restart has no previous
		// instance: its current one is the one that failed.
		out, err = read(false)
	}
	if err != nil {
		return nil
	}
	return tailLines(string(out), n)
}

// tailLines keeps the last n non-blank lines of a log, each cut to 300 bytes
// (on a rune boundary) so one runaway line cannot fill a report.
func tailLines(log string, n int) []string {
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) == "" {
			continue
		}
		if len(l) > 300 {
			cut := 300
			for cut > 0 && !utf8.RuneStart(l[cut]) {
				cut--
			}
			l = l[:cut] + "…"
		}
		lines = append(lines, l)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
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
