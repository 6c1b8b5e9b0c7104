package release_test

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	helmrelease "helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/kube"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/release"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// tinyChart renders one ConfigMap and one Deployment from its values.
func tinyChart() *chart.Chart {
	return &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: "v2", Name: "tiny", Version: "0.1.0", AppVersion: "1.0.0"},
		Values:   map[string]any{"message": "hello"},
		Templates: []*chart.File{
			{Name: "templates/cm.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tiny\ndata:\n  message: {{ .Values.message | quote }}\n")},
			{Name: "templates/deploy.yaml", Data: []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.example/web@sha256:{{ .Values.digest | default "1111111111111111111111111111111111111111111111111111111111111111" }}"}]
`)},
		},
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9-]+`)

func client(t *testing.T) (*release.Client, *kube.Client) {
	t.Helper()
	c := testenv.Shared(t)
	ns := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	kc, err := kube.FromKubeconfig(c.Kubeconfig(), ns)
	require.NoError(t, err)
	_, err = kc.Typed.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = kc.Typed.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	rc, err := release.New(kc, ns, "tiny", nil)
	require.NoError(t, err)
	return rc, kc
}

func secretLabels(t *testing.T, kc *kube.Client, rev int) map[string]string {
	t.Helper()
	s, err := kc.Typed.CoreV1().Secrets(kc.Namespace).Get(context.Background(), "sh.helm.release.v1.tiny.v"+strconv.Itoa(rev), metav1.GetOptions{})
	require.NoError(t, err)
	return s.Labels
}

func TestApplyVerifyAndTheMarkStaysWithItsRevision(t *testing.T) {
	t.Parallel()
	rc, kc := client(t)
	ctx := context.Background()
	ch := tinyChart()

	h, err := rc.History(ctx)
	require.NoError(t, err)
	require.Empty(t, h)

	r1, err := rc.Apply(ctx, ch, map[string]any{"message": "one"}, release.ApplyOptions{DeployedBy: "ci:github/alice@runner 1"})
	require.NoError(t, err)
	require.Equal(t, 1, r1.Number)
	require.Equal(t, "deployed", r1.Status)
	require.False(t, r1.Verified)
	// Applied without waiting: the ConfigMap is there, the pods may not be.
	cm, err := kc.Typed.CoreV1().ConfigMaps(kc.Namespace).Get(ctx, "tiny", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "one", cm.Data["message"])

	at := time.Unix(1750000000, 0)
	require.NoError(t, rc.MarkVerified(ctx, 1, at))
	require.Equal(t, "1", secretLabels(t, kc, 1)[release.LabelVerified])
	last, err := rc.Last(ctx)
	require.NoError(t, err)
	require.True(t, last.Verified)
	require.Equal(t, at.UTC(), last.VerifiedAt)
	require.Equal(t, "ci-github-alice-runner-1", last.DeployedBy)

	// Upgrade: Helm copies labels forward, the new revision is still not
	// verified, and revision 1 keeps its mark after Helm rewrites it as
	// superseded.
	r2, err := rc.Apply(ctx, ch, map[string]any{"message": "two"}, release.ApplyOptions{DeployedBy: "bob"})
	require.NoError(t, err)
	require.Equal(t, 2, r2.Number)
	require.False(t, r2.Verified)
	require.NotContains(t, secretLabels(t, kc, 2), release.LabelVerified)
	require.Equal(t, "bob", secretLabels(t, kc, 2)[release.LabelDeployedBy])
	h, err = rc.History(ctx)
	require.NoError(t, err)
	require.Equal(t, "superseded", h[0].Status)
	require.True(t, h[0].Verified, "the verified mark survives Helm rewriting the record")

	// Rollback copies revision 1's labels onto revision 3; the copy does
	// not make revision 3 verified.
	r3, err := rc.Rollback(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, 3, r3.Number)
	require.Equal(t, "1", secretLabels(t, kc, 3)[release.LabelVerified])
	require.False(t, r3.Verified)
	cm, err = kc.Typed.CoreV1().ConfigMaps(kc.Namespace).Get(ctx, "tiny", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "one", cm.Data["message"])

	lv, err := release.Choose(h, release.Target{})
	require.NoError(t, err)
	require.Equal(t, 1, lv.Number)
	wls, err := r3.Workloads()
	require.NoError(t, err)
	require.Equal(t, []release.Workload{{Kind: "Deployment", Name: "web", Component: "web"}}, wls)
}

