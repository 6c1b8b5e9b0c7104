package testenv

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sethvargo/go-retry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Pod faults. Put FaultLabel with one of the Fault* values on a pod (the
// umbrella chart's per-service podLabels value lands on the pod template)
// and the fake kubelet plays that failure instead of a healthy start. The
// promises below are what the harness's own tests check.
const (
	// FaultLabel selects a pod fault.
	FaultLabel = "testenv.krgeobuk.dev/fault"

	// FaultCrashLoop: Running, Ready=False, every container waiting with
	// reason CrashLoopBackOff, lastState terminated (exit 1, reason Error),
	// restartCount starting at 1 and rising by one every 2-3s.
	FaultCrashLoop = "crashloop"
	// FaultImagePull: Pending, containers waiting with reason ErrImagePull,
	// then ImagePullBackOff 1-1.5s later, then ErrImagePull again after
	// 5-7.5s, and round again, as a kubelet retrying the pull does.
	FaultImagePull = "image-pull"
	// FaultExitError: containers terminated with exit code 1, reason Error,
	// never restarted; the pod phase is Failed when restartPolicy is Never,
	// Running otherwise.
	FaultExitError = "exit-error"
	// FaultNeverReady: Running, containers running, Ready stays False.
	FaultNeverReady = "never-ready"
	// FaultSlowReady: Running at once, Ready only after the duration in
	// ReadyAfterAnnotation (Go syntax, e.g. "5s"; default 10s).
	FaultSlowReady = "slow-ready"

	// ReadyAfterAnnotation holds the delay of FaultSlowReady.
	ReadyAfterAnnotation = "testenv.krgeobuk.dev/ready-after"

	// UnschedulableSelectorKey never matches a node: a pod with a
	// nodeSelector on it (any value) stays Pending, and kube-scheduler
	// marks it PodScheduled=False, reason Unschedulable. No label needed.
	UnschedulableSelectorKey = "testenv.krgeobuk.dev/unschedulable"

	// NodeFaultLabel with value NodeNotReady makes the fake kubelet of a
	// node report Ready=False (SetNodeReady sets and removes it).
	NodeFaultLabel = "testenv.krgeobuk.dev/node-fault"
	// NodeNotReady is the NodeFaultLabel value for a NotReady node.
	NodeNotReady = "not-ready"
)

// Faults lists every FaultLabel value.
func Faults() []string {
	return []string{FaultCrashLoop, FaultImagePull, FaultExitError, FaultNeverReady, FaultSlowReady}
}

// faultBound bounds how long a fault injection may take to show.
const faultBound = time.Minute

// StopAPIServer stops kube-apiserver and returns once it has exited and
// been reaped. It gets SIGTERM, on which it stops listening at once, then
// SIGKILL after 2s: draining its requests can otherwise take a minute.
// etcd keeps the data; clients see connection refused until StartAPIServer.
func (c *Cluster) StopAPIServer(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[compAPIServer]
	if p == nil {
		return fmt.Errorf("testenv: cluster %s has no API server", c.name)
	}
	if err := p.stop(2 * time.Second); err != nil {
		return fmt.Errorf("testenv: cluster %s: stop API server: %w", c.name, err)
	}
	return nil
}

// StartAPIServer starts kube-apiserver again on the same port with the same
// data and returns once it is ready. Starting a running API server is an
// error.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[compAPIServer]
	if p == nil {
		return fmt.Errorf("testenv: cluster %s has no API server", c.name)
	}
	if done, _ := p.exited(); !done {
		return fmt.Errorf("testenv: cluster %s: API server is already running", c.name)
	}
	if err := p.start(); err != nil {
		return fmt.Errorf("testenv: cluster %s: %w", c.name, err)
	}
	if err := c.waitHealthy(ctx, p, 3*time.Minute, c.apiserverReady); err != nil {
		return fmt.Errorf("testenv: cluster %s: restart API server: %w", c.name, err)
	}
	return nil
}

// StopControllerManager stops kube-controller-manager (SIGTERM, SIGKILL
// after 2s) and returns once it has exited and been reaped: the API server
// keeps answering and accepting changes, but no controller acts on them (no
// Deployment observes its new generation, no ReplicaSet creates pods), as
// when the controller manager crashed or lost its leader lease.
func (c *Cluster) StopControllerManager(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[compControllerManager]
	if p == nil {
		return fmt.Errorf("testenv: cluster %s has no controller manager", c.name)
	}
	if err := p.stop(2 * time.Second); err != nil {
		return fmt.Errorf("testenv: cluster %s: stop controller manager: %w", c.name, err)
	}
	return nil
}

// StartControllerManager starts kube-controller-manager again and returns
// once it reports healthy. Starting a running one is an error.
func (c *Cluster) StartControllerManager(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[compControllerManager]
	if p == nil {
		return fmt.Errorf("testenv: cluster %s has no controller manager", c.name)
	}
	if done, _ := p.exited(); !done {
		return fmt.Errorf("testenv: cluster %s: controller manager is already running", c.name)
	}
	if err := p.start(); err != nil {
		return fmt.Errorf("testenv: cluster %s: %w", c.name, err)
	}
	if err := c.waitHealthy(ctx, p, 2*time.Minute, c.componentHealthy(c.ports.controllerManager)); err != nil {
		return fmt.Errorf("testenv: cluster %s: restart controller manager: %w", c.name, err)
	}
	return nil
}

// SetNodeReady makes a node's fake kubelet report Ready=False (ready false)
// or Ready=True again, and returns once the node's Ready condition says so.
// The controller manager reacts as it does to a kubelet reporting NotReady:
// the node gets the node.kubernetes.io/not-ready NoSchedule and NoExecute
// taints, so new pods go elsewhere and pods without a matching toleration
// are evicted after their tolerationSeconds (300s by default). The taints
// go away once the node is Ready again.
func (c *Cluster) SetNodeReady(ctx context.Context, node string, ready bool) error {
	if !slices.Contains(c.nodes, node) {
		return fmt.Errorf("testenv: cluster %s has no node %q (nodes: %v)", c.name, node, c.nodes)
	}
	value, want := `null`, corev1.ConditionTrue
	if !ready {
		value, want = `"`+NodeNotReady+`"`, corev1.ConditionFalse
	}
	patch := []byte(`{"metadata":{"labels":{"` + NodeFaultLabel + `":` + value + `}}}`)
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("testenv: node %s: set label %s: %w", node, NodeFaultLabel, err)
	}
	ctx, cancel := context.WithTimeout(ctx, faultBound)
	defer cancel()
	var got corev1.ConditionStatus
	err := retry.Do(ctx, retry.NewConstant(200*time.Millisecond), func(ctx context.Context) error {
		n, err := c.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return retry.RetryableError(err)
		}
		if got = nodeReady(n); got != want {
			return retry.RetryableError(fmt.Errorf("Ready=%s", got))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testenv: node %s: Ready=%s, want %s within %s: %w", node, got, want, faultBound, err)
	}
	return nil
}
