package image

import (
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/require"
)

func smallLayer(t *testing.T, body string) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc", "motd"), []byte(body), 0o644))
	p := filepath.Join(t.TempDir(), "layer.tar")
	require.NoError(t, Layer(p, root, nil))
	return p
}

func TestLayoutCarriesTheImageConfig(t *testing.T) {
	cfg := v1.Config{
		Env:          []string{"PATH=/usr/bin:/bin", "npm_config_offline=true"},
		Entrypoint:   []string{"/usr/local/bin/docker-entrypoint.sh"},
		Cmd:          []string{"mysqld"},
		User:         "101:101",
		WorkingDir:   "/srv",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
	}
	img, err := Assemble([]string{smallLayer(t, "hello\n")}, cfg)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "layout")
	require.NoError(t, WriteLayout(dir, img))

	back, err := ReadLayout(dir)
	require.NoError(t, err)
	cf, err := back.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, cfg.Env, cf.Config.Env)
	require.Equal(t, cfg.Entrypoint, cf.Config.Entrypoint)
	require.Equal(t, cfg.Cmd, cf.Config.Cmd)
	require.Equal(t, cfg.User, cf.Config.User)
	require.Equal(t, cfg.WorkingDir, cf.Config.WorkingDir)
	require.Equal(t, cfg.ExposedPorts, cf.Config.ExposedPorts)
	require.Equal(t, "linux", cf.OS)
	require.Equal(t, "amd64", cf.Architecture)

	// the engine loads the manifest from its content store as an OCI manifest
	mt, err := back.MediaType()
	require.NoError(t, err)
	require.Equal(t, types.OCIManifestSchema1, mt)
	m, err := back.Manifest()
	require.NoError(t, err)
	require.Equal(t, types.OCIConfigJSON, m.Config.MediaType)
	require.Len(t, m.Layers, 1)
	require.Equal(t, types.OCILayer, m.Layers[0].MediaType)
	// and finds the manifest blob by its digest
	d, err := back.Digest()
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "blobs", d.Algorithm, d.Hex))
	require.NoError(t, err)
}

func TestSameContentSameDigest(t *testing.T) {
	digest := func(body string) v1.Hash {
		img, err := Assemble([]string{smallLayer(t, body)}, v1.Config{Cmd: []string{"sh"}})
		require.NoError(t, err)
		d, err := img.Digest()
		require.NoError(t, err)
		return d
	}
	require.Equal(t, digest("a\n"), digest("a\n"), "rebuilding the same content must give the same digest")
	require.NotEqual(t, digest("a\n"), digest("b\n"))
}

func TestReadLayoutWantsExactlyOneManifest(t *testing.T) {
	img, err := Assemble([]string{smallLayer(t, "x")}, v1.Config{})
	require.NoError(t, err)
	other, err := Assemble([]string{smallLayer(t, "y")}, v1.Config{})
	require.NoError(t, err)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	require.NoError(t, err)
	require.NoError(t, p.AppendImage(img))
	require.NoError(t, p.AppendImage(other))
	_, err = ReadLayout(dir)
	require.ErrorContains(t, err, "2 manifests, want exactly one")
	require.ErrorContains(t, err, dir)
}

func TestDaggerJSONIncluded(t *testing.T) {
	cfg := DaggerJSON{Name: "krgeobuk", Source: "ci", Include: []string{"go.mod", "pipelines", "charts/krgeobuk-apps", "!**/*_test.go", "!**/testdata"}}
	cases := []struct {
		rel  string
		want bool
	}{
		{"dagger.json", true},
		{"go.mod", true},
		{"ci/main.go", true},
		{"ci/contract_test.go", false},
		{"pipelines/build/plan.go", true},
		{"pipelines/build/plan_test.go", false},
		{"pipelines/render/testdata/x.yaml", false},
		{"charts/krgeobuk-apps/values.yaml", true},
		{"charts/other/values.yaml", false},
		{"go.sum", false},
		{"internal/testenv/env.go", false},
		{"cifoo/x.go", false},
	}
	for _, c := range cases {
		t.Run(c.rel, func(t *testing.T) {
			require.Equal(t, c.want, cfg.Included(c.rel), "dagger.json include rule for %s", c.rel)
		})
	}
}

// A registry client picks an index's image by the platform the config
// names: an arm64 variant must say arm64, the same layer otherwise.
func TestAssembleForNamesTheArchitecture(t *testing.T) {
	l := smallLayer(t, "x")
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			img, err := AssembleFor(arch, []string{l}, v1.Config{Cmd: []string{"node"}})
			require.NoError(t, err)
			dir := filepath.Join(t.TempDir(), "layout")
			require.NoError(t, WriteLayout(dir, img))
			back, err := ReadLayout(dir)
			require.NoError(t, err)
			cf, err := back.ConfigFile()
			require.NoError(t, err)
			require.Equal(t, "linux/"+arch, cf.Platform().String())
			require.Equal(t, []string{"node"}, cf.Config.Cmd)
		})
	}
}