func TestUnlockPendingAndMarkFailed(t *testing.T) {
	t.Parallel()
	rc, kc := client(t)
	ctx := context.Background()
	_, ok, err := rc.Unlock(ctx, "nothing there")
	require.NoError(t, err)
	require.False(t, ok, "no release, nothing to unlock")

	_, err = rc.Apply(ctx, tinyChart(), nil, release.ApplyOptions{})
	require.NoError(t, err)
	_, ok, err = rc.Unlock(ctx, "nothing pending")
	require.NoError(t, err)
	require.False(t, ok)

	cfg := new(action.Configuration)
	require.NoError(t, cfg.Init(kc.Getter(), kc.Namespace, "secret", func(string, ...any) {}))
	rel, err := cfg.Releases.Get("tiny", 1)
	require.NoError(t, err)
	rel.Info.Status = helmrelease.StatusPendingInstall
	require.NoError(t, cfg.Releases.Update(rel))

	// Helm itself refuses to go on.
	_, err = rc.Apply(ctx, tinyChart(), map[string]any{"message": "x"}, release.ApplyOptions{})
	require.ErrorContains(t, err, "another operation (install/upgrade/rollback) is in progress")

	rev, ok, err := rc.Unlock(ctx, "lock holder job-7 is gone")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1, rev.Number)
	require.Equal(t, "pending-install", rev.Status)
	last, err := rc.Last(ctx)
	require.NoError(t, err)
	require.Equal(t, "failed", last.Status)
	require.Contains(t, last.Description, "pending-install; marked failed by deploy recovery: lock holder job-7 is gone")

	r2, err := rc.Apply(ctx, tinyChart(), map[string]any{"message": "x"}, release.ApplyOptions{})
	require.NoError(t, err, "after recovery Helm proceeds")
	require.NoError(t, rc.MarkFailed(ctx, r2.Number, "gates failed: CrashLoop in web"))
	last, err = rc.Last(ctx)
	require.NoError(t, err)
	require.Equal(t, "failed", last.Status)
	require.Equal(t, "gates failed: CrashLoop in web", last.Description)

	require.NoError(t, rc.Uninstall(ctx, "test"))
	h, err := rc.History(ctx)
	require.NoError(t, err)
	require.Empty(t, h)
	_, err = rc.Last(ctx)
	require.ErrorIs(t, err, release.ErrNoRelease)
}

func TestSameAs(t *testing.T) {
	t.Parallel()
	rc, _ := client(t)
	ctx := context.Background()
	ch := tinyChart()
	vals := map[string]any{"message": "one", "nested": map[string]any{"n": 2}}
	rev, err := rc.Apply(ctx, ch, vals, release.ApplyOptions{})
	require.NoError(t, err)
	last, err := rc.Last(ctx)
	require.NoError(t, err)
	_ = rev

	changed := tinyChart()
	changed.Templates[0].Data = append(changed.Templates[0].Data, []byte("  extra: \"1\"\n")...)
	tests := []struct {
		name   string
		chart  *chart.Chart
		values map[string]any
		same   bool
	}{
		{"identical", tinyChart(), map[string]any{"message": "one", "nested": map[string]any{"n": 2}}, true},
		{"int and float are the same number", tinyChart(), map[string]any{"message": "one", "nested": map[string]any{"n": 2.0}}, true},
		{"values differ", tinyChart(), map[string]any{"message": "two", "nested": map[string]any{"n": 2}}, false},
		{"template differs", changed, map[string]any{"message": "one", "nested": map[string]any{"n": 2}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			same, err := last.SameAs(tt.chart, tt.values)
			require.NoError(t, err)
			require.Equal(t, tt.same, same)
		})
	}
}

