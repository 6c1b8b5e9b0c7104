package realnodetest_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// The chart's NetworkPolicies, enforced by kube-network-policies on the
// real node, both ways: every flow the chart allows connects, every flow it
// does not is dropped. Probes open fresh connections from inside the pods
// (kubectl exec): kept-alive connections would outlive a policy.
func TestChartNetworkPoliciesBothWays(t *testing.T) {
	w := newWorld(t, "development")
	ctx := context.Background()
	deploytest.RequireVerdict(t, report.Verified, w.deployer().Deploy(ctx, deploy.Request{Images: w.images, Values: w.with()}))
	svc := func(name string) string { return name + "." + w.ns + ".svc.cluster.local" }
	store := func(name string) (string, int) {
		if m, ok := w.mysql[name]; ok {
			return svc(name), m.Port
		}
		return svc(name), w.redis[name].Port
	}
	// Stand-ins for the clients the chart admits from other namespaces,
	// with the labels the chart's values name, and the same pods without
	// those labels.
	ingress := w.probePod(ctx, "ingress-nginx", "controller", map[string]string{"app.kubernetes.io/name": "ingress-nginx"})
	ingressOther := w.probePod(ctx, "ingress-nginx", "other", map[string]string{"app.kubernetes.io/name": "something-else"})
	prometheus := w.probePod(ctx, "monitoring", "prometheus", map[string]string{"app.kubernetes.io/name": "prometheus"})
	authSrv, authzSrv := w.pods(ctx, "auth-server")[0], w.pods(ctx, "authz-server")[0]
	authCli, portalCli := w.pods(ctx, "auth-client")[0], w.pods(ctx, "portal-client")[0]

	// Through the Services, as clients connect: http on port 80 (the pods'
	// 8000 and 8080), the APIs' tcp transport on 8010, each store on its
	// own port.
	type flow struct {
		what  string
		from  probe
		host  string
		port  int
		allow bool
	}
	mysqlHost, authMySQL := store("auth-mysql")
	redisHost, authRedis := store("auth-redis")
	authzMySQLHost, authzMySQL := store("authz-mysql")
	flows := []flow{
		{"ingress controller → auth-client", ingress, svc("auth-client"), 80, true},
		{"ingress controller → auth-server http", ingress, svc("auth-server"), 80, true},
		{"ingress controller → portal-client", ingress, svc("portal-client"), 80, true},
		{"auth-server → authz-server http", w.in(authSrv), svc("authz-server"), 80, true},
		{"auth-server → authz-server tcp", w.in(authSrv), svc("authz-server"), 8010, true},
		{"authz-server → auth-server tcp", w.in(authzSrv), svc("auth-server"), 8010, true},
		{"prometheus → auth-server /metrics port", prometheus, svc("auth-server"), 80, true},
		{"auth-server → its MySQL", w.in(authSrv), mysqlHost, authMySQL, true},
		{"auth-server → its Redis", w.in(authSrv), redisHost, authRedis, true},
		{"authz-server → its MySQL", w.in(authzSrv), authzMySQLHost, authzMySQL, true},

		{"another pod in the ingress namespace → auth-client", ingressOther, svc("auth-client"), 80, false},
		{"auth-client → auth-server's MySQL", w.in(authCli), mysqlHost, authMySQL, false},
		{"portal-client → authz-server", w.in(portalCli), svc("authz-server"), 80, false},
		{"authz-server → auth-server's MySQL", w.in(authzSrv), mysqlHost, authMySQL, false},
		{"auth-server → authz-server's MySQL", w.in(authSrv), authzMySQLHost, authzMySQL, false},
		{"prometheus → auth-server tcp", prometheus, svc("auth-server"), 8010, false},
		{"prometheus → auth-client", prometheus, svc("auth-client"), 80, false},
		{"ingress controller → auth-server tcp", ingress, svc("auth-server"), 8010, false},
	}
	for _, f := range flows {
		got := f.from.connect(ctx, t, f.host, f.port)
		if f.allow {
			require.Equal(t, "open", got, "%s (%s:%d) must connect", f.what, f.host, f.port)
		} else {
			require.NotEqual(t, "open", got, "%s (%s:%d) must be dropped", f.what, f.host, f.port)
			require.Contains(t, got, "timeout", "%s is dropped by policy, not refused", f.what)
		}
	}
}

// probe is a process that can try a TCP connection from inside a pod.
type probe struct {
	w         *world
	ns, pod   string
	container string
	nodeJS    bool // the API image has node; nginx's has bash
}

func (w *world) in(p corev1.Pod) probe {
	c := p.Spec.Containers[0]
	return probe{w: w, ns: p.Namespace, pod: p.Name, container: c.Name, nodeJS: !strings.Contains(c.Name, "client")}
}

// connect opens one fresh TCP connection to host:port from inside the pod
// and says how it went: "open", "timeout" (dropped) or "error <code>".
func (p probe) connect(ctx context.Context, t *testing.T, host string, port int) string {
	t.Helper()
	var cmd []string
	if p.nodeJS {
		cmd = []string{"node", "-e", connectJS, host, fmt.Sprint(port)}
	} else {
		cmd = []string{"bash", "-c", `timeout 4 bash -c 'exec 3<>/dev/tcp/$0/$1' "$0" "$1" 2>/dev/null && echo open || { [ $? = 124 ] && echo timeout || echo error; }`, host, fmt.Sprint(port)}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := p.w.c.Kubectl(ctx, append([]string{"-n", p.ns, "exec", p.pod, "-c", p.container, "--"}, cmd...)...).CombinedOutput()
	require.NoError(t, err, "exec in %s/%s: %s", p.ns, p.pod, out)
	return strings.TrimSpace(string(out))
}

// connectJS resolves and connects with a bound; a dropped SYN times out,
// a refused one errors at once.
const connectJS = `const [host, port] = process.argv.slice(1);
const s = require('net').connect({host, port: Number(port)});
s.setTimeout(4000);
s.on('connect', () => { console.log('open'); process.exit(0); });
s.on('timeout', () => { console.log('timeout'); process.exit(0); });
s.on('error', (e) => { console.log(e.code === 'ETIMEDOUT' ? 'timeout' : 'error ' + e.code); process.exit(0); });`

// probePod runs a long-sleeping pod (named after the test and role) of the
// example API's image in namespace ns with labels, for flows from outside the release's
// namespace, and waits until it runs.
func (w *world) probePod(ctx context.Context, ns, role string, labels map[string]string) probe {
	t := w.t
	t.Helper()
	_, err := w.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	name := w.ns
	if len(name) > 40 {
		name = strings.TrimRight(name[:40], "-")
	}
	name += "-" + role
	no, yes := false, true
	uid := int64(1000)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "probe", Image: w.images["auth-server"],
				Command: []string{"node", "-e", "setInterval(() => {}, 1 << 30)"},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: &no, RunAsNonRoot: &yes, RunAsUser: &uid,
					Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
			}},
		},
	}
	_, err = w.admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = w.admin.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err = retry.Do(wctx, retry.NewConstant(300*time.Millisecond), func(ctx context.Context) error {
		p, err := w.admin.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning {
			return retry.RetryableError(io.EOF)
		}
		return nil
	})
	require.NoError(t, err, "probe pod %s/%s runs", ns, name)
	return probe{w: w, ns: ns, pod: name, container: "probe", nodeJS: true}
}
