package main

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/image"
)

// linkTree hard-links every file of the built artifact src (a binary or an OCI
// layout) to dst, making dst's folders: the artifact's own content only.
func linkTree(t *testing.T, src, dst string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.Link(p, target)
	}))
}

// The verbs of `make images` and the Go SDK image's offline proof against an
// empty cache root, reusing the images `make images` built (images-test runs
// after it; a missing one is a failure, not a skip) and the codegen binary
// `make lint` built: a folder the code assumes instead of creating fails here
// in minutes, not on a fresh machine after forty.
func TestImageVerbsOnAnEmptyCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	require.NoError(t, err)
	repo := strings.TrimSpace(string(out))
	real, err := image.CacheRoot() // before KRGEOBUK_CACHE points elsewhere
	require.NoError(t, err)

	realSDK := &image.GoSDK{Repo: repo, Cache: real}
	sdkLayout, err := realSDK.LayoutPath()
	require.NoError(t, err, "the empty-cache test reuses codegen %s from %s: run make generate-check (make lint) first", image.CodegenVersion, real)
	require.FileExists(t, filepath.Join(sdkLayout, "index.json"), "the empty-cache test reuses the Go SDK image: run make images first (make images-test does)")
	realBases := &image.Bases{Repo: repo, Cache: real}
	baseLayouts := map[string]string{}
	for _, b := range append(image.BaseImages(), image.Arm64Variants()...) {
		p, err := realBases.LayoutPath(b)
		require.NoError(t, err)
		require.FileExists(t, filepath.Join(p, "index.json"), "the empty-cache test reuses the %s image (%q): run make images first (make images-test does)", b.Name, b.Arch)
		baseLayouts[b.Name+"/"+b.Arch] = p
	}

	cache := filepath.Join(t.TempDir(), "home", ".cache", "krgeobuk")
	t.Setenv("KRGEOBUK_CACHE", cache)
	rel := func(p string) string {
		r, err := filepath.Rel(real, p)
		require.NoError(t, err)
		return r
	}
	// The version- and content-keyed artifacts only: no rootfs tarball, no
	// work or tmp folders, nothing around them.
	codegen := filepath.Join("codegen", image.CodegenVersion, "codegen")
	linkTree(t, filepath.Join(real, codegen), filepath.Join(cache, codegen))
	linkTree(t, sdkLayout, filepath.Join(cache, rel(sdkLayout)))
	for _, p := range baseLayouts {
		linkTree(t, p, filepath.Join(cache, rel(p)))
	}

	t.Run("go-sdk (make images)", func(t *testing.T) {
		require.NoError(t, run(ctx, []string{"go-sdk"}))
	})
	t.Run("base (make images)", func(t *testing.T) {
		require.NoError(t, run(ctx, []string{"base"}))
	})
	t.Run("prove-go-sdk (the Go SDK image's offline proof)", func(t *testing.T) {
		require.NoError(t, run(ctx, []string{"prove-go-sdk"}))
		left, err := os.ReadDir(filepath.Join(cache, "tmp"))
		require.NoError(t, err)
		require.Empty(t, left, "the proof removes its scratch folder")
	})
}
