package gate_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clientretry "k8s.io/client-go/util/retry"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
)

// statefulSet applies a StatefulSet named name with replicas pods labelled labels (on top of the
// app labels), managed by policy (Parallel, as the monitoring chart's, or OrderedReady).
func statefulSet(t *testing.T, cs kubernetes.Interface, ns, name string, replicas int32, policy appsv1.PodManagementPolicyType, labels map[string]string) {
	t.Helper()
	podLabels := map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "rel"}
	for k, v := range labels {
		podLabels[k] = v
	}
	spec := appsv1.StatefulSetSpec{
		Replicas:            &replicas,
		ServiceName:         name + "-headless",
		PodManagementPolicy: policy,
		Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": name}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: name, Image: "registry.example/" + name + "@sha256:" + strings.Repeat("2", 64)}},
			},
		},
	}
	ctx := context.Background()
	err := clientretry.RetryOnConflict(clientretry.DefaultRetry, func() error {
		existing, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		existing.Spec.Template = spec.Template
		_, err = cs.AppsV1().StatefulSets(ns).Update(ctx, existing, metav1.UpdateOptions{})
		return err
	})
	require.NoError(t, err)
}

func watchSets(ctx context.Context, cs kubernetes.Interface, ns string, timeout time.Duration, names ...string) ([]gate.Status, error) {
	var wls []gate.Workload
	for _, n := range names {
		wls = append(wls, gate.Workload{Service: n, Kind: gate.KindStatefulSet, Name: n})
	}
	return gate.WatchRollout(ctx, cs, gate.RolloutOptions{Namespace: ns, Release: "rel", Workloads: wls,
		Timeout: timeout, UnschedulableGrace: time.Second})
}

// The rollout gate watches StatefulSets: it passes once every replica runs the update revision,
// is ready, and that revision is the current one; it fails fast on a crash-looping pod of the new
// revision, naming workload, pod and reason; and once the template is reverted (what a rollback
// applies) the Parallel pod management policy the monitoring chart uses lets the controller
// replace the crash-looping pod, so the gate passes again.
func TestRolloutWatchesStatefulSets(t *testing.T) {
	t.Parallel()
	cs, ns := namespace(t)
	ctx := context.Background()
	statefulSet(t, cs, ns, "db", 2, appsv1.ParallelPodManagement, nil)
	statuses, err := watchSets(ctx, cs, ns, time.Minute, "db")
	require.NoError(t, err)
	require.Equal(t, gate.PhaseAvailable, statuses[0].Phase)
	require.EqualValues(t, 2, statuses[0].Ready)
	sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, sts.Status.UpdateRevision, sts.Status.CurrentRevision, "the gate passed on a finished rollout")
	good := sts.Status.CurrentRevision

	statefulSet(t, cs, ns, "db", 2, appsv1.ParallelPodManagement, map[string]string{testenv.FaultLabel: testenv.FaultCrashLoop})
	start := time.Now()
	_, err = watchSets(ctx, cs, ns, 2*time.Minute, "db")
	var f *gate.Failure
	require.ErrorAs(t, err, &f)
	require.False(t, f.TimedOut, "fails fast, not by timeout")
	require.Less(t, time.Since(start), time.Minute)
	p := f.Problems[0]
	require.Equal(t, gate.CrashLoop, p.Class)
	require.Equal(t, "db", p.Service)
	require.Equal(t, "StatefulSet/db", p.Workload)
	require.Equal(t, "db-1", p.Pod, "a rolling update replaces the highest ordinal first")
	require.Equal(t, "CrashLoopBackOff", p.Reason)
	require.NotEmpty(t, p.Suggestion)

	statefulSet(t, cs, ns, "db", 2, appsv1.ParallelPodManagement, nil)
	statuses, err = watchSets(ctx, cs, ns, time.Minute, "db")
	require.NoError(t, err, "Parallel: the controller replaces the crash-looping pod of the reverted revision")
	require.EqualValues(t, 2, statuses[0].Ready)
	sts, err = cs.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, good, sts.Status.CurrentRevision, "back on the first revision")
	require.Equal(t, good, sts.Status.UpdateRevision)
}

// Why the monitoring chart's StatefulSets use podManagementPolicy Parallel: under OrderedReady,
// reverting a crash-looping template is not enough, the controller waits for the broken pod to
// become Ready before replacing it (kubernetes/kubernetes#67250). The gate cannot heal that; it
// times out naming the stuck pod, its revision and what to do, instead of an anonymous timeout.
func TestStatefulSetStuckOnABrokenPodIsExplained(t *testing.T) {
	t.Parallel()
	cs, ns := namespace(t)
	ctx := context.Background()
	statefulSet(t, cs, ns, "ordered", 2, appsv1.OrderedReadyPodManagement, nil)
	_, err := watchSets(ctx, cs, ns, time.Minute, "ordered")
	require.NoError(t, err)
	statefulSet(t, cs, ns, "ordered", 2, appsv1.OrderedReadyPodManagement, map[string]string{testenv.FaultLabel: testenv.FaultCrashLoop})
	_, err = watchSets(ctx, cs, ns, time.Minute, "ordered")
	var f *gate.Failure
	require.ErrorAs(t, err, &f)
	require.Equal(t, gate.CrashLoop, f.Problems[0].Class)

	statefulSet(t, cs, ns, "ordered", 2, appsv1.OrderedReadyPodManagement, nil)
	_, err = watchSets(ctx, cs, ns, 6*time.Second, "ordered")
	require.ErrorAs(t, err, &f)
	require.True(t, f.TimedOut, "OrderedReady does not replace the broken pod by itself")
	require.Len(t, f.Problems, 1)
	p := f.Problems[0]
	require.Equal(t, gate.CrashLoop, p.Class)
	require.Equal(t, "ordered-1", p.Pod)
	require.Equal(t, "StatefulSet/ordered", p.Workload)
	require.Contains(t, p.Message, "not the update revision")
	require.Contains(t, p.Message, "delete the pod to let the rollout continue")
}

// A stale informer view must not pass the gate: right after a template change the StatefulSet's
// previous, finished rollout is what a cache may hold. The gate reads the generation first, and
// judges the update revision only once the controller has observed it.
func TestStatefulSetGateJudgesTheNewGeneration(t *testing.T) {
	t.Parallel()
	cs, ns := namespace(t)
	ctx := context.Background()
	statefulSet(t, cs, ns, "web", 1, appsv1.ParallelPodManagement, nil)
	_, err := watchSets(ctx, cs, ns, time.Minute, "web")
	require.NoError(t, err)
	statefulSet(t, cs, ns, "web", 1, appsv1.ParallelPodManagement, map[string]string{testenv.FaultLabel: testenv.FaultNeverReady})
	statuses, err := watchSets(ctx, cs, ns, 5*time.Second, "web")
	var f *gate.Failure
	require.ErrorAs(t, err, &f, "a pod of the new revision that never becomes ready fails the gate")
	require.True(t, f.TimedOut)
	require.Equal(t, gate.NotReady, f.Problems[0].Class)
	require.Equal(t, "web-0", f.Problems[0].Pod)
	require.NotEqual(t, gate.PhaseAvailable, statuses[0].Phase)

	st, problems, err := gate.Snapshot(ctx, cs, ns, []gate.Workload{{Service: "web", Kind: gate.KindStatefulSet, Name: "web"}}, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, gate.PhaseProgressing, st[0].Phase, "status sees the same StatefulSet")
	require.Equal(t, gate.NotReady, problems[0].Class)
}
