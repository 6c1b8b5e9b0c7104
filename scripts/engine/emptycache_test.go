//go:build emptycache

// The engine's steps on an empty cache root: make e2e runs this (go test
// -tags emptycache) after `engine build`, before it starts the real engine,
// so the built binaries are always there and no second engine runs beside it.

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// `up` starts a copy of the running executable as `inside` in the engine's
// namespaces: here that is this test binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "inside" {
		if err := run(context.Background(), os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "engine:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestEngineStepsOnAnEmptyCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := findPaths() // the real cache: before KRGEOBUK_CACHE points elsewhere
	require.NoError(t, err)
	built, err := buildDir(p.cache, p.distconsts)
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(built, "bin", ".complete"),
		"the empty-cache test reuses the engine binaries in %s: run make engine-build first (make e2e does, before this test)", built)

	cache := filepath.Join(t.TempDir(), "home", ".cache", "krgeobuk")
	t.Setenv("KRGEOBUK_CACHE", cache)
	q, err := findPaths()
	require.NoError(t, err)
	require.Equal(t, cache, q.cache)
	dir, err := buildDir(cache, q.distconsts)
	require.NoError(t, err)
	// Only the version-keyed binaries and the mark build() writes last, which
	// is what it takes them for complete: everything else is the code's to make.
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	for _, name := range append(sortedKeys(binaries), ".complete") {
		require.NoError(t, os.Link(filepath.Join(built, "bin", name), filepath.Join(bin, name)), "link %s", name)
	}

	t.Run("build (make engine-build)", func(t *testing.T) {
		require.NoError(t, run(ctx, []string{"build"}))
	})
	t.Run("down before up (make engine-down)", func(t *testing.T) {
		require.NoError(t, run(ctx, []string{"down"}))
	})
	t.Run("up, exec, down (make engine-up, make dagger-call, make engine-down)", func(t *testing.T) {
		require.NoError(t, run(ctx, []string{"up"}), "engine up on an empty cache")
		defer func() { require.NoError(t, run(context.Background(), []string{"down"}), "engine down") }()
		require.FileExists(t, filepath.Join(cache, "dagger-engine", "state", "run", "runner-host"))
		require.NoError(t, run(ctx, []string{"exec", "--", "true"}))
	})
}
