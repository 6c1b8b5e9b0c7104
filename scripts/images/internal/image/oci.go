// Package image builds the project's local container images (the Dagger Go
// SDK image and the e2e base images) from Debian packages as OCI image
// layouts, cached by a key of everything that goes into them.
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/layer"
)

// Assemble makes an OCI image (OCI media types, linux/amd64) from layer
// tarballs (uncompressed, bottom first) and a runtime config.
func Assemble(layerTars []string, cfg v1.Config) (v1.Image, error) {
	return AssembleFor("amd64", layerTars, cfg)
}

// AssembleFor is Assemble for linux/arch: the config's architecture is what
// a registry client matches against the platform it asks for.
func AssembleFor(arch string, layerTars []string, cfg v1.Config) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, p := range layerTars {
		l, err := tarball.LayerFromFile(p, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", p, err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, fmt.Errorf("layer %s: %w", p, err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

// WriteLayout writes img as an OCI image layout at dir holding exactly one
// manifest, replacing dir atomically.
func WriteLayout(dir string, img v1.Image) error {
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	if err := p.AppendImage(img); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	_ = os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

// ReadLayout returns the single image of the OCI layout at dir.
func ReadLayout(dir string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("layout %s: %d manifests, want exactly one", dir, len(m.Manifests))
	}
	return idx.Image(m.Manifests[0].Digest)
}

// Layer writes the deterministic layer tar of root (filtered by keep) to path.
func Layer(path, root string, keep func(string) bool) error {
	return layer.WriteFile(path, root, layer.Options{Keep: keep})
}

// Key hashes parts into a short, stable cache key.
func Key(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// HashFiles hashes the contents of files (missing files are an error).
func HashFiles(files ...string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CacheRoot is $KRGEOBUK_CACHE or ~/.cache/krgeobuk.
func CacheRoot() (string, error) {
	if d := os.Getenv("KRGEOBUK_CACHE"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("set KRGEOBUK_CACHE: no home directory")
	}
	return filepath.Join(home, ".cache", "krgeobuk"), nil
}
