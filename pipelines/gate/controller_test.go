package gate_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
)

// TestControllerNotActing: with kube-controller-manager stopped no
// Deployment observes its new generation. The gate names that after the
// controller grace instead of waiting out its timeout, and passes once the
// controller is back.
func TestControllerNotActing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A stopped controller manager would stall the shared cluster's other
	// tests: this one has a cluster of its own.
	c, err := testenv.Start(ctx, testenv.Options{Name: "gate-no-controller", Dir: t.TempDir(), Log: os.Stderr})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Stop()) })
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	ns := "controller"
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	deployment(t, cs, ns, "web", 1, nil, nil, nil)
	_, err = watch(ctx, cs, ns, time.Minute, time.Second, nil, "web")
	require.NoError(t, err)

	require.NoError(t, c.StopControllerManager(ctx))
	deployment(t, cs, ns, "web", 1, map[string]string{"rev": "2"}, nil, nil)
	wls := []gate.Workload{{Service: "web", Kind: gate.KindDeployment, Name: "web"}}
	start := time.Now()
	_, err = gate.WatchRollout(ctx, cs, gate.RolloutOptions{Namespace: ns, Release: "rel", Workloads: wls,
		Timeout: time.Minute, ControllerGrace: 2 * time.Second})
	var f *gate.Failure
	require.ErrorAs(t, err, &f)
	require.False(t, f.TimedOut)
	require.Less(t, time.Since(start), 30*time.Second, "bounded by the grace, not the timeout")
	p := f.Problems[0]
	require.Equal(t, gate.ControllerNotActing, p.Class)
	require.Equal(t, "web", p.Service)
	require.Regexp(t, `^the Deployment controller has not observed generation 2 of Deployment/web for [2-9]s \(observed: 1\): is kube-controller-manager running\?$`, p.Message)
	require.Contains(t, p.Suggestion, "kube-controller-manager")

	require.NoError(t, c.StartControllerManager(ctx))
	_, err = gate.WatchRollout(ctx, cs, gate.RolloutOptions{Namespace: ns, Release: "rel", Workloads: wls,
		Timeout: time.Minute, ControllerGrace: 30 * time.Second})
	require.NoError(t, err, "the controller acts again")
}
