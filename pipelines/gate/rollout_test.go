package gate_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientretry "k8s.io/client-go/util/retry"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

func namespace(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	c := testenv.Shared(t)
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	ns := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(ns) > 60 {
		ns = strings.Trim(ns[len(ns)-60:], "-")
	}
	_, err = cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return cs, ns
}

// deployment applies a Deployment named name with replicas pods labelled
// labels (on top of the app labels), annotated annotations, and an
// optional nodeSelector.
func deployment(t *testing.T, cs kubernetes.Interface, ns, name string, replicas int32, labels, annotations, selector map[string]string) {
	t.Helper()
	podLabels := map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "rel"}
	for k, v := range labels {
		podLabels[k] = v
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: annotations},
				Spec: corev1.PodSpec{
					NodeSelector: selector,
					Containers:   []corev1.Container{{Name: name, Image: "registry.example/" + name + "@sha256:" + strings.Repeat("1", 64)}},
				},
			},
		},
	}
	ctx := context.Background()
	// The controller writes the status meanwhile: retry on conflict.
	err := clientretry.RetryOnConflict(clientretry.DefaultRetry, func() error {
		existing, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		existing.Spec = d.Spec
		_, err = cs.AppsV1().Deployments(ns).Update(ctx, existing, metav1.UpdateOptions{})
		return err
	})
	require.NoError(t, err)
}

func watch(ctx context.Context, cs kubernetes.Interface, ns string, timeout, grace time.Duration, progress func(gate.Progress), names ...string) ([]gate.Status, error) {
	var wls []gate.Workload
	for _, n := range names {
		wls = append(wls, gate.Workload{Service: n, Kind: gate.KindDeployment, Name: n})
	}
	return gate.WatchRollout(ctx, cs, gate.RolloutOptions{Namespace: ns, Release: "rel", Workloads: wls,
		Timeout: timeout, UnschedulableGrace: grace, Progress: progress})
}

func TestRolloutPassesWhenTheNewGenerationIsAvailable(t *testing.T) {
	t.Parallel()
	cs, ns := namespace(t)
	deployment(t, cs, ns, "web", 2, nil, nil, nil)
	deployment(t, cs, ns, "api", 1, map[string]string{testenv.FaultLabel: testenv.FaultSlowReady},
		map[string]string{testenv.ReadyAfterAnnotation: "2s"}, nil)
	var mu sync.Mutex
	seen := map[string][]string{}
	statuses, err := watch(context.Background(), cs, ns, time.Minute, time.Second, func(p gate.Progress) {
		mu.Lock()
		defer mu.Unlock()
		seen[p.Service] = append(seen[p.Service], fmt.Sprintf("%s %d/%d", p.Phase, p.Ready, p.Desired))
	}, "web", "api")
	require.NoError(t, err)
	require.Len(t, statuses, 2)
	for _, s := range statuses {
		require.Equal(t, gate.PhaseAvailable, s.Phase)
		require.Equal(t, s.Desired, s.Ready)
	}
	require.Equal(t, "available 2/2", seen["web"][len(seen["web"])-1])
	require.Contains(t, seen["api"], "progressing 0/1", "slow-ready progress is streamed")
	require.Equal(t, "available 1/1", seen["api"][len(seen["api"])-1])

	// The same Deployments with a new, crashing template: the gate judges
	// the new generation, not the old pods that still serve.
	deployment(t, cs, ns, "web", 2, map[string]string{testenv.FaultLabel: testenv.FaultCrashLoop}, nil, nil)
	_, err = watch(context.Background(), cs, ns, time.Minute, time.Second, nil, "web", "api")
	var f *gate.Failure
	require.ErrorAs(t, err, &f)
	require.Equal(t, gate.CrashLoop, f.Problems[0].Class)
	require.Equal(t, "web", f.Problems[0].Service)
}

func TestRolloutFailsFastNamingPodAndReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault   string
		class   gate.Class
		reasons []string
	}{
		{testenv.FaultCrashLoop, gate.CrashLoop, []string{"CrashLoopBackOff"}},
		{testenv.FaultImagePull, gate.ImagePull, []string{"ErrImagePull", "ImagePullBackOff"}},
		{testenv.FaultExitError, gate.ExitError, []string{"Error"}},
	}
	cs, ns := namespace(t)
	for _, tt := range tests {
		deployment(t, cs, ns, tt.fault, 1, map[string]string{testenv.FaultLabel: tt.fault}, nil, nil)
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			// A generous deadline: failing fast means failing long before it.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := watch(ctx, cs, ns, 2*time.Minute, time.Second, nil, tt.fault)
			var f *gate.Failure
			require.ErrorAs(t, err, &f)
			require.False(t, f.TimedOut, "fails fast, not by timeout")
			p := f.Problems[0]
			require.Equal(t, tt.class, p.Class)
			require.Contains(t, tt.reasons, p.Reason)
			require.True(t, strings.HasPrefix(p.Pod, tt.fault+"-"), p.Pod)
			require.Equal(t, tt.fault, p.Container)
			require.NotEmpty(t, p.Events, "recent events are attached")
			require.NotEmpty(t, p.Suggestion)
			require.Contains(t, err.Error(), p.Pod)
		})
	}
}

