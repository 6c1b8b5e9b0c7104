package kube_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	retry "github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

var nsCounter int

// newNamespace creates a namespace of the test's own and a client scoped
// to it, built from the cluster's kubeconfig bytes.
func newNamespace(t *testing.T) *kube.Client {
	t.Helper()
	c := testenv.Shared(t)
	nsCounter++
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-")
	kc, err := kube.FromKubeconfig(c.Kubeconfig(), name)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = kc.Typed.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = kc.Typed.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return kc
}

func TestFromKubeconfig(t *testing.T) {
	c := testenv.Shared(t)
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{name: "cluster kubeconfig", data: c.Kubeconfig()},
		{name: "empty", data: nil, wantErr: "kubeconfig: empty"},
		{name: "not yaml", data: []byte("{{{"), wantErr: "kubeconfig: does not parse"},
		{name: "no current context", data: []byte("apiVersion: v1\nkind: Config\n"), wantErr: "kubeconfig:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc, err := kube.FromKubeconfig(tt.data, "krgeobuk")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "krgeobuk", kc.Namespace)
			v, err := kc.Ping(context.Background(), kube.Budget(10*time.Second))
			require.NoError(t, err)
			require.Equal(t, "v1.37.2", v)
		})
	}
}

func TestPingNamesAServerThatDoesNotAnswer(t *testing.T) {
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: "t0ps3cret-token"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	kc, err := kube.FromKubeconfig([]byte(kubeconfig), "default")
	require.NoError(t, err)
	_, err = kc.Ping(context.Background(), kube.Budget(time.Second))
	require.ErrorContains(t, err, "API server https://127.0.0.1:1 does not answer")
	require.NotContains(t, err.Error(), "t0ps3cret-token")
}

func lease(ctx context.Context, t *testing.T, kc *kube.Client, name string) *coordinationv1.Lease {
	l, err := kc.Typed.CoordinationV1().Leases(kc.Namespace).Get(ctx, name, metav1.GetOptions{})
	require.NoError(t, err)
	return l
}

func TestLock(t *testing.T) {
	ctx := context.Background()
	kc := newNamespace(t)
	ns := kc.Namespace

	// Free: acquired, and the Lease names the holder.
	a, err := kube.AcquireLock(ctx, kc, ns, "deploy", "ci-job-1", 3*time.Second, kube.Budget(5*time.Second))
	require.NoError(t, err)
	require.Nil(t, a.TookOver)
	require.Equal(t, "ci-job-1", *lease(ctx, t, kc, "deploy").Spec.HolderIdentity)

	// Held: a second holder is refused with the holder named.
	_, err = kube.AcquireLock(ctx, kc, ns, "deploy", "ci-job-2", 3*time.Second, kube.Budget(5*time.Second))
	var held *kube.HeldError
	require.ErrorAs(t, err, &held)
	require.Equal(t, "ci-job-1", held.Holder.Identity)
	require.ErrorContains(t, err, `deploy lock `+ns+`/deploy is held by "ci-job-1"`)

	// Renewed: after more than the TTL the holder still holds it, because
	// it renews; the second holder is still refused.
	first := lease(ctx, t, kc, "deploy").Spec.RenewTime.Time
	require.Eventually(t, func() bool {
		return lease(ctx, t, kc, "deploy").Spec.RenewTime.After(first)
	}, 10*time.Second, 100*time.Millisecond, "the lock is renewed")
	_, err = kube.AcquireLock(ctx, kc, ns, "deploy", "ci-job-2", 3*time.Second, kube.Budget(5*time.Second))
	require.ErrorAs(t, err, &held)

	// Released: the holder is cleared and the next one gets it.
	require.NoError(t, a.Release(ctx))
	require.Nil(t, lease(ctx, t, kc, "deploy").Spec.HolderIdentity)
	b, err := kube.AcquireLock(ctx, kc, ns, "deploy", "ci-job-2", 3*time.Second, kube.Budget(5*time.Second))
	require.NoError(t, err)
	require.Nil(t, b.TookOver)
	require.NoError(t, b.Release(ctx))
	require.EqualValues(t, 1, *lease(ctx, t, kc, "deploy").Spec.LeaseTransitions)
}

