package realnode_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/realnode"
)

func TestMain(m *testing.M) { os.Exit(realnode.Main(m)) }

// webImage builds testdata/web once and pushes it to the node's registry.
var webImage struct {
	once sync.Once
	ref  string
	err  error
}

func pushWeb(t *testing.T, c *realnode.Cluster) string {
	t.Helper()
	webImage.once.Do(func() {
		dir, err := os.MkdirTemp("", "krgeobuk-realnode-web-")
		if err != nil {
			webImage.err = err
			return
		}
		defer func() { _ = os.RemoveAll(dir) }()
		bin := filepath.Join(dir, "web") // the image runs /web
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/web")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			webImage.err = fmt.Errorf("build testdata/web: %w: %s", err, out)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		webImage.ref, webImage.err = c.PushBinaryImage(ctx, "test/web", "v1", bin)
	})
	require.NoError(t, webImage.err)
	return webImage.ref
}

func namespace(t *testing.T, client kubernetes.Interface, name string) string {
	t.Helper()
	ctx := context.Background()
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// Pods need their namespace's default ServiceAccount.
	require.NoError(t, poll(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err
	}))
	return name
}

func poll(ctx context.Context, bound time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last error
	err := retry.Do(ctx, retry.NewConstant(250*time.Millisecond), func(ctx context.Context) error {
		if last = f(ctx); last != nil {
			return retry.RetryableError(last)
		}
		return nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	return err
}

// restricted is a container security context that Pod Security
// "restricted" admits: the node really runs it (read-only root, non-root,
// no capabilities, seccomp RuntimeDefault).
func restricted() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		ReadOnlyRootFilesystem:   ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func webDeployment(ns, name, image string, replicas int32, labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(int64(1)),
					Containers: []corev1.Container{{
						Name:            "web",
						Image:           image,
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						SecurityContext: restricted(),
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
}

func waitAvailable(ctx context.Context, client kubernetes.Interface, ns, name string, bound time.Duration) error {
	return poll(ctx, bound, func(ctx context.Context) error {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.ReadyReplicas == *d.Spec.Replicas {
				return nil
			}
		}
		return fmt.Errorf("deployment %s/%s: %d/%d ready", ns, name, d.Status.ReadyReplicas, *d.Spec.Replicas)
	})
}

func TestNodeReady(t *testing.T) {
	c := realnode.Shared(t)
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx := context.Background()
	n, err := client.CoreV1().Nodes().Get(ctx, c.NodeName(), metav1.GetOptions{})
	require.NoError(t, err)
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = cond.Status == corev1.ConditionTrue
		}
	}
	require.True(t, ready, "node %s not Ready: %+v", n.Name, n.Status.Conditions)
	require.True(t, strings.HasPrefix(n.Status.NodeInfo.ContainerRuntimeVersion, "containerd://"), n.Status.NodeInfo.ContainerRuntimeVersion)
	require.Equal(t, "v1.37.2", n.Status.NodeInfo.KubeletVersion)
	require.Contains(t, n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: realnode.NodeIP})
	// The kubernetes Service leads pods to the API server on the node.
	slices, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
	require.NoError(t, err)
	require.NotEmpty(t, slices.Items)
	require.Equal(t, []string{realnode.NodeIP}, slices.Items[0].Endpoints[0].Addresses)

	var total uint64
	mem := c.ResidentMemory()
	for _, b := range mem {
		total += b
	}
	t.Logf("idle resident memory of the node: %d MiB (%v)", total>>20, mibs(mem))
}

func mibs(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		out[k] = v >> 20
	}
	return out
}

