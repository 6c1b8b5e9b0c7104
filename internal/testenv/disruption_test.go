package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
)

// Not parallel: the other tests of the shared cluster wait until it is done.
func TestAPIServerRestartIsSurvivedByARetryingClient(t *testing.T) {
	c, client := clientFor(t)
	ns := namespace(t, client)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	hostBefore := c.RESTConfig().Host

	_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "before"}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	require.NoError(t, c.StopAPIServer(ctx))
	t.Cleanup(func() {
		// Leave the shared cluster usable even when an assertion failed.
		_ = c.StartAPIServer(context.Background())
	})
	_, err = client.CoreV1().ConfigMaps(ns).Get(ctx, "before", metav1.GetOptions{})
	require.Error(t, err, "the API server still answers after StopAPIServer")

	// The client retries within a budget; it reports its first failure so
	// the restart surely happens while it is retrying.
	failedOnce := make(chan struct{})
	result := make(chan error, 1)
	attempts := 0
	go func() {
		budget := retry.WithMaxDuration(3*time.Minute, retry.NewConstant(250*time.Millisecond))
		result <- retry.Do(ctx, budget, func(ctx context.Context) error {
			attempts++
			_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "during"}}, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				if attempts == 1 {
					close(failedOnce)
				}
				return retry.RetryableError(err)
			}
			return nil
		})
	}()
	select {
	case <-failedOnce:
	case err := <-result:
		require.FailNow(t, "the client's first call succeeded while the API server was stopped", "result: %v", err)
	case <-ctx.Done():
		require.FailNow(t, "the client never tried", ctx.Err().Error())
	}

	require.NoError(t, c.StartAPIServer(ctx))
	require.NoError(t, <-result, "the retrying client did not get through after the restart")
	require.Greater(t, attempts, 1)
	require.Equal(t, hostBefore, c.RESTConfig().Host, "the API server moved")

	before, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "before", metav1.GetOptions{})
	require.NoError(t, err, "data written before the restart is gone")
	require.Equal(t, "v", before.Data["k"])
	require.Error(t, c.StartAPIServer(ctx), "starting a running API server must fail")

	// Controllers, scheduler and kwok reconnected: a new Deployment rolls out.
	_, err = client.AppsV1().Deployments(ns).Create(ctx, deployment("after", 2, "nginx:1.27"), metav1.CreateOptions{})
	require.NoError(t, err)
	waitDeployment(ctx, t, client, ns, "after")
}

func TestNodeNotReadyAndBack(t *testing.T) {
	t.Parallel()
	c := testenv.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	node := c.Nodes()[len(c.Nodes())-1]

	err := c.SetNodeReady(ctx, "no-such-node", false)
	require.ErrorContains(t, err, `"no-such-node"`)

	require.NoError(t, c.SetNodeReady(ctx, node, false))
	t.Cleanup(func() { _ = c.SetNodeReady(context.Background(), node, true) })
	got := waitNode(ctx, t, node, "NotReady with the not-ready NoSchedule and NoExecute taints", func(n *corev1.Node) bool {
		return nodeReadyStatus(n) == corev1.ConditionFalse &&
			hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule) &&
			hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)
	})
	for _, cond := range got.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			require.Contains(t, cond.Message, testenv.NodeFaultLabel, "the condition should say who made the node NotReady")
		}
	}

	require.NoError(t, c.SetNodeReady(ctx, node, true))
	waitNode(ctx, t, node, "Ready without not-ready taints", func(n *corev1.Node) bool {
		return nodeReadyStatus(n) == corev1.ConditionTrue &&
			!hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule) &&
			!hasTaint(n, corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)
	})
}

func waitNode(ctx context.Context, t *testing.T, name, what string, cond func(*corev1.Node) bool) *corev1.Node {
	t.Helper()
	_, client := clientFor(t)
	lw := cache.NewListWatchFromClient(client.CoreV1().RESTClient(), "nodes", "", fields.OneTermEqualSelector("metadata.name", name))
	var last *corev1.Node
	ev, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Node)
		if !ok {
			return false, nil
		}
		last = n
		return cond(n), nil
	})
	if err != nil {
		status := any("never seen")
		if last != nil {
			status = struct {
				Conditions []corev1.NodeCondition
				Taints     []corev1.Taint
			}{last.Status.Conditions, last.Spec.Taints}
		}
		require.NoError(t, err, "node %s never became %s; last: %+v", name, what, status)
	}
	return ev.Object.(*corev1.Node)
}

func nodeReadyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func hasTaint(n *corev1.Node, key string, effect corev1.TaintEffect) bool {
	for _, taint := range n.Spec.Taints {
		if taint.Key == key && taint.Effect == effect {
			return true
		}
	}
	return false
}