func TestLockTakesOverAStaleHolder(t *testing.T) {
	ctx := context.Background()
	kc := newNamespace(t)
	holder := "crashed-job"
	secs := int32(60)
	old := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	_, err := kc.Typed.CoordinationV1().Leases(kc.Namespace).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "deploy"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &old, AcquireTime: &old},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	l, err := kube.AcquireLock(ctx, kc, kc.Namespace, "deploy", "ci-job-9", 5*time.Second, kube.Budget(5*time.Second))
	require.NoError(t, err)
	defer func() { require.NoError(t, l.Release(ctx)) }()
	require.NotNil(t, l.TookOver)
	require.Equal(t, "crashed-job", l.TookOver.Identity)
	require.WithinDuration(t, old.Add(time.Minute), l.TookOver.Expires, time.Second)
	require.Equal(t, "ci-job-9", *lease(ctx, t, kc, "deploy").Spec.HolderIdentity)
}

func TestLockLostWhenTakenOver(t *testing.T) {
	ctx := context.Background()
	kc := newNamespace(t)
	l, err := kube.AcquireLock(ctx, kc, kc.Namespace, "deploy", "slow-job", 3*time.Second, kube.Budget(5*time.Second))
	require.NoError(t, err)
	// Someone else overwrites the holder, as a deploy would after this one
	// stalled past its TTL.
	ls := lease(ctx, t, kc, "deploy")
	other := "other-job"
	ls.Spec.HolderIdentity = &other
	_, err = kc.Typed.CoordinationV1().Leases(kc.Namespace).Update(ctx, ls, metav1.UpdateOptions{})
	require.NoError(t, err)
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the lock did not notice it was taken over")
	}
	require.ErrorContains(t, l.LostCause(), `held by "other-job"`)
	// Release leaves the other holder alone.
	require.NoError(t, l.Release(ctx))
	require.Equal(t, "other-job", *lease(ctx, t, kc, "deploy").Spec.HolderIdentity)
}

func TestLockRefusesBadInput(t *testing.T) {
	kc := newNamespace(t)
	_, err := kube.AcquireLock(context.Background(), kc, kc.Namespace, "deploy", "", time.Minute, kube.Budget(time.Second))
	require.ErrorContains(t, err, "empty holder identity")
	_, err = kube.AcquireLock(context.Background(), kc, kc.Namespace, "deploy", "x", time.Millisecond, kube.Budget(time.Second))
	require.ErrorContains(t, err, "shorter than one second")
}

func obj(t *testing.T, yaml string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	require.NoError(t, u.UnmarshalJSON([]byte(yaml)))
	return u
}

func TestDryRunApply(t *testing.T) {
	ctx := context.Background()
	kc := newNamespace(t)
	good := obj(t, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},"data":{"a":"b"}}`)
	badName := obj(t, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"},"data":{"a":"b"}}`)
	badSpec := obj(t, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"c"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`)
	unknownKind := obj(t, `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"}}`)

	require.NoError(t, kc.DryRunApply(ctx, []*unstructured.Unstructured{good}, "test", func() retry.Backoff { return kube.Budget(5 * time.Second) }))
	// Nothing was persisted.
	_, err := kc.Typed.CoreV1().ConfigMaps(kc.Namespace).Get(ctx, "cfg", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "dry run persisted the object: %v", err)

	err = kc.DryRunApply(ctx, []*unstructured.Unstructured{good, badName, badSpec, unknownKind}, "test", func() retry.Backoff { return kube.Budget(5 * time.Second) })
	require.ErrorContains(t, err, "server-side dry run rejected 3 of 4 objects")
	require.ErrorContains(t, err, "ConfigMap/"+kc.Namespace+"/Bad_Name:")
	require.ErrorContains(t, err, "Deployment/"+kc.Namespace+"/web:")
	require.ErrorContains(t, err, "`selector` does not match template `labels`")
	require.ErrorContains(t, err, "Widget/w: kind example.com/v1, Kind=Widget is not served")
	require.NotContains(t, err.Error(), "ConfigMap/"+kc.Namespace+"/cfg")
}

func TestIsTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{apierrors.NewServiceUnavailable("x"), true},
		{apierrors.NewInternalError(errors.New("x")), true},
		{apierrors.NewTooManyRequests("x", 1), true},
		{apierrors.NewTimeoutError("x", 1), true},
		{context.DeadlineExceeded, true},
		{apierrors.NewNotFound(coordinationv1.Resource("leases"), "x"), false},
		{apierrors.NewConflict(coordinationv1.Resource("leases"), "x", errors.New("x")), false},
		{apierrors.NewForbidden(coordinationv1.Resource("leases"), "x", errors.New("x")), false},
		{errors.New("no such thing"), false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, kube.IsTransient(tt.err), "%v", tt.err)
	}
}