// TestDeploymentAvailable: an image pushed to the local registry is pulled
// by containerd and run; the kubelet's real readiness probe makes the
// Deployment Available.
func TestDeploymentAvailable(t *testing.T) {
	c := realnode.Shared(t)
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx := context.Background()
	image := pushWeb(t, c)
	ns := namespace(t, client, "deploy-available")
	start := time.Now()
	_, err := client.AppsV1().Deployments(ns).Create(ctx, webDeployment(ns, "web", image, 2, map[string]string{"app": "web"}), metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, waitAvailable(ctx, client, ns, "web", 2*time.Minute))
	t.Logf("2-replica Deployment Available %s after create (image pulled from %s)", time.Since(start).Round(10*time.Millisecond), c.Registry())

	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	require.Len(t, pods.Items, 2)
	for _, p := range pods.Items {
		require.Equal(t, corev1.PodRunning, p.Status.Phase)
		require.True(t, strings.HasPrefix(p.Status.PodIP, "10.244.0."), p.Status.PodIP)
		require.NotEmpty(t, p.Status.ContainerStatuses[0].ImageID)
	}
}

// exec runs the web client in a pod with kubectl exec; it returns its
// output and whether it exited 0.
func execIn(ctx context.Context, c *realnode.Cluster, ns, pod string, args ...string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := c.Kubectl(ctx, append([]string{"exec", "-n", ns, pod, "--", "/web"}, args...)...).CombinedOutput()
	return string(out), err == nil
}

func runningPod(t *testing.T, client kubernetes.Interface, ns, selector string) string {
	t.Helper()
	pods, err := client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	require.NoError(t, err)
	require.NotEmpty(t, pods.Items)
	return pods.Items[0].Name
}

// TestServiceAndDNS: a pod resolves a Service's name through CoreDNS (at
// the kubelet's clusterDNS, itself a Service) and reaches the Service's
// ClusterIP through kube-proxy's nftables rules.
func TestServiceAndDNS(t *testing.T) {
	c := realnode.Shared(t)
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx := context.Background()
	image := pushWeb(t, c)
	ns := namespace(t, client, "service-dns")
	labels := map[string]string{"app": "web"}
	_, err := client.AppsV1().Deployments(ns).Create(ctx, webDeployment(ns, "web", image, 1, labels), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = client.AppsV1().Deployments(ns).Create(ctx, webDeployment(ns, "client", image, 1, map[string]string{"app": "client"}), metav1.CreateOptions{})
	require.NoError(t, err)
	svc, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, waitAvailable(ctx, client, ns, "web", 2*time.Minute))
	require.NoError(t, waitAvailable(ctx, client, ns, "client", 2*time.Minute))
	clientPod := runningPod(t, client, ns, "app=client")

	name := "web." + ns + ".svc." + realnode.ClusterDomain
	var out string
	require.NoError(t, poll(ctx, 30*time.Second, func(ctx context.Context) error {
		var ok bool
		if out, ok = execIn(ctx, c, ns, clientPod, "resolve", name); !ok {
			return fmt.Errorf("resolve %s: %s", name, out)
		}
		return nil
	}))
	require.Equal(t, svc.Spec.ClusterIP, strings.TrimSpace(out), "%s resolves to the Service's ClusterIP", name)
	// The short name, through the pod's search path.
	require.NoError(t, poll(ctx, 30*time.Second, func(ctx context.Context) error {
		if out, ok := execIn(ctx, c, ns, clientPod, "get", "http://web/"); !ok {
			return fmt.Errorf("get http://web/: %s", out)
		}
		return nil
	}))
	_, ok := execIn(ctx, c, ns, clientPod, "resolve", "no-such-service."+ns+".svc."+realnode.ClusterDomain)
	require.False(t, ok, "a name with no Service does not resolve")
}

