package emptycache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/offhosttest"
	"github.com/krgeobuk/krgeobuk-infra/internal/promtest"
	"github.com/krgeobuk/krgeobuk-infra/internal/registrytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/binaries"
)

// The test binary doubles as the `go` command the steps run: with fakeGoEnv
// set it passes every command but `go build` to the real go, and answers
// `go build -o OUT` by hard-linking the already built binary to OUT.
const (
	fakeGoEnv   = "KRGEOBUK_FAKE_GO"          // the real go
	fakeBinsEnv = "KRGEOBUK_FAKE_GO_BINARIES" // JSON {"names": program → binary, "packages": package → program}
	fakeLogEnv  = "KRGEOBUK_FAKE_GO_LOG"      // each stand-in build appends a line here
)

type stock struct {
	Names    map[string]string `json:"names"`
	Packages map[string]string `json:"packages"`
}

func TestMain(m *testing.M) {
	if real := os.Getenv(fakeGoEnv); real != "" {
		os.Exit(fakeGo(real, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeGo(real string, args []string) int {
	if len(args) == 0 || args[0] != "build" {
		err := syscall.Exec(real, append([]string{real}, args...), os.Environ())
		fmt.Fprintf(os.Stderr, "stand-in go: exec %s: %v\n", real, err)
		return 2
	}
	if err := fakeBuild(args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "stand-in go build: %v\n", err)
		return 1
	}
	return 0
}

// fakeBuild links the built binaries where `go build -o OUT PKG...` would
// write them: OUT/<program> for each package when OUT ends in a slash, else
// OUT itself (the program named by OUT, without the .tmp an atomic install adds).
func fakeBuild(args []string) error {
	var s stock
	if err := json.Unmarshal([]byte(os.Getenv(fakeBinsEnv)), &s); err != nil {
		return fmt.Errorf("%s: %w", fakeBinsEnv, err)
	}
	var out string
	var pkgs []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o":
			i++
			out = args[i]
		case a == "-ldflags" || a == "-tags" || a == "-gcflags":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			pkgs = append(pkgs, a)
		}
	}
	if out == "" || len(pkgs) == 0 {
		return fmt.Errorf("want -o OUT and packages, got %q", args)
	}
	links := map[string]string{} // destination → program
	if strings.HasSuffix(out, string(filepath.Separator)) {
		for _, p := range pkgs {
			name, ok := s.Packages[p]
			if !ok {
				return fmt.Errorf("no built program for package %s", p)
			}
			links[filepath.Join(out, name)] = name
		}
	} else {
		links[out] = strings.TrimSuffix(filepath.Base(out), ".tmp")
	}
	for dst, name := range links {
		src, ok := s.Names[name]
		if !ok {
			return fmt.Errorf("no built binary for %s (output %s)", name, dst)
		}
		if err := os.Link(src, dst); err != nil {
			if err := copyExecutable(src, dst); err != nil {
				return fmt.Errorf("link or copy %s to %s: %w", src, dst, err)
			}
		}
		if err := appendLine(os.Getenv(fakeLogEnv), "build "+name); err != nil {
			return err
		}
	}
	return nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("stand-in log: %w", err)
	}
	_, err = fmt.Fprintln(f, line)
	return errors.Join(err, f.Close())
}

// builtBinaries finds, without building anything, every binary `make testenv`,
// `make monitoring-tools`, `make s3-server` and `make registry-server` put in the real cache; make test runs them all
// before go test, so a missing one is a failure, not a skip.
func builtBinaries(t *testing.T) stock {
	t.Helper()
	s := stock{Names: map[string]string{}, Packages: map[string]string{}}
	set, err := binaries.Cached(binaries.Options{})
	require.NoError(t, err, "the empty-cache test reuses the binaries of the real cache (%s): run make testenv first (make test does)", binaries.DefaultCacheDir())
	for name, p := range set.ByName() {
		s.Names[name] = p
	}
	for _, ts := range binaries.Toolsets() {
		for name, pkg := range ts.Programs {
			s.Packages[pkg] = name
		}
	}
	for _, tool := range promtest.All() {
		p, err := tool.Path()
		require.NoError(t, err)
		fi, err := os.Stat(p)
		require.NoError(t, err, "the empty-cache test reuses %s %s from the real cache: run make monitoring-tools first (make test does)", tool.Name, tool.Version)
		require.True(t, fi.Mode().IsRegular() && fi.Mode()&0o111 != 0, "%s is not an executable file", p)
		s.Names[tool.Name] = p
	}
	vgw, err := offhosttest.VersitygwPath()
	require.NoError(t, err)
	require.FileExists(t, vgw, "the empty-cache test reuses versitygw from the real cache: run make s3-server first (make test does)")
	s.Names["versitygw"] = vgw
	reg, err := registrytest.Server.Path()
	require.NoError(t, err)
	require.FileExists(t, reg, "the empty-cache test reuses the registry from the real cache: run make registry-server first (make test does)")
	s.Names["registry"] = reg
	return s
}