func TestUnschedulableFailsOnlyAfterItsGrace(t *testing.T) {
	t.Parallel()
	cs, ns := namespace(t)
	c := testenv.Shared(t)
	key := "gate-test.krgeobuk.dev/" + ns
	deployment(t, cs, ns, "pinned", 1, nil, nil, map[string]string{key: "yes"})

	// Nothing matches: the gate fails once the grace period is over.
	_, err := watch(context.Background(), cs, ns, time.Minute, 2*time.Second, nil, "pinned")
	var f *gate.Failure
	require.ErrorAs(t, err, &f)
	require.False(t, f.TimedOut)
	require.Equal(t, gate.Unschedulable, f.Problems[0].Class)
	require.Contains(t, f.Problems[0].Message, "didn't match Pod's node affinity/selector")
	require.Contains(t, f.Problems[0].Message, "unschedulable for")

	// A node that matches appears within the grace: the gate passes.
	node := c.Nodes()[0]
	done := make(chan error, 1)
	go func() {
		_, err := watch(context.Background(), cs, ns, time.Minute, 30*time.Second, nil, "pinned")
		done <- err
	}()
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"yes"}}}`, key)
	_, err = cs.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = cs.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, key)), metav1.PatchOptions{})
	})
	require.NoError(t, <-done)
}

func TestRolloutTimeoutExplainsWhatIsMissing(t *testing.T) {
	t.Parallel()
	cs, ns := namespace(t)
	deployment(t, cs, ns, "stuck", 1, map[string]string{testenv.FaultLabel: testenv.FaultNeverReady}, nil, nil)
	deployment(t, cs, ns, "fine", 1, nil, nil, nil)
	statuses, err := watch(context.Background(), cs, ns, 4*time.Second, time.Second, nil, "stuck", "fine", "absent")
	var f *gate.Failure
	require.ErrorAs(t, err, &f)
	require.True(t, f.TimedOut)
	byService := map[string]gate.Problem{}
	for _, p := range f.Problems {
		byService[p.Service] = p
	}
	require.Equal(t, gate.NotReady, byService["stuck"].Class)
	require.True(t, strings.HasPrefix(byService["stuck"].Pod, "stuck-"))
	require.Equal(t, gate.RolloutTimeout, byService["absent"].Class)
	require.Contains(t, byService["absent"].Message, "Deployment not seen yet")
	require.NotContains(t, byService, "fine")
	require.Equal(t, gate.PhaseAvailable, statuses[1].Phase)
}

func TestRolloutStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	cs, ns := namespace(t)
	deployment(t, cs, ns, "stuck", 1, map[string]string{testenv.FaultLabel: testenv.FaultNeverReady}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := watch(ctx, cs, ns, time.Minute, time.Second, func(p gate.Progress) {
		if p.Phase == gate.PhaseProgressing {
			cancel()
		}
	}, "stuck")
	require.ErrorIs(t, err, context.Canceled)
	var f *gate.Failure
	require.NotErrorAs(t, err, &f)
}

func TestSnapshot(t *testing.T) {
	t.Parallel()
	cs, ns := namespace(t)
	deployment(t, cs, ns, "web", 1, nil, nil, nil)
	_, err := watch(context.Background(), cs, ns, time.Minute, time.Second, nil, "web")
	require.NoError(t, err)
	st, problems, err := gate.Snapshot(context.Background(), cs, ns, []gate.Workload{{Service: "web", Kind: gate.KindDeployment, Name: "web"}, {Service: "gone", Kind: gate.KindDeployment, Name: "gone"}}, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, gate.PhaseAvailable, st[0].Phase)
	require.EqualValues(t, 1, st[0].Ready)
	require.Equal(t, gate.PhaseWaiting, st[1].Phase)
	require.Empty(t, problems, "a healthy workload and an absent one have no pod to blame")
}

// TestSnapshotNamesWhatTheGateWouldFailOn: status after `helm rollback` to
// a bad revision must not say "0/1 progressing" and stop there; it names
// the pod, container and reason exactly as the rollout gate does.
func TestSnapshotNamesWhatTheGateWouldFailOn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault   string
		class   gate.Class
		reasons []string
		phase   gate.Phase
	}{
		{testenv.FaultCrashLoop, gate.CrashLoop, []string{"CrashLoopBackOff"}, gate.PhaseFailed},
		{testenv.FaultImagePull, gate.ImagePull, []string{"ErrImagePull", "ImagePullBackOff"}, gate.PhaseFailed},
		{testenv.FaultNeverReady, gate.NotReady, []string{"ContainersNotReady"}, gate.PhaseProgressing},
	}
	cs, ns := namespace(t)
	for _, tt := range tests {
		deployment(t, cs, ns, tt.fault, 1, map[string]string{testenv.FaultLabel: tt.fault}, nil, nil)
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			// Let the gate see the fault first (never-ready: until its short
			// deadline), so the snapshot is taken of a pod that shows it.
			_, err := watch(context.Background(), cs, ns, 5*time.Second, time.Second, nil, tt.fault)
			require.Error(t, err)
			wls := []gate.Workload{{Service: tt.fault, Kind: gate.KindDeployment, Name: tt.fault}}
			st, problems, err := gate.Snapshot(context.Background(), cs, ns, wls, 10*time.Second)
			require.NoError(t, err)
			require.Equal(t, tt.phase, st[0].Phase)
			require.NotEmpty(t, problems)
			p := problems[0]
			require.Equal(t, tt.class, p.Class)
			require.Contains(t, tt.reasons, p.Reason)
			require.True(t, strings.HasPrefix(p.Pod, tt.fault+"-"), p.Pod)
			require.Equal(t, tt.fault, p.Container)
			require.NotEmpty(t, p.Suggestion)
		})
	}
}

// staticEndpoints points every service at one local server.
type staticEndpoints map[string]string

func (s staticEndpoints) Readiness(_ context.Context, _ string, c gate.Check) (gate.Endpoint, error) {
	u, ok := s[c.Name]
	if !ok {
		return gate.Endpoint{}, fmt.Errorf("no endpoint for %s", c.Name)
	}
	return gate.Endpoint{URL: u + c.Path, Client: http.DefaultClient}, nil
}

func TestReadinessGate(t *testing.T) {
	t.Parallel()
	var flakyCalls atomic.Int64
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if flakyCalls.Add(1) <= 2 {
			http.Error(w, "redis: connecting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	defer flaky.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "mysql: ECONNREFUSED", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	auth, _ := catalog.Lookup("auth-server")
	authz, _ := catalog.Lookup("authz-server")
	tests := []struct {
		name    string
		eps     staticEndpoints
		reasons map[string]string // service -> reason; empty: pass
	}{
		{name: "503 then 200 passes", eps: staticEndpoints{"auth-server": flaky.URL, "authz-server": flaky.URL}},
		{name: "always 503 fails naming status and body", eps: staticEndpoints{"auth-server": down.URL, "authz-server": flaky.URL},
			reasons: map[string]string{"auth-server": "HTTP 503"}},
		{name: "nothing listening", eps: staticEndpoints{"auth-server": flaky.URL, "authz-server": closedURL},
			reasons: map[string]string{"authz-server": "Unreachable"}},
		{name: "no endpoint at all", eps: staticEndpoints{"auth-server": flaky.URL},
			reasons: map[string]string{"authz-server": "NoEndpoint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := gate.CheckReadiness(context.Background(), tt.eps, gate.ReadinessOptions{
				Namespace: "krgeobuk", Checks: []gate.Check{gate.APICheck(auth), gate.APICheck(authz)}, Timeout: 1500 * time.Millisecond,
			})
			if len(tt.reasons) == 0 {
				require.NoError(t, err)
				return
			}
			var f *gate.Failure
			require.ErrorAs(t, err, &f)
			require.Len(t, f.Problems, len(tt.reasons))
			for _, p := range f.Problems {
				require.Equal(t, gate.ReadinessEndpoint, p.Class)
				require.Equal(t, tt.reasons[p.Service], p.Reason, p.String())
				require.NotEmpty(t, p.Suggestion)
			}
			if tt.reasons["auth-server"] == "HTTP 503" {
				require.Contains(t, f.Problems[0].Message, "GET "+down.URL+"/health/ready answered 503")
				require.Contains(t, f.Problems[0].Message, "mysql: ECONNREFUSED")
			}
		})
	}
}

// The production resolver asks the API server for the Service's ready
// endpoints with the deployer's credentials: a Service without any is
// reported as such, named, rather than as a connection or authorisation
// failure. (That it really reaches pods, through NetworkPolicies, is
// proven on the real node: internal/realnodetest.)
func TestPortForwardAgainstTheAPIServer(t *testing.T) {
	t.Parallel()
	cs, ns := namespace(t)
	c := testenv.Shared(t)
	_, err := cs.CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "auth-server"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "none"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	auth, _ := catalog.Lookup("auth-server")
	pf := gate.PortForward{Config: c.RESTConfig()}
	ep, err := pf.Readiness(context.Background(), ns, gate.APICheck(auth))
	require.NoError(t, err)
	require.Equal(t, "http://auth-server."+ns+".svc/health/ready", ep.URL)

	err = gate.CheckReadiness(context.Background(), pf, gate.ReadinessOptions{Namespace: ns, Checks: []gate.Check{gate.APICheck(auth)}, Timeout: time.Second})
	var f *gate.Failure
	require.ErrorAs(t, err, &f)
	require.Equal(t, "Unreachable", f.Problems[0].Reason)
	require.Contains(t, f.Problems[0].Message, `service auth-server has no ready endpoint on port "http"`)
}

func TestProgressDeadlineExceededFailsTheGate(t *testing.T) {
	t.Parallel()
	cs, ns := namespace(t)
	deployment(t, cs, ns, "stalled", 1, map[string]string{testenv.FaultLabel: testenv.FaultNeverReady}, nil, nil)
	// The deployment controller writes the object meanwhile: a conflict is retried, not a failure.
	err := clientretry.OnError(clientretry.DefaultRetry, apierrors.IsConflict, func() error {
		_, err := cs.AppsV1().Deployments(ns).Patch(context.Background(), "stalled", types.MergePatchType,
			[]byte(`{"spec":{"progressDeadlineSeconds":1}}`), metav1.PatchOptions{})
		return err
	})
	require.NoError(t, err)
	_, err = watch(context.Background(), cs, ns, time.Minute, time.Second, nil, "stalled")
	var f *gate.Failure
	require.ErrorAs(t, err, &f)
	require.False(t, f.TimedOut)
	require.Equal(t, gate.ProgressDeadline, f.Problems[0].Class)
	require.Equal(t, "stalled", f.Problems[0].Service)
	require.Contains(t, f.Problems[0].Message, "has timed out progressing")
}

// TestReadinessProgressCountsAttempts: readiness progress says which
// attempt it is and what the last one answered, never a replica count of
// "0/0" it does not have.
func TestReadinessProgressCountsAttempts(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "redis: connecting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	defer srv.Close()
	auth, _ := catalog.Lookup("auth-server")
	var lines []string
	err := gate.CheckReadiness(context.Background(), staticEndpoints{"auth-server": srv.URL}, gate.ReadinessOptions{
		Namespace: "krgeobuk", Checks: []gate.Check{gate.APICheck(auth)}, Timeout: 10 * time.Second,
		Progress: func(p gate.Progress) {
			lines = append(lines, strings.Join(strings.Fields(string(p.Phase)+" "+p.Counts()+" "+p.Message), " "))
		},
	})
	require.NoError(t, err)
	require.Equal(t, []string{
		"checking " + auth.ReadinessPath, // before the first request
		"checking attempt 1 HTTP 503",    // the second 503 is the same outcome: no line
		"ready attempt 3 " + auth.ReadinessPath,
	}, lines)
	for _, l := range lines {
		require.NotContains(t, l, "0/0")
	}
	require.Equal(t, "2/3", gate.Progress{Gate: gate.RolloutGate, Ready: 2, Desired: 3}.Counts())
}