// TestNetworkPolicyBlocks proves the policy agent enforces: with a
// default-deny ingress policy, fresh connections from pods to a pod and to
// its Service fail, and the API server's service proxy (the API server is
// not root on the node) fails too; an allow rule re-opens only the client
// it selects. With the agent absent (or unpatched: it then programs
// nothing on this kernel) the "blocked" waits run out and the test fails.
func TestNetworkPolicyBlocks(t *testing.T) {
	c := realnode.Shared(t)
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx := context.Background()
	image := pushWeb(t, c)
	ns := namespace(t, client, "policy")
	_, err := client.AppsV1().Deployments(ns).Create(ctx, webDeployment(ns, "server", image, 1, map[string]string{"app": "server"}), metav1.CreateOptions{})
	require.NoError(t, err)
	for _, role := range []string{"allowed", "denied"} {
		_, err := client.AppsV1().Deployments(ns).Create(ctx, webDeployment(ns, role, image, 1, map[string]string{"app": role}), metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err = client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "server", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "server"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, d := range []string{"server", "allowed", "denied"} {
		require.NoError(t, waitAvailable(ctx, client, ns, d, 2*time.Minute))
	}
	serverPods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=server"})
	require.NoError(t, err)
	podURL := "http://" + serverPods.Items[0].Status.PodIP + ":8080/"
	svcURL := "http://server." + ns + ".svc/"
	allowed, denied := runningPod(t, client, ns, "app=allowed"), runningPod(t, client, ns, "app=denied")
	// The API server keeps proxied connections alive, and an open
	// connection survives a new policy: before the policy it proxies to
	// the server's Service, after it to a pod it never connected to (every
	// pod of the namespace is under the default-deny).
	proxy := func(ctx context.Context, path string) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return client.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/" + ns + path).Do(ctx).Error()
	}

	reach := func(pod, url string, want bool, bound time.Duration) error {
		return poll(ctx, bound, func(ctx context.Context) error {
			out, ok := execIn(ctx, c, ns, pod, "get", url)
			if ok != want {
				return fmt.Errorf("%s -> %s: reached=%v, want %v (%s)", pod, url, ok, want, strings.TrimSpace(out))
			}
			return nil
		})
	}
	// Before any policy every flow works.
	for _, pod := range []string{allowed, denied} {
		for _, url := range []string{podURL, svcURL} {
			require.NoError(t, reach(pod, url, true, 30*time.Second))
		}
	}
	require.NoError(t, poll(ctx, 30*time.Second, func(ctx context.Context) error { return proxy(ctx, "/services/server:80/proxy/healthz") }), "service proxy before any policy")
	require.NoError(t, poll(ctx, 30*time.Second, func(ctx context.Context) error { return proxy(ctx, "/pods/"+allowed+":8080/proxy/healthz") }), "pod proxy before any policy")

	_, err = client.NetworkingV1().NetworkPolicies(ns).Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: ns},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{}, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, pod := range []string{allowed, denied} {
		for _, url := range []string{podURL, svcURL} {
			require.NoError(t, reach(pod, url, false, 30*time.Second), "default-deny blocks")
		}
	}
	// The same request as to the allowed pod before, to its twin.
	err = proxy(ctx, "/pods/"+denied+":8080/proxy/healthz")
	require.Error(t, err, "the non-root API server's proxy is subject to the policy")
	t.Logf("API server proxy under default-deny: %v", err)

	_, err = client.NetworkingV1().NetworkPolicies(ns).Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-allowed", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "allowed"}}}},
			}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, url := range []string{podURL, svcURL} {
		require.NoError(t, reach(allowed, url, true, 30*time.Second), "the allow rule re-opens the selected client")
		out, ok := execIn(ctx, c, ns, denied, "get", url)
		require.False(t, ok, "the allow rule re-opens only the selected client: %s -> %s: %s", denied, url, out)
	}
}

