package realnodetest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// Every environment's values install on real pods through the gated
// deploy, as the deployer, under Pod Security "restricted", the
// environment's quota and LimitRange: every Deployment Available with its
// real probes, the init containers waited for real stores, each API ready
// with both stores and each SPA's nginx serving on 8080 from a read-only
// root. Production runs its HPA minimum (3+3+2+2 pods).
func TestEveryEnvironmentRunsOnRealPods(t *testing.T) {
	for _, env := range []string{"development", "staging", "production"} {
		t.Run(env, func(t *testing.T) {
			w := newWorld(t, env)
			ctx := context.Background()
			res := w.deployer().Deploy(ctx, deploy.Request{Images: w.images, Values: w.with()})
			deploytest.RequireVerdict(t, report.Verified, res)
			for _, s := range res.Services {
				require.Equal(t, "available", s.Phase, s.Name)
				require.Equal(t, s.Desired, s.Ready, s.Name)
				require.Equal(t, w.images[s.Name], s.Image, s.Name)
				if svc, _ := catalog.Lookup(s.Name); svc.IsAPI() {
					require.Equal(t, "ready", s.Readiness, "%s answered /health/ready through a port-forward", s.Name)
				}
			}
			for _, svc := range catalog.All() {
				d, err := w.admin.AppsV1().Deployments(w.ns).Get(ctx, svc.Name, metav1.GetOptions{})
				require.NoError(t, err)
				require.True(t, available(d), "%s Available", svc.Name)
				pods := w.pods(ctx, svc.Name)
				require.NotEmpty(t, pods, svc.Name)
				for _, p := range pods {
					require.Equal(t, corev1.PodRunning, p.Status.Phase, p.Name)
					for _, c := range p.Spec.Containers {
						require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, "%s/%s", p.Name, c.Name)
					}
					if svc.IsAPI() {
						require.Len(t, p.Status.InitContainerStatuses, 1, p.Name)
						ic := p.Status.InitContainerStatuses[0]
						require.Equal(t, "wait-for-database", ic.Name)
						require.NotNil(t, ic.State.Terminated, p.Name)
						require.Zero(t, ic.State.Terminated.ExitCode, "%s: the init container found both stores", p.Name)
					}
				}
			}
			// Each SPA's nginx serves the built page on 8080.
			for _, spa := range []string{"auth-client", "portal-client"} {
				code, body := w.get(ctx, spa, "/")
				require.Equal(t, http.StatusOK, code, spa)
				require.Contains(t, body, `<main id="app">`, "%s serves the example's built index.html", spa)
				require.NotContains(t, body, "/src/main.js", "%s serves the build, not the source page", spa)
			}
		})
	}
}

// The SPA's root filesystem is really read-only: nginx serves from it, and
// a write into it fails in the running container.
func TestSPARootIsReadOnly(t *testing.T) {
	w := newWorld(t, "development")
	ctx := context.Background()
	deploytest.RequireVerdict(t, report.Verified, w.deployer().Deploy(ctx, deploy.Request{Images: w.images, Values: w.with()}))
	pod := w.pods(ctx, "auth-client")[0]
	out, err := w.c.Kubectl(ctx, "-n", w.ns, "exec", pod.Name, "-c", "auth-client", "--",
		"sh", "-c", "touch /usr/share/nginx/html/written 2>&1; echo exit=$?").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "Read-only file system")
	require.NotContains(t, string(out), "exit=0")
}

// The API's /health/ready is 200 only with both stores: stopping either
// turns it to 503 naming the store, starting it again back to 200.
func TestAPIReadinessFollowsTheStoresOnRealPods(t *testing.T) {
	w := newWorld(t, "development")
	ctx := context.Background()
	deploytest.RequireVerdict(t, report.Verified, w.deployer().Deploy(ctx, deploy.Request{Images: w.images, Values: w.with()}))
	for _, tc := range []struct {
		store string
		stop  func()
		start func()
	}{
		{"mysql", w.mysql["auth-mysql"].Stop, w.mysql["auth-mysql"].Start},
		{"redis", w.redis["auth-redis"].Stop, w.redis["auth-redis"].Start},
	} {
		tc.stop()
		code, body := w.waitReady(ctx, "auth-server", http.StatusServiceUnavailable)
		require.Equal(t, http.StatusServiceUnavailable, code, "%s down: %s", tc.store, body)
		require.Contains(t, body, tc.store)
		tc.start()
		code, body = w.waitReady(ctx, "auth-server", http.StatusOK)
		require.Equal(t, http.StatusOK, code, "%s back: %s", tc.store, body)
	}
}

