// Package promtest runs the real monitoring programs in tests: Prometheus,
// promtool, Alertmanager, node_exporter, mysqld_exporter and redis_exporter,
// each built once from the Go module proxy at an exact version (the same
// versions the monitoring-stack chart pins) and cached under
// $KRGEOBUK_CACHE/monitoring, keyed by version and build recipe.
package promtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/krgeobuk/krgeobuk-infra/internal/preflight"
)

// Tool is one program built from a module at an exact version. The module
// is built as its own main module, so its go.mod, go.sum and replace
// directives apply exactly as upstream releases it.
type Tool struct {
	// Name is the binary name.
	Name string
	// Module and Version select the source; Sum is the module's expected
	// go.sum hash, checked before anything is built (some modules here are
	// not in the public checksum database).
	Module, Version, Sum string
	// Package is the main package, relative to the module root.
	Package string
	// Tags and LDFlags are passed to go build.
	Tags    []string
	LDFlags string
	// Assets are files the module zip omits but the build embeds (generated
	// web UI bundles); they are written into the source copy before building.
	Assets map[string]string
	// NoSumDB marks a module the public checksum database does not serve;
	// Sum alone then vouches for it.
	NoSumDB bool
}

// Versions the chart pins and the tests run. Keep them in step with
// charts/monitoring-stack/values.yaml (a test checks the image tags) and with
// the exporters of infrastructure/docker-compose.monitoring.yml.
const (
	PrometheusVersion     = "3.15.1"
	AlertmanagerVersion   = "0.35.0"
	NodeExporterVersion   = "1.8.2"
	MysqldExporterVersion = "0.16.0"
	RedisExporterVersion  = "1.74.0"
)

func versionFlags(v string) string {
	return "-s -w -X github.com/prometheus/common/version.Version=" + v
}

// The tools, by binary name.
var (
	Prometheus = Tool{
		Name: "prometheus", Module: "github.com/prometheus/prometheus", Version: "v0.315.1",
		Sum:     "h1:ZXaNKyUO5szJhhw7gKiP6b2jpx1QkS0S3CI1R1bPqIA=",
		Package: "./cmd/prometheus",
		// Only the discovery mechanisms the chart uses: the cloud SDKs would
		// triple the build.
		Tags:    []string{"remove_all_sd", "enable_kubernetes_sd"},
		LDFlags: versionFlags(PrometheusVersion),
	}
	Promtool = Tool{
		Name: "promtool", Module: Prometheus.Module, Version: Prometheus.Version, Sum: Prometheus.Sum,
		Package: "./cmd/promtool", Tags: Prometheus.Tags, LDFlags: Prometheus.LDFlags,
	}
	Alertmanager = Tool{
		Name: "alertmanager", Module: "github.com/prometheus/alertmanager", Version: "v0.35.0",
		Sum:     "h1:nbXMjr+P2JaoFd7aHNDxKifEwTPN+TWxM0gNPonuH5w=",
		Package: "./cmd/alertmanager",
		LDFlags: versionFlags(AlertmanagerVersion),
		// The module zip lacks the built web UI; the API does not need it.
		Assets: map[string]string{"ui/app/dist/index.html": "<!doctype html><title>Alertmanager</title><p>UI not built.</p>\n"},
	}
	NodeExporter = Tool{
		Name: "node_exporter", Module: "github.com/prometheus/node_exporter", Version: "v" + NodeExporterVersion,
		Sum:     "h1:G8NryhgftPSXTnD+DuaNZTHDqmHF3zLWgPeG5RUtcHg=",
		Package: ".", LDFlags: versionFlags(NodeExporterVersion),
	}
	MysqldExporter = Tool{
		Name: "mysqld_exporter", Module: "github.com/prometheus/mysqld_exporter", Version: "v" + MysqldExporterVersion,
		Sum:     "h1:a1pIimb6fpRbdcthxlWa841+2e9UJ67thoVWa8XdUk0=",
		Package: ".", LDFlags: versionFlags(MysqldExporterVersion),
	}
	RedisExporter = Tool{
		Name: "redis_exporter", Module: "github.com/oliver006/redis_exporter", Version: "v" + RedisExporterVersion,
		Sum:     "h1:/ESQZa3xqpQxiQmk4tpo90Y8gPWLpYVF6E5SR262KtM=",
		Package: ".", LDFlags: "-s -w -X main.BuildVersion=" + RedisExporterVersion,
		NoSumDB: true,
	}
)

// All lists every tool, in build order.
func All() []Tool {
	return []Tool{Prometheus, Promtool, Alertmanager, NodeExporter, MysqldExporter, RedisExporter}
}