// TestDataServerAddress: a host process started in the data server's
// network namespace (DataServer().Command) listens on DataServerIP and pods
// reach it through the node's routing (the way internal/dbtest's MariaDB
// and Redis serve the chart); the host process reaches a pod IP with
// DialContext.
func TestDataServerAddress(t *testing.T) {
	c := realnode.Shared(t)
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx := context.Background()
	image := pushWeb(t, c)
	ns := namespace(t, client, "data-server")
	_, err := client.AppsV1().Deployments(ns).Create(ctx, webDeployment(ns, "client", image, 1, map[string]string{"app": "client"}), metav1.CreateOptions{})
	require.NoError(t, err)

	dir := t.TempDir()
	bin := filepath.Join(dir, "web")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/web")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	srvCtx, stop := context.WithCancel(ctx)
	ds, err := c.DataServer()
	require.NoError(t, err)
	srv := ds.Command(srvCtx, bin) // listens on :8080 of the data server's namespace
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	require.NoError(t, srv.Start())
	t.Cleanup(func() { stop(); _ = srv.Wait() })

	require.NoError(t, waitAvailable(ctx, client, ns, "client", 2*time.Minute))
	pod := runningPod(t, client, ns, "app=client")
	url := "http://" + c.DataServerIP() + ":8080/healthz"
	require.NoError(t, poll(ctx, 30*time.Second, func(ctx context.Context) error {
		if out, ok := execIn(ctx, c, ns, pod, "get", url); !ok {
			return fmt.Errorf("%s: %s (server: %s)", url, out, srvOut.String())
		}
		return nil
	}))

	// A host-side client that takes no dialer reaches the same server
	// through Forward.
	hostAddr, err := c.Forward(c.DataServerIP() + ":8080")
	require.NoError(t, err)
	resp, err := http.Get("http://" + hostAddr + "/healthz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, resp.Body.Close())

	p, err := client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	require.NoError(t, err)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := c.DialContext(dctx, "tcp", p.Status.PodIP+":8080")
	require.NoError(t, err)
	_, err = conn.Write([]byte("GET /healthz HTTP/1.0\r\n\r\n"))
	require.NoError(t, err)
	buf := make([]byte, 12)
	_, err = io.ReadFull(conn, buf)
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.0 200", string(buf))
	require.NoError(t, conn.Close())
}

// TestServiceAccountKubeconfig: a ServiceAccount's kubeconfig is bound by
// RBAC: it may list the pods its Role grants and nothing else.
func TestServiceAccountKubeconfig(t *testing.T) {
	c := realnode.Shared(t)
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx := context.Background()
	ns := namespace(t, client, "service-account")
	_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pods"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "deployer", Namespace: ns}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	kc, token, err := c.ServiceAccountKubeconfig(ctx, ns, "deployer", 10*time.Minute)
	require.NoError(t, err)
	require.NotEmpty(t, token)
	rc, err := clientcmd.RESTConfigFromKubeConfig(kc)
	require.NoError(t, err)
	sa := kubernetes.NewForConfigOrDie(rc)
	require.NoError(t, poll(ctx, 10*time.Second, func(ctx context.Context) error {
		_, err := sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err
	}))
	_, err = sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "secrets are not granted: %v", err)
}

// TestPortForward: kubectl port-forward from the host reaches a pod's port
// (API server → kubelet → containerd), the path a readiness check can take
// when policies block the service proxy.
func TestPortForward(t *testing.T) {
	c := realnode.Shared(t)
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx := context.Background()
	image := pushWeb(t, c)
	ns := namespace(t, client, "port-forward")
	_, err := client.AppsV1().Deployments(ns).Create(ctx, webDeployment(ns, "web", image, 1, map[string]string{"app": "web"}), metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, waitAvailable(ctx, client, ns, "web", 2*time.Minute))
	pod := runningPod(t, client, ns, "app=web")

	pfCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	pf := c.Kubectl(pfCtx, "port-forward", "-n", ns, "pod/"+pod, "--address=127.0.0.1", ":8080")
	out, err := pf.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, pf.Start())
	defer func() { stop(); _ = pf.Wait() }()
	local := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			// "Forwarding from 127.0.0.1:41234 -> 8080"
			if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "Forwarding" {
				local <- f[2]
				return
			}
		}
		close(local)
	}()
	var addr string
	select {
	case addr = <-local:
	case <-pfCtx.Done():
	}
	require.NotEmpty(t, addr, "kubectl port-forward announced no local address")
	resp, err := http.Get("http://" + addr + "/")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, pod, strings.TrimSpace(string(body)), "the pod answers with its host name")
}