// The wait-for-database init container really waits: with auth-server's
// MySQL down the pods stay in their init container; once it starts, the
// same deploy goes on to verified.
func TestInitContainerWaitsForTheStore(t *testing.T) {
	w := newWorld(t, "development")
	ctx := context.Background()
	w.mysql["auth-mysql"].Stop()
	done := make(chan *report.Result, 1)
	go func() { done <- w.deployer().Deploy(ctx, deploy.Request{Images: w.images, Values: w.with()}) }()

	waiting := func(ctx context.Context) error {
		for _, p := range w.pods(ctx, "auth-server") {
			for _, ic := range p.Status.InitContainerStatuses {
				if ic.Name == "wait-for-database" && ic.State.Running != nil {
					return nil
				}
			}
		}
		return retry.RetryableError(io.EOF)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	require.NoError(t, retry.Do(wctx, retry.NewConstant(500*time.Millisecond), waiting), "auth-server's pod waits in its init container")
	logs := w.logs(ctx, "auth-server", "wait-for-database")
	require.NotContains(t, logs, "mysql auth-mysql", "not reached yet: %s", logs)

	w.mysql["auth-mysql"].Start()
	res := <-done
	deploytest.RequireVerdict(t, report.Verified, res)
	require.Contains(t, w.logs(ctx, "auth-server", "wait-for-database"), "wait-for-database: mysql auth-mysql")
}

// ... and really gives up, naming the store: with the store down past the
// init container's timeout, the container exits 1, the gate fails on it and
// the first install is removed; the report quotes the container's own line.
func TestInitContainerGivesUpNamingTheStore(t *testing.T) {
	w := newWorld(t, "development")
	ctx := context.Background()
	w.redis["authz-redis"].Stop()
	res := w.deployer().Deploy(ctx, deploy.Request{Images: w.images, Values: w.with(map[string]any{
		"global": map[string]any{"waitForDatabase": map[string]any{"timeoutSeconds": 5}},
	})})
	require.NotEqual(t, report.Verified, res.Verdict, res.Summary)
	var found bool
	for _, p := range res.Problems {
		if p.Service == "authz-server" && p.Container == "wait-for-database" {
			found = true
			require.Contains(t, strings.Join(p.Logs, "\n"), "redis authz-redis", "the init container's last lines name the store: %+v", p)
		}
	}
	require.True(t, found, "a problem names authz-server's init container: %+v", res.Problems)
	_, err := w.admin.AppsV1().Deployments(w.ns).Get(ctx, "authz-server", metav1.GetOptions{})
	require.Error(t, err, "the failed first install was removed")
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue && d.Status.AvailableReplicas == *d.Spec.Replicas
		}
	}
	return false
}

// pods lists the service's pods.
func (w *world) pods(ctx context.Context, service string) []corev1.Pod {
	w.t.Helper()
	list, err := w.admin.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + service})
	require.NoError(w.t, err)
	return list.Items
}

// logs returns a container's log in the service's first pod ("" when the
// kubelet has none yet).
func (w *world) logs(ctx context.Context, service, container string) string {
	w.t.Helper()
	pods := w.pods(ctx, service)
	require.NotEmpty(w.t, pods, service)
	out, _ := w.admin.CoreV1().Pods(w.ns).GetLogs(pods[0].Name, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
	return string(out)
}

// get asks the service's http port through the product's own readiness
// path (a port-forward to a ready pod) and returns status and body.
func (w *world) get(ctx context.Context, service, path string) (int, string) {
	w.t.Helper()
	ep, err := gate.PortForward{Config: w.c.RESTConfig()}.Readiness(ctx, w.ns, gate.Check{Name: service, Service: service, Port: "http", Path: path})
	require.NoError(w.t, err)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, ep.URL, nil)
	require.NoError(w.t, err)
	resp, err := ep.Client.Do(req)
	require.NoError(w.t, err, "GET %s %s", service, path)
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

// waitReady asks the API's /health/ready until it answers want (bounded)
// and returns the last answer. A pod the kubelet marks unready leaves the
// Service, so the answer is read from the pod directly, by name.
func (w *world) waitReady(ctx context.Context, service string, want int) (int, string) {
	w.t.Helper()
	var code int
	var body string
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_ = retry.Do(ctx, retry.NewConstant(time.Second), func(ctx context.Context) error {
		code, body = w.podGet(ctx, service, "/health/ready")
		if code != want {
			return retry.RetryableError(io.EOF)
		}
		return nil
	})
	return code, body
}

// podGet asks the service's first pod directly on its http port, from the
// node's network (a kubelet's vantage point: the policies admit it), for
// answers a Service no longer routes to an unready pod.
func (w *world) podGet(ctx context.Context, service, path string) (int, string) {
	w.t.Helper()
	pods := w.pods(ctx, service)
	require.NotEmpty(w.t, pods, service)
	p := pods[0]
	var port int32
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == "http" {
				port = cp.ContainerPort
			}
		}
	}
	client := &http.Client{Transport: &http.Transport{DialContext: w.c.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://%s:%d%s", p.Status.PodIP, port, path))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}