func TestNewRefusesBadNames(t *testing.T) {
	c := testenv.Shared(t)
	kc, err := kube.FromKubeconfig(c.Kubeconfig(), "default")
	require.NoError(t, err)
	for name, want := range map[string]string{
		"":                      "empty name",
		"Upper":                 "lower-case",
		strings.Repeat("a", 54): "longer than 53",
	} {
		_, err := release.New(kc, "default", name, nil)
		require.ErrorContains(t, err, want)
	}
	_, err = release.New(kc, "", "ok", nil)
	require.ErrorContains(t, err, "no namespace")
}

func TestLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                      "alice",
		"ci:github/octo@runner-1":    "ci-github-octo-runner-1",
		"-x-":                        "x",
		strings.Repeat("ab", 40):     strings.Repeat("ab", 31) + "a",
		"alice (pid 12 on host, ts)": "alice-pid-12-on-host-ts",
	} {
		require.Equal(t, want, release.LabelValue(in), in)
	}
}

// TestHistoryCreditsOnlyRevisionsThePipelineMade drives Helm's own SDK
// (pkg/action, as the helm CLI does) between our applies: Helm copies the
// release Secret's labels onto the revisions it makes, and history must not
// credit those to the last actor of this pipeline.
func TestHistoryCreditsOnlyRevisionsThePipelineMade(t *testing.T) {
	t.Parallel()
	rc, kc := client(t)
	ctx := context.Background()
	ch := tinyChart()
	helm := new(action.Configuration)
	require.NoError(t, helm.Init(kc.Getter(), kc.Namespace, "secret", func(string, ...any) {}))

	_, err := rc.Apply(ctx, ch, map[string]any{"message": "one"}, release.ApplyOptions{DeployedBy: "alice"}) // 1
	require.NoError(t, err)
	_, err = rc.Apply(ctx, ch, map[string]any{"message": "two"}, release.ApplyOptions{DeployedBy: "bob"}) // 2
	require.NoError(t, err)

	// 3: `helm rollback tiny 1` copies revision 1's labels (alice's).
	rb := action.NewRollback(helm)
	rb.Version = 1
	require.NoError(t, rb.Run("tiny"))
	require.Equal(t, "alice", secretLabels(t, kc, 3)[release.LabelDeployedBy], "Helm copied the label; history must see through it")

	// 4: `helm upgrade` copies revision 3's labels.
	up := action.NewUpgrade(helm)
	up.Namespace = kc.Namespace
	_, err = up.RunWithContext(ctx, "tiny", ch, map[string]any{"message": "by hand"})
	require.NoError(t, err)

	// 5: our own rollback is ours again, 6: an apply with no actor is not.
	_, err = rc.Rollback(ctx, 2, release.RollbackOptions{DeployedBy: "carol"})
	require.NoError(t, err)
	_, err = rc.Apply(ctx, ch, map[string]any{"message": "three"}, release.ApplyOptions{})
	require.NoError(t, err)

	h, err := rc.History(ctx)
	require.NoError(t, err)
	require.Len(t, h, 6)
	tests := []struct {
		rev     int
		by      string
		outside bool
	}{
		{1, "alice", false},
		{2, "bob", false},
		{3, "", true},
		{4, "", true},
		{5, "carol", false},
		{6, "", true},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.rev), func(t *testing.T) {
			r := h[tt.rev-1]
			require.Equal(t, tt.rev, r.Number)
			require.Equal(t, tt.by, r.DeployedBy)
			require.Equal(t, tt.outside, r.Outside)
		})
	}
}