func TestCacheFillingStepsOnAnEmptyCache(t *testing.T) {
	s := builtBinaries(t) // reads the real cache: before KRGEOBUK_CACHE points elsewhere
	realGo, err := exec.LookPath("go")
	require.NoError(t, err)
	self, err := os.Executable()
	require.NoError(t, err)
	stand := t.TempDir()
	require.NoError(t, os.Symlink(self, filepath.Join(stand, "go")))
	stock, err := json.Marshal(s)
	require.NoError(t, err)
	buildLog := filepath.Join(t.TempDir(), "builds.log")
	// Not even the cache root exists, as on a machine without ~/.cache.
	cache := filepath.Join(t.TempDir(), "home", ".cache", "krgeobuk")
	t.Setenv("KRGEOBUK_CACHE", cache)
	t.Setenv("PATH", stand+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv(fakeGoEnv, realGo)
	t.Setenv(fakeBinsEnv, string(stock))
	t.Setenv(fakeLogEnv, buildLog)
	builds := func() []string {
		b, err := os.ReadFile(buildLog)
		if os.IsNotExist(err) {
			return nil
		}
		require.NoError(t, err)
		return strings.Fields(strings.ReplaceAll(string(b), "build ", ""))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	t.Run("testenv build (make testenv)", func(t *testing.T) {
		var log bytes.Buffer
		set, err := binaries.Ensure(ctx, binaries.Options{Log: &log})
		require.NoError(t, err, "testenv build on an empty cache:\n%s", log.String())
		require.ElementsMatch(t, []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "kwokctl",
			"kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "coredns", "kube-network-policies", "pause"}, builds(),
			"every program went through the cold path (the stand-in go build)")
		for _, p := range set.All() {
			require.True(t, strings.HasPrefix(p, cache+string(filepath.Separator)), "%s is in the empty cache", p)
			require.FileExists(t, p)
		}
		before := len(builds())
		_, err = binaries.Ensure(ctx, binaries.Options{Log: &log})
		require.NoError(t, err)
		require.Len(t, builds(), before, "the second run is warm")
		_, err = binaries.Cached(binaries.Options{})
		require.NoError(t, err, "the entries it wrote are accepted as fresh")
	})

	t.Run("monitoring tools (make monitoring-tools)", func(t *testing.T) {
		for _, tool := range promtest.All() {
			before := len(builds())
			bin, err := tool.Ensure(ctx, t.Logf)
			require.NoError(t, err, "%s on an empty cache", tool.Name)
			require.Equal(t, before+1, len(builds()), "%s went through the cold path", tool.Name)
			require.True(t, strings.HasPrefix(bin, filepath.Join(cache, "monitoring")+string(filepath.Separator)), "%s is in the empty cache", bin)
			require.FileExists(t, bin)
			again, err := tool.Ensure(ctx, t.Logf)
			require.NoError(t, err)
			require.Equal(t, bin, again)
			require.Equal(t, before+1, len(builds()), "%s: the second run is warm", tool.Name)
		}
		leftovers, err := filepath.Glob(filepath.Join(cache, "monitoring", "*-src-*"))
		require.NoError(t, err)
		require.Empty(t, leftovers, "source copies are removed after the build")
	})

	t.Run("S3 server (make s3-server)", func(t *testing.T) {
		before := len(builds())
		bin, err := offhosttest.EnsureVersitygw(ctx, t.Logf)
		require.NoError(t, err, "versitygw on an empty cache")
		require.Equal(t, before+1, len(builds()), "versitygw went through the cold path")
		require.Equal(t, filepath.Join(cache, "versitygw", offhosttest.VersitygwVersion, "versitygw"), bin)
		require.FileExists(t, bin)
		again, err := offhosttest.EnsureVersitygw(ctx, t.Logf)
		require.NoError(t, err)
		require.Equal(t, bin, again)
		require.Equal(t, before+1, len(builds()), "the second run is warm")
	})

	t.Run("registry (make registry-server)", func(t *testing.T) {
		before := len(builds())
		bin, err := registrytest.Server.Ensure(ctx, t.Logf)
		require.NoError(t, err, "the registry on an empty cache")
		require.Equal(t, before+1, len(builds()), "the registry went through the cold path")
		require.Equal(t, filepath.Join(cache, "registry", registrytest.Version, "registry"), bin)
		require.FileExists(t, bin)
		again, err := registrytest.Server.Ensure(ctx, t.Logf)
		require.NoError(t, err)
		require.Equal(t, bin, again)
		require.Equal(t, before+1, len(builds()), "the second run is warm")
	})
}
