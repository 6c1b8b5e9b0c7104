package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
)

// step is one state a pod must reach, in order; check, when set, asserts
// more about the pod once it is there.
type step struct {
	what  string
	cond  func(*corev1.Pod) bool
	check func(*testing.T, *corev1.Pod)
}

func container(p *corev1.Pod) corev1.ContainerStatus {
	if len(p.Status.ContainerStatuses) == 0 {
		return corev1.ContainerStatus{}
	}
	return p.Status.ContainerStatuses[0]
}

func waitingReason(p *corev1.Pod) string {
	if w := container(p).State.Waiting; w != nil {
		return w.Reason
	}
	return ""
}

func TestFaultStagesProduceThePromisedPodStatus(t *testing.T) {
	t.Parallel()
	_, client := clientFor(t)
	ns := namespace(t, client)

	// crashloop: restartCount must rise past the first value seen.
	var firstRestarts int32 = -1
	crashLooping := func(p *corev1.Pod) error {
		cs := container(p)
		last := cs.LastTerminationState.Terminated
		if p.Status.Phase != corev1.PodRunning || podReady(p) || cs.Ready || waitingReason(p) != "CrashLoopBackOff" ||
			last == nil || last.ExitCode != 1 || last.Reason != "Error" {
			return errors.New("want Running, not Ready, waiting CrashLoopBackOff, last state terminated with exit 1, reason Error")
		}
		return nil
	}
	terminatedWithError := func(phase corev1.PodPhase) func(p *corev1.Pod) error {
		return func(p *corev1.Pod) error {
			term := container(p).State.Terminated
			if p.Status.Phase != phase || term == nil || term.ExitCode != 1 || term.Reason != "Error" || podReady(p) {
				return fmt.Errorf("want %s, not Ready, container terminated with exit 1, reason Error", phase)
			}
			return nil
		}
	}
	phaseNotReady := func(phase corev1.PodPhase) func(p *corev1.Pod) error {
		return func(p *corev1.Pod) error {
			if p.Status.Phase != phase || podReady(p) {
				return fmt.Errorf("want %s and not Ready", phase)
			}
			return nil
		}
	}
	cases := []struct {
		name          string
		labels        map[string]string
		annotations   map[string]string
		restartPolicy corev1.RestartPolicy
		nodeSelector  map[string]string
		steps         []step
		invariant     func(*corev1.Pod) error // holds from the kubelet's first status on
		event         string                  // reason of a Warning event the pod must get
	}{
		{
			name: "no label: Running and Ready",
			invariant: func(p *corev1.Pod) error {
				if p.Status.Phase != corev1.PodRunning || container(p).State.Running == nil {
					return errors.New("want Running with its container running")
				}
				return nil
			},
			steps: []step{{what: "Running, Ready, container running and ready", cond: func(p *corev1.Pod) bool {
				cs := container(p)
				return p.Status.Phase == corev1.PodRunning && podReady(p) && cs.Ready && cs.State.Running != nil && p.Status.PodIP != ""
			}}},
		},
		{
			name:   "unknown fault value: treated as healthy",
			labels: map[string]string{testenv.FaultLabel: "no-such-fault"},
			steps: []step{{what: "Running and Ready", cond: func(p *corev1.Pod) bool {
				return p.Status.Phase == corev1.PodRunning && podReady(p)
			}}},
		},
		{
			name:      testenv.FaultCrashLoop,
			labels:    map[string]string{testenv.FaultLabel: testenv.FaultCrashLoop},
			invariant: crashLooping,
			steps: []step{
				{what: "restartCount of at least 1", cond: func(p *corev1.Pod) bool {
					firstRestarts = container(p).RestartCount
					return p.Status.PodIP != "" && firstRestarts >= 1
				}},
				{what: "restartCount rising by two more", cond: func(p *corev1.Pod) bool {
					return container(p).RestartCount >= firstRestarts+2
				}},
			},
			event: "BackOff",
		},
		{
			name:   testenv.FaultImagePull,
			labels: map[string]string{testenv.FaultLabel: testenv.FaultImagePull},
			invariant: func(p *corev1.Pod) error {
				if err := phaseNotReady(corev1.PodPending)(p); err != nil {
					return err
				}
				if r := waitingReason(p); r != "ErrImagePull" && r != "ImagePullBackOff" {
					return fmt.Errorf("waiting reason %q, want ErrImagePull or ImagePullBackOff", r)
				}
				return nil
			},
			steps: []step{
				{what: "ErrImagePull first", cond: func(p *corev1.Pod) bool {
					return p.Status.PodIP != "" && waitingReason(p) == "ErrImagePull"
				}},
				{what: "then ImagePullBackOff", cond: func(p *corev1.Pod) bool { return waitingReason(p) == "ImagePullBackOff" }},
				{what: "then ErrImagePull again (the pull is retried)", cond: func(p *corev1.Pod) bool { return waitingReason(p) == "ErrImagePull" }},
			},
			event: "Failed",
		},
		{
			name:      testenv.FaultExitError + " (restartPolicy Always)",
			labels:    map[string]string{testenv.FaultLabel: testenv.FaultExitError},
			invariant: terminatedWithError(corev1.PodRunning),
			steps:     []step{{what: "the kubelet's status", cond: func(p *corev1.Pod) bool { return p.Status.PodIP != "" }}},
		},
		{
			name:          testenv.FaultExitError + " (restartPolicy Never)",
			labels:        map[string]string{testenv.FaultLabel: testenv.FaultExitError},
			restartPolicy: corev1.RestartPolicyNever,
			invariant:     terminatedWithError(corev1.PodFailed),
			steps:         []step{{what: "the kubelet's status", cond: func(p *corev1.Pod) bool { return p.Status.PodIP != "" }}},
		},
		{
			name:        testenv.FaultSlowReady,
			labels:      map[string]string{testenv.FaultLabel: testenv.FaultSlowReady},
			annotations: map[string]string{testenv.ReadyAfterAnnotation: "4s"},
			invariant: func(p *corev1.Pod) error {
				if p.Status.Phase != corev1.PodRunning || container(p).State.Running == nil {
					return errors.New("want Running with its container running")
				}
				return nil
			},
			steps: []step{
				{what: "not Ready at first", cond: func(p *corev1.Pod) bool { return p.Status.PodIP != "" && !podReady(p) }},
				{what: "Ready", cond: podReady, check: func(t *testing.T, p *corev1.Pod) {
					require.NotNil(t, p.Status.StartTime)
					for _, c := range p.Status.Conditions {
						if c.Type == corev1.PodReady {
							// Conditions carry whole seconds: 4s may read as 3s.
							require.GreaterOrEqual(t, c.LastTransitionTime.Sub(p.Status.StartTime.Time), 3*time.Second,
								"slow-ready pod became Ready too early: %s", describe(p))
						}
					}
				}},
			},
		},
		{
			name:         "unschedulable nodeSelector",
			nodeSelector: map[string]string{testenv.UnschedulableSelectorKey: "true"},
			steps: []step{{what: "PodScheduled=False, reason Unschedulable", cond: func(p *corev1.Pod) bool {
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
						return p.Spec.NodeName == "" && p.Status.Phase == corev1.PodPending
					}
				}
				return false
			}}},
		},
		{
			name:          "no label, restartPolicy Never: runs to completion",
			restartPolicy: corev1.RestartPolicyNever,
			steps: []step{{what: "Succeeded, container terminated: exit 0, Completed", cond: func(p *corev1.Pod) bool {
				term := container(p).State.Terminated
				return p.Status.Phase == corev1.PodSucceeded && term != nil && term.ExitCode == 0 && term.Reason == "Completed"
			}}},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			name := fmt.Sprintf("pod-%d", i)
			pw := watchPod(ctx, t, client, ns, name)
			pw.invariant = tc.invariant
			p := pod(name, tc.labels, tc.annotations)
			p.Spec.NodeSelector = tc.nodeSelector
			if tc.restartPolicy != "" {
				p.Spec.RestartPolicy = tc.restartPolicy
			}
			_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			require.NoError(t, err)
			for _, s := range tc.steps {
				got := pw.until(ctx, t, s.what, s.cond)
				if s.check != nil {
					s.check(t, got)
				}
			}
			if tc.event != "" {
				requireEvent(ctx, t, client, ns, name, tc.event)
			}
		})
	}
}

