package exampleimages

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/krgeobuk/krgeobuk-infra/internal/promtest"
)

// PrometheusUID is the user the monitoring-stack chart runs Prometheus as
// (its StatefulSet's runAsUser, nobody as in the upstream image).
const PrometheusUID = 65534

// PrometheusRepository is the image the monitoring-stack chart names; the
// real node pulls this image under that name through MirrorRegistry.
const PrometheusRepository = "quay.io/prometheus/prometheus"

// prometheusRecipe versions the image's layout: change it when the layer or
// the configuration below changes, so a cached image is not reused.
const prometheusRecipe = "prometheus-image/1"

// Prometheus returns a runnable Prometheus image for the real node, built
// without a container engine from the binary promtest builds (the version
// the chart pins, kubernetes discovery included): /bin/prometheus as the
// entrypoint, /etc/prometheus where the chart mounts its configuration,
// /prometheus (owned by PrometheusUID) where it keeps its data, the upstream
// image's user, working directory and port. The binary is static (CGO off),
// so the image needs no base. It is cached in
// $KRGEOBUK_CACHE/example-images keyed by the binary's content and the recipe.
func Prometheus(ctx context.Context, cache string, logf func(string, ...any)) (v1.Image, error) {
	bin, err := promtest.Prometheus.Ensure(ctx, logf)
	if err != nil {
		return nil, fmt.Errorf("prometheus image: %w", err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("prometheus image: %w", err)
	}
	sum := sha256.Sum256(append([]byte(prometheusRecipe+"\x00"), data...))
	dir := filepath.Join(cache, "example-images", "prometheus-"+promtest.PrometheusVersion+"-"+hex.EncodeToString(sum[:8]))
	if img, err := layoutImage(dir); err == nil {
		return img, nil
	}
	cfg, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "amd64", OS: "linux",
		Config: v1.Config{
			User:         fmt.Sprintf("%d:%d", PrometheusUID, PrometheusUID),
			WorkingDir:   "/prometheus",
			Entrypoint:   []string{"/bin/prometheus"},
			Cmd:          []string{"--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"},
			ExposedPorts: map[string]struct{}{"9090/tcp": {}},
			Labels:       map[string]string{"org.opencontainers.image.version": "v" + promtest.PrometheusVersion},
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	layer, err := prometheusLayer(data)
	if err != nil {
		return nil, fmt.Errorf("prometheus image: %w", err)
	}
	img, err := mutate.AppendLayers(cfg, layer)
	if err != nil {
		return nil, err
	}
	if err := writeLayout(dir, img); err != nil {
		return nil, err
	}
	return layoutImage(dir)
}

// prometheusLayer is the image's one layer: the folders root owns, the data
// folder Prometheus owns, and the binary. Times are zero so the same binary
// makes the same layer.
func prometheusLayer(bin []byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	entries := []tar.Header{
		{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755, ModTime: epoch},
		{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755, ModTime: epoch},
		{Typeflag: tar.TypeDir, Name: "etc/prometheus/", Mode: 0o755, ModTime: epoch},
		{Typeflag: tar.TypeDir, Name: "prometheus/", Mode: 0o755, Uid: PrometheusUID, Gid: PrometheusUID, ModTime: epoch},
		{Typeflag: tar.TypeReg, Name: "bin/prometheus", Mode: 0o755, Size: int64(len(bin)), ModTime: epoch},
	}
	for i := range entries {
		if err := tw.WriteHeader(&entries[i]); err != nil {
			return nil, err
		}
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
