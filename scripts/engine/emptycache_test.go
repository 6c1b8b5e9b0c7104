//go:build emptycache

// The engine's steps on an empty cache root: make e2e runs this (go test
// -tags emptycache) after `engine build`, before it starts the real engine,
// so the built binaries are always there and no second engine runs beside it.

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
)

// The test binary doubles as two programs: `up` starts a copy of the running
// executable as `inside` in the engine's namespaces, and with fakeGoEnv set it
// is the `go` command build runs: every command but `go build` goes to the
// real go, and `go build -o OUT` hard-links the engine binary already built.
const (
	fakeGoEnv  = "KRGEOBUK_FAKE_GO"         // the real go
	fakeBinEnv = "KRGEOBUK_FAKE_GO_BIN_DIR" // the built engine binaries
)

func TestMain(m *testing.M) {
	if real := os.Getenv(fakeGoEnv); real != "" {
		os.Exit(fakeGo(real, os.Args[1:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "inside" {
		if err := run(context.Background(), os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "engine:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeGo(real string, args []string) int {
	if len(args) == 0 || args[0] != "build" {
		err := syscall.Exec(real, append([]string{real}, args...), os.Environ())
		fmt.Fprintf(os.Stderr, "stand-in go: exec %s: %v\n", real, err)
		return 2
	}
	out := ""
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			out = args[i+1]
		}
	}
	if out == "" {
		fmt.Fprintf(os.Stderr, "stand-in go build: no -o in %q\n", args)
		return 2
	}
	if err := os.Link(filepath.Join(os.Getenv(fakeBinEnv), filepath.Base(out)), out); err != nil {
		fmt.Fprintf(os.Stderr, "stand-in go build: %v\n", err)
		return 1
	}
	return 0
}

func TestEngineStepsOnAnEmptyCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := findPaths() // the real cache: before KRGEOBUK_CACHE points elsewhere
	require.NoError(t, err)
	realRegistry, err := registrytest.Server.Path()
	require.NoError(t, err)
	require.FileExists(t, realRegistry, "the empty-cache test reuses the built registry: run make registry-server first")
	built, err := buildDir(p.cache, p.distconsts, p.standins)
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(built, "bin", ".complete"),
		"the empty-cache test reuses the engine binaries in %s: run make engine-build first (make e2e does, before this test)", built)

	// A short root: the engine's socket lives under it, and the engine refuses
	// unix socket paths over 104 bytes (t.TempDir's are long).
	root, err := os.MkdirTemp("", "kc")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	cache := filepath.Join(root, "home", ".cache", "krgeobuk")
	t.Setenv("KRGEOBUK_CACHE", cache)
	q, err := findPaths()
	require.NoError(t, err)
	require.Equal(t, cache, q.cache)
	realGo, err := exec.LookPath("go")
	require.NoError(t, err)
	self, err := os.Executable()
	require.NoError(t, err)
	stand := t.TempDir()
	require.NoError(t, os.Symlink(self, filepath.Join(stand, "go")))

	t.Run("build (make engine-build)", func(t *testing.T) {
		// The cold path (download, source copy, patch, go mod tidy, stamp) with
		// the built binaries for the compiler's output.
		t.Setenv("PATH", stand+string(os.PathListSeparator)+os.Getenv("PATH"))
		t.Setenv(fakeGoEnv, realGo)
		t.Setenv(fakeBinEnv, filepath.Join(built, "bin"))
		require.NoError(t, run(ctx, []string{"build"}))
		dir, err := buildDir(cache, q.distconsts, q.standins)
		require.NoError(t, err)
		require.FileExists(t, filepath.Join(dir, "bin", ".complete"))
		require.NoDirExists(t, filepath.Join(dir, "src"), "the source copy is removed")
		require.NoError(t, run(ctx, []string{"build"}), "warm")
	})
	t.Run("down before up (make engine-down)", func(t *testing.T) {
		require.NoError(t, run(ctx, []string{"down"}))
	})
	t.Run("up, exec, down (make engine-up, make dagger-call, make engine-down)", func(t *testing.T) {
		// up builds the authenticating registry where it is missing; the one built is linked
		// in, as the stand-in go links the engine's binaries, so this tests folders, not builds.
		reg, err := registrytest.Server.Path()
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(reg), 0o755))
		require.NoError(t, os.Link(realRegistry, reg))
		require.NoError(t, run(ctx, []string{"up"}), "engine up on an empty cache")
		defer func() { require.NoError(t, run(context.Background(), []string{"down"}), "engine down") }()
		require.FileExists(t, filepath.Join(cache, "dagger-engine", "state", "run", "runner-host"))
		require.NoError(t, run(ctx, []string{"exec", "--", "true"}))
	})
}
