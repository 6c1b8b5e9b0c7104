package exampleimages_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/chartstest"
	"github.com/krgeobuk/krgeobuk-infra/internal/exampleimages"
	"github.com/krgeobuk/krgeobuk-infra/internal/promtest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
)

// The images carry the module's recipe: who runs, what starts, and the
// build's results at the paths the charts expect, owned by the runtime
// user where the process writes nothing but must read everything.
func TestExampleImagesFollowTheModulesRecipe(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	repo, err := binaries.FindRepoRoot(wd)
	require.NoError(t, err)
	imgs, err := exampleimages.Build(context.Background(), exampleimages.Options{Repo: repo, Cache: binaries.DefaultCacheDir(), Log: os.Stderr})
	require.NoError(t, err)

	api := configOf(t, imgs[exampleimages.API])
	require.Equal(t, "1000:1000", api.User)
	require.Equal(t, "/app", api.WorkingDir)
	require.Equal(t, []string{"node", "dist/main.js"}, api.Entrypoint)
	require.Contains(t, api.Env, "NODE_ENV=production")
	files := topLayer(t, imgs[exampleimages.API])
	require.Contains(t, files, "app/dist/main.js")
	require.Equal(t, 1000, files["app/dist/main.js"].Uid)
	require.Contains(t, files, "app/node_modules/@nestjs/core/package.json")
	require.NotContains(t, files, "app/node_modules/typescript/package.json", "dev dependencies are pruned")

	spa := configOf(t, imgs[exampleimages.SPA])
	require.Equal(t, "101:101", spa.User)
	files = topLayer(t, imgs[exampleimages.SPA])
	require.Contains(t, files, "usr/share/nginx/html/index.html")

	// Pushed by digest: what the registry serves is what was built.
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	refs, err := exampleimages.Push(context.Background(), host, map[string]v1.Image{"krgeobuk/auth-server": imgs[exampleimages.API]})
	require.NoError(t, err)
	ref, err := name.NewDigest(refs["krgeobuk/auth-server"], name.Insecure)
	require.NoError(t, err)
	got, err := remote.Image(ref)
	require.NoError(t, err)
	want, _ := imgs[exampleimages.API].Digest()
	gotD, _ := got.Digest()
	require.Equal(t, want, gotD)
	require.Equal(t, want.String(), ref.DigestStr())

	// A second build finds the first in the cache: same digest.
	again, err := exampleimages.Build(context.Background(), exampleimages.Options{Repo: repo, Cache: binaries.DefaultCacheDir()})
	require.NoError(t, err)
	d2, _ := again[exampleimages.API].Digest()
	require.Equal(t, want, d2)
}

func configOf(t *testing.T, img v1.Image) v1.Config {
	t.Helper()
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	return cf.Config
}

func topLayer(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	ls, err := img.Layers()
	require.NoError(t, err)
	rc, err := ls[len(ls)-1].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		out[filepath.Clean(h.Name)] = h
	}
}

// The Prometheus image runs what the monitoring-stack chart's StatefulSet expects: the
// version the chart pins, as nobody, with /etc/prometheus for the mounted configuration and
// /prometheus writable by that user. The binary it carries runs (extracted here, as the
// container's rootfs would hold it) and says its version.
func TestPrometheusImageFitsTheChart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	img, err := exampleimages.Prometheus(ctx, binaries.DefaultCacheDir(), t.Logf)
	require.NoError(t, err)
	again, err := exampleimages.Prometheus(ctx, binaries.DefaultCacheDir(), t.Logf)
	require.NoError(t, err)
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	require.Equal(t, d1, d2, "cached and content-keyed: the same binary makes the same image")

	cfg := configOf(t, img)
	require.Equal(t, fmt.Sprintf("%d:%d", exampleimages.PrometheusUID, exampleimages.PrometheusUID), cfg.User)
	require.Equal(t, []string{"/bin/prometheus"}, cfg.Entrypoint)
	require.Contains(t, cfg.ExposedPorts, "9090/tcp")

	mon, _ := chartstest.MustRenderMonitoring(t, "development")
	var sts *appsv1.StatefulSet
	for _, o := range mon.Objects {
		if s, ok := o.Typed.(*appsv1.StatefulSet); ok && s.Name == "monitoring-prometheus" {
			sts = s
		}
	}
	require.NotNil(t, sts)
	require.EqualValues(t, exampleimages.PrometheusUID, *sts.Spec.Template.Spec.SecurityContext.RunAsUser, "the chart runs the image's user")
	c := sts.Spec.Template.Spec.Containers[0]
	require.Equal(t, exampleimages.PrometheusRepository+":v"+promtest.PrometheusVersion, c.Image[:strings.Index(c.Image+"@", "@")])

	files := topLayer(t, img)
	for _, m := range c.VolumeMounts {
		h, ok := files[strings.TrimPrefix(m.MountPath, "/")]
		require.True(t, ok, "the image has the chart's mount point %s", m.MountPath)
		require.Equal(t, byte(tar.TypeDir), h.Typeflag)
	}
	require.Equal(t, exampleimages.PrometheusUID, files["prometheus"].Uid, "the data folder is Prometheus's own")

	bin := filepath.Join(t.TempDir(), "prometheus")
	ls, err := img.Layers()
	require.NoError(t, err)
	rc, err := ls[0].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		require.NoError(t, err, "bin/prometheus is in the layer")
		if h.Name == "bin/prometheus" {
			f, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
			require.NoError(t, err)
			_, err = io.Copy(f, tr)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			break
		}
	}
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "prometheus, version "+promtest.PrometheusVersion)
}
