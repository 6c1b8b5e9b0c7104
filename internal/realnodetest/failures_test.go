package realnodetest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/exampleimages"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/deploy"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
)

// Real failures on the real node, after a verified first release: an image
// that is not in the registry is refused at preflight with nothing changed;
// a release whose readiness never passes is rolled back, the report naming
// the pod, the container and the reason. (An image that exits 1 is
// TestDemoOnRealPods's second deploy.)
func TestRealFailuresAreRolledBack(t *testing.T) {
	w := newWorld(t, "development")
	// Bounds the release that never becomes ready: its pods show NotReady within 15 s.
	w.env.Gates.RolloutTimeout = 40 * time.Second
	ctx := context.Background()
	d := w.deployer()
	deploytest.RequireVerdict(t, report.Verified, d.Deploy(ctx, deploy.Request{Images: w.images, Values: w.with()}))

	t.Run("an image that does not exist", func(t *testing.T) {
		repo, _, _ := strings.Cut(w.images["auth-server"], "@")
		missing := repo + "@sha256:" + strings.Repeat("0", 64)
		res := d.Deploy(ctx, deploy.Request{Images: with(w.images, "auth-server", missing), Values: w.with()})
		deploytest.RequireVerdict(t, report.Refused, res)
		require.Contains(t, res.Error, "auth-server")
		h, err := d.Release().History(ctx)
		require.NoError(t, err)
		require.Len(t, h, 1, "nothing was installed")
		w.requireRuns(ctx, "auth-server", w.images["auth-server"])
	})

	t.Run("readiness that never passes", func(t *testing.T) {
		// A real misconfiguration: the API starts, reaches its stores'
		// ports, and answers 503 because its database does not exist.
		res := d.Deploy(ctx, deploy.Request{Images: w.images, Values: w.with(map[string]any{
			"services": map[string]any{"auth-server": map[string]any{"config": map[string]any{"MYSQL_DATABASE": "no_such_database"}}},
		})})
		deploytest.RequireVerdict(t, report.RolledBack, res)
		p := problemOf(t, res, "auth-server", "auth-server")
		require.Equal(t, gate.NotReady, p.Class, "%+v", p)
		require.NotEmpty(t, p.Pod)
		require.NotEmpty(t, p.Logs, "the report quotes the running container's last lines")
		w.requireRuns(ctx, "auth-server", w.images["auth-server"])
		cm, err := w.admin.CoreV1().ConfigMaps(w.ns).Get(ctx, "auth-server-config", metav1.GetOptions{})
		require.NoError(t, err)
		require.NotEqual(t, "no_such_database", cm.Data["MYSQL_DATABASE"], "the rollback restored the configuration")
	})
}

// pushVariant pushes the example image of service with its config changed
// and returns its reference by digest.
func (w *world) pushVariant(ctx context.Context, service, tag string, change func(*v1.Config)) string {
	t := w.t
	t.Helper()
	img := examples[exampleimages.API]
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cfg := cf.Config.DeepCopy()
	change(cfg)
	img, err = mutate.Config(img, *cfg)
	require.NoError(t, err)
	ref, err := name.NewTag(w.c.Registry()+"/krgeobuk/"+service+":"+tag, name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img, remote.WithContext(ctx)))
	d, err := img.Digest()
	require.NoError(t, err)
	return ref.Context().String() + "@" + d.String()
}

// requireRuns checks that every pod of the service runs image.
func (w *world) requireRuns(ctx context.Context, service, image string) {
	w.t.Helper()
	d, err := w.admin.AppsV1().Deployments(w.ns).Get(ctx, service, metav1.GetOptions{})
	require.NoError(w.t, err)
	require.Equal(w.t, image, d.Spec.Template.Spec.Containers[0].Image, "%s runs the verified image again", service)
}

func with(images map[string]string, service, ref string) map[string]string {
	out := map[string]string{}
	for k, v := range images {
		out[k] = v
	}
	out[service] = ref
	return out
}

func problemOf(t *testing.T, res *report.Result, service, container string) gate.Problem {
	t.Helper()
	for _, p := range res.Problems {
		if p.Service == service && p.Container == container {
			return p
		}
	}
	t.Fatalf("no problem names %s's container %s: %+v", service, container, res.Problems)
	return gate.Problem{}
}

// requireRendered checks the person-facing report carries the facts too.
func requireRendered(t *testing.T, res *report.Result, want ...string) {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, report.Table(&b, res, nil))
	for _, s := range want {
		require.Contains(t, b.String(), s)
	}
}
