package testenv_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// clientFor returns a typed client of the package's cluster.
func clientFor(t *testing.T) (*testenv.Cluster, kubernetes.Interface) {
	t.Helper()
	c := testenv.Shared(t)
	client, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	return c, client
}

// namespace creates a namespace of the test's own, deleted at the end.
func namespace(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-") + "-" + hex.EncodeToString(suffix)
	_, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

func deployment(name string, replicas int32, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

// waitDeployment watches the Deployment until it is fully rolled out at its
// current generation: every replica updated and available.
func waitDeployment(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, name string) *appsv1.Deployment {
	t.Helper()
	lw := cache.NewListWatchFromClient(client.AppsV1().RESTClient(), "deployments", ns, fields.OneTermEqualSelector("metadata.name", name))
	var last *appsv1.Deployment
	_, err := watchtools.UntilWithSync(ctx, lw, &appsv1.Deployment{}, nil, func(ev watch.Event) (bool, error) {
		d, ok := ev.Object.(*appsv1.Deployment)
		if !ok {
			return false, nil
		}
		last = d
		want := *d.Spec.Replicas
		return d.Status.ObservedGeneration >= d.Generation &&
			d.Status.UpdatedReplicas == want && d.Status.AvailableReplicas == want &&
			d.Status.ReadyReplicas == want && d.Status.Replicas == want, nil
	})
	require.NoError(t, err, "deployment %s/%s did not roll out; last status: %+v", ns, name, statusOf(last))
	return last
}

func statusOf(d *appsv1.Deployment) any {
	if d == nil {
		return "never seen"
	}
	return d.Status
}

func TestDeploymentRollsOutToFullAvailability(t *testing.T) {
	t.Parallel()
	c, client := clientFor(t)
	ns := namespace(t, client)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, err := client.AppsV1().Deployments(ns).Create(ctx, deployment("web", 3, "nginx:1.27"), metav1.CreateOptions{})
	require.NoError(t, err)
	d := waitDeployment(ctx, t, client, ns, "web")

	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	require.Len(t, pods.Items, 3)
	for _, p := range pods.Items {
		require.Equal(t, corev1.PodRunning, p.Status.Phase, "pod %s", p.Name)
		require.True(t, podReady(&p), "pod %s is not Ready", p.Name)
		require.Contains(t, c.Nodes(), p.Spec.NodeName, "pod %s was scheduled to a node the cluster does not have", p.Name)
		require.NotEmpty(t, p.Status.PodIP, "pod %s has no IP", p.Name)
	}

	// A rolling update replaces every pod: the controllers keep reconciling.
	d.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
	_, err = client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	waitDeployment(ctx, t, client, ns, "web")
	pods, err = client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	running := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			running++
			require.Equal(t, "nginx:1.28", p.Spec.Containers[0].Image, "pod %s survived the rollout", p.Name)
		}
	}
	require.Equal(t, 3, running)
}

func podReady(p *corev1.Pod) bool {
	return podCondition(p, corev1.PodReady) == corev1.ConditionTrue
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

// podWatch follows one pod from before its creation, so no state it goes
// through is missed.
type podWatch struct {
	w    watch.Interface
	last *corev1.Pod
	// invariant, when set, must hold for every status the fake kubelet
	// has written (the pod has an IP), not just the awaited one.
	invariant func(*corev1.Pod) error
}

func watchPod(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, name string) *podWatch {
	t.Helper()
	w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	return &podWatch{w: w}
}

// until consumes events until cond holds for the pod, and fails the test
// with the pod's last status when ctx ends first.
func (pw *podWatch) until(ctx context.Context, t *testing.T, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	if pw.last != nil && cond(pw.last) {
		return pw.last
	}
	for {
		select {
		case <-ctx.Done():
			require.FailNow(t, "pod never reached state", "%s: %v; last status: %s", what, ctx.Err(), describe(pw.last))
		case ev, ok := <-pw.w.ResultChan():
			require.True(t, ok, "watch closed while waiting for: %s; last status: %s", what, describe(pw.last))
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			pw.last = p
			if pw.invariant != nil && p.Status.PodIP != "" {
				if err := pw.invariant(p); err != nil {
					require.FailNow(t, "pod broke its promise", "%v; status: %s", err, describe(p))
				}
			}
			if cond(p) {
				return p
			}
		}
	}
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "pod never seen"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pod %s/%s phase=%s node=%q", p.Namespace, p.Name, p.Status.Phase, p.Spec.NodeName)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s(%s)", c.Type, c.Status, c.Reason)
	}
	for _, cs := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, " container %s ready=%v restarts=%d state=%+v last=%+v", cs.Name, cs.Ready, cs.RestartCount, cs.State, cs.LastTerminationState)
	}
	return b.String()
}

func pod(name string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
}