// TestMirrorRegistry: an image in a registry only this process reaches (a
// registry on the host's loopback, as the Dagger engine's is in e2e) runs
// on the node under its own reference, through MirrorRegistry.
func TestMirrorRegistry(t *testing.T) {
	c := realnode.Shared(t)
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx := context.Background()
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	// The web image, copied into the host-only registry by digest.
	src, err := name.ParseReference(pushWeb(t, c), name.Insecure)
	require.NoError(t, err)
	img, err := remote.Image(src)
	require.NoError(t, err)
	dst, err := name.NewTag(host+"/mirrored/web:v1", name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(dst, img))
	d, err := img.Digest()
	require.NoError(t, err)
	ref := dst.Context().Digest(d.String()).String()

	ns := namespace(t, client, "mirror")
	_, err = client.AppsV1().Deployments(ns).Create(ctx, webDeployment(ns, "web", ref, 1, map[string]string{"app": "web"}), metav1.CreateOptions{})
	require.NoError(t, err)
	// Without the mirror the node cannot reach that registry at all.
	require.Error(t, waitAvailable(ctx, client, ns, "web", 10*time.Second))
	require.NoError(t, c.MirrorRegistry(host))
	require.NoError(t, client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=web"}))
	require.NoError(t, waitAvailable(ctx, client, ns, "web", 2*time.Minute), "pulled %s through the mirror", ref)
}

// TestMirrorRegistryWithTLSAndCredentials: an image in a registry that
// speaks TLS from a private CA and asks for credentials (the CNCF
// distribution registry) runs on the node once the mirror trusts the CA and
// carries the account; with the CA alone containerd is refused the pull.
func TestMirrorRegistryWithTLSAndCredentials(t *testing.T) {
	c := realnode.Shared(t)
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx := context.Background()
	reg := registrytest.Start(t)

	src, err := name.ParseReference(pushWeb(t, c), name.Insecure)
	require.NoError(t, err)
	img, err := remote.Image(src)
	require.NoError(t, err)
	dst := reg.Ref(t, "mirrored/web:v1")
	require.NoError(t, remote.Write(dst, img, reg.Options(ctx)...))
	d, err := img.Digest()
	require.NoError(t, err)
	ref := dst.Context().Digest(d.String()).String()

	ns := namespace(t, client, "mirror-tls")
	_, err = client.AppsV1().Deployments(ns).Create(ctx, webDeployment(ns, "web", ref, 1, map[string]string{"app": "web"}), metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, c.MirrorRegistry(reg.Host, realnode.MirrorTLS(reg.CAFile)))
	pullRefused(ctx, t, client, ns, "app=web", "authorization failed")

	require.NoError(t, c.MirrorRegistry(reg.Host, realnode.MirrorTLS(reg.CAFile), realnode.MirrorBasicAuth(reg.Username, reg.Password)))
	require.NoError(t, client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=web"}))
	require.NoError(t, waitAvailable(ctx, client, ns, "web", 2*time.Minute), "pulled %s with the CA and the account", ref)
}

// pullRefused waits (bounded) until a pod matching selector cannot pull its
// image and the kubelet's reason says want.
func pullRefused(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, selector, want string) {
	t.Helper()
	var last string
	err := retry.Do(ctx, retry.WithMaxDuration(time.Minute, retry.NewConstant(500*time.Millisecond)), func(ctx context.Context) error {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return retry.RetryableError(err)
		}
		for _, p := range pods.Items {
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") {
					last = w.Message
					if strings.Contains(w.Message, want) {
						return nil
					}
				}
			}
		}
		return retry.RetryableError(fmt.Errorf("no pull refused with %q yet (last: %q)", want, last))
	})
	require.NoError(t, err)
}