// requireEvent polls (bounded) for an event of the given reason about the pod.
func requireEvent(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, pod, reason string) {
	t.Helper()
	sel := fields.AndSelectors(fields.OneTermEqualSelector("involvedObject.name", pod), fields.OneTermEqualSelector("reason", reason)).String()
	err := retry.Do(ctx, retry.NewConstant(250*time.Millisecond), func(ctx context.Context) error {
		evs, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return retry.RetryableError(err)
		}
		if len(evs.Items) == 0 {
			return retry.RetryableError(errors.New("no event yet"))
		}
		return nil
	})
	require.NoError(t, err, "pod %s/%s got no %s event", ns, pod, reason)
}

// A never-ready pod must still be not Ready after a slow-ready pod started
// beside it, later, has become Ready: the observation window is measured by
// the cluster, not by a sleep.
func TestNeverReadyStaysNotReady(t *testing.T) {
	t.Parallel()
	_, client := clientFor(t)
	ns := namespace(t, client)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	never := watchPod(ctx, t, client, ns, "never")
	_, err := client.CoreV1().Pods(ns).Create(ctx, pod("never", map[string]string{testenv.FaultLabel: testenv.FaultNeverReady}, nil), metav1.CreateOptions{})
	require.NoError(t, err)
	never.until(ctx, t, "Running with its container running, not Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && container(p).State.Running != nil && !podReady(p)
	})

	clock := watchPod(ctx, t, client, ns, "clock")
	_, err = client.CoreV1().Pods(ns).Create(ctx, pod("clock",
		map[string]string{testenv.FaultLabel: testenv.FaultSlowReady},
		map[string]string{testenv.ReadyAfterAnnotation: "3s"}), metav1.CreateOptions{})
	require.NoError(t, err)
	clock.until(ctx, t, "Ready", podReady)

	// Every status the never-ready pod went through is queued in its watch.
	for drained := false; !drained; {
		select {
		case ev := <-never.w.ResultChan():
			if p, ok := ev.Object.(*corev1.Pod); ok {
				require.False(t, podReady(p), "never-ready pod became Ready: %s", describe(p))
			}
		default:
			drained = true
		}
	}
	got, err := client.CoreV1().Pods(ns).Get(ctx, "never", metav1.GetOptions{})
	require.NoError(t, err)
	require.False(t, podReady(got), "never-ready pod became Ready: %s", describe(got))
	require.Equal(t, corev1.PodRunning, got.Status.Phase)
}