// CacheDir is where built tools live: $KRGEOBUK_CACHE/monitoring, defaulting
// to ~/.cache/krgeobuk/monitoring.
func CacheDir() (string, error) {
	root := os.Getenv("KRGEOBUK_CACHE")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cache dir: %w", err)
		}
		root = filepath.Join(home, ".cache", "krgeobuk")
	}
	return filepath.Join(root, "monitoring"), nil
}

// key identifies a build recipe, so a changed flag or asset rebuilds.
func (t Tool) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s@%s %s %s %v %s", t.Module, t.Version, t.Sum, t.Package, t.Tags, t.LDFlags)
	for _, k := range sortedKeys(t.Assets) {
		fmt.Fprintf(h, " %s=%s", k, t.Assets[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Path returns where the tool's binary is cached (it may not exist yet).
func (t Tool) Path() (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%s-%s", t.Name, t.Version, t.key()), t.Name), nil
}

// Ensure returns the path of the tool's binary, building it first when the
// cache does not hold it. Concurrent callers (parallel test packages) wait on
// a file lock instead of building twice. logf reports progress; it may be nil.
func (t Tool) Ensure(ctx context.Context, logf func(string, ...any)) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := t.Path()
	if err != nil {
		return "", err
	}
	if isExecutable(bin) {
		return bin, nil
	}
	if err := t.Preflight(filepath.Dir(filepath.Dir(bin))).Check(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", fmt.Errorf("tool %s: %w", t.Name, err)
	}
	unlock, err := lockFile(ctx, filepath.Dir(bin)+".lock")
	if err != nil {
		return "", fmt.Errorf("tool %s: %w", t.Name, err)
	}
	defer unlock()
	if isExecutable(bin) { // built by whoever held the lock
		return bin, nil
	}
	logf("building %s %s from %s (cached afterwards in %s)", t.Name, t.Version, t.Module, filepath.Dir(bin))
	if err := t.build(ctx, bin); err != nil {
		return "", fmt.Errorf("tool %s %s: %w", t.Name, t.Version, err)
	}
	return bin, nil
}

// Preflight is what building t into cacheDir needs: the go command, a
// writable cache folder with room for the module's source copy and the
// binary, and room in the Go build cache (estimates; Prometheus is the
// largest).
func (t Tool) Preflight(cacheDir string) preflight.Step {
	return preflight.Step{
		Name:  "monitoring-tools (" + t.Name + ")",
		Rerun: "make monitoring-tools",
		Tools: map[string]string{"go": ""},
		Dirs: append([]preflight.Dir{{Path: cacheDir, Need: preflight.GiB, What: "a copy of " + t.Module + " and the built " + t.Name}},
			preflight.GoCacheDir(2*preflight.GiB)...),
	}
}

func (t Tool) goEnv() []string {
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off")
	if t.NoSumDB {
		env = append(env, "GONOSUMDB="+t.Module)
	}
	return env
}

func (t Tool) build(ctx context.Context, bin string) error {
	var out bytes.Buffer
	dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", t.Module+"@"+t.Version)
	dl.Env = t.goEnv()
	dl.Dir = os.TempDir()
	dl.Stdout, dl.Stderr = &out, &out
	if err := dl.Run(); err != nil {
		return fmt.Errorf("go mod download: %w: %s", err, tail(out.String()))
	}
	var info struct{ Dir, Sum, Error string }
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		return fmt.Errorf("go mod download: %w", err)
	}
	if info.Error != "" {
		return fmt.Errorf("go mod download: %s", info.Error)
	}
	if info.Sum != t.Sum {
		return fmt.Errorf("module checksum %s does not match the pinned %s", info.Sum, t.Sum)
	}
	src, err := os.MkdirTemp(filepath.Dir(filepath.Dir(bin)), t.Name+"-src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	if err := copyTree(info.Dir, src); err != nil {
		return fmt.Errorf("copy module source: %w", err)
	}
	for rel, content := range t.Assets {
		p := filepath.Join(src, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	tmp := bin + ".tmp"
	args := []string{"build", "-trimpath", "-o", tmp, "-ldflags", t.LDFlags}
	if len(t.Tags) > 0 {
		args = append(args, "-tags", strings.Join(t.Tags, ","))
	}
	args = append(args, t.Package)
	out.Reset()
	b := exec.CommandContext(ctx, "go", args...)
	b.Dir, b.Env = src, t.goEnv()
	b.Stdout, b.Stderr = &out, &out
	if err := b.Run(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", t.Package, err, tail(out.String()))
	}
	return os.Rename(tmp, bin)
}

// copyTree copies a module directory (read-only in the module cache) into a
// writable tree.
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
}

func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
	case <-ctx.Done():
		// Closing the file releases a lock the goroutine may still obtain.
		f.Close()
		return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
	}
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
