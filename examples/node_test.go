package examples_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireNode fails (never skips) when Node.js or npm is missing.
func requireNode(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: the example services need Node.js 18+ with npm (the project's machines ship Node.js 20 "+
				"from the Debian package nodejs, which `make deps` checks; on plain Debian install the packages nodejs and npm)", bin)
		}
	}
}

func cacheRoot() string {
	if d := os.Getenv("KRGEOBUK_CACHE"); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "krgeobuk")
	}
	return filepath.Join(os.TempDir(), "krgeobuk-cache")
}

// nodeModules returns a node_modules installed with `npm ci` from the
// example's lockfile, kept under $KRGEOBUK_CACHE keyed by lockfile and Node
// version, so a warm run installs nothing and the repository never holds a
// node_modules. npm's download cache lives there too.
func nodeModules(t *testing.T, example string) string {
	t.Helper()
	src := filepath.Join(".", example)
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	require.NoError(t, err, "%s must commit its package-lock.json", example)
	pkg, err := os.ReadFile(filepath.Join(src, "package.json"))
	require.NoError(t, err)
	ver, err := exec.Command("node", "--version").Output()
	require.NoError(t, err)
	sum := sha256.Sum256(append(append(lock, pkg...), ver...))
	root := filepath.Join(cacheRoot(), "examples")
	final := filepath.Join(root, example+"-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(final, "node_modules", ".package-lock.json")); err == nil {
		return filepath.Join(final, "node_modules")
	}
	require.NoError(t, os.MkdirAll(root, 0o755))
	work, err := os.MkdirTemp(root, "."+example+"-*")
	require.NoError(t, err)
	defer func() { _ = os.RemoveAll(work) }()
	require.NoError(t, os.WriteFile(filepath.Join(work, "package.json"), pkg, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(work, "package-lock.json"), lock, 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := run(ctx, work, npmEnv(nil), "npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
	require.NoError(t, err, "npm ci for %s:\n%s", example, out)
	if err := os.Rename(work, final); err != nil {
		if _, statErr := os.Stat(filepath.Join(final, "node_modules")); statErr != nil {
			require.NoError(t, err, "install %s's node_modules", example)
		}
	}
	return filepath.Join(final, "node_modules")
}

// checkout copies the example's sources (not its build outputs) into a fresh
// directory with the cached node_modules linked in.
func checkout(t *testing.T, example string) string {
	t.Helper()
	modules := nodeModules(t, example)
	dst := t.TempDir()
	src := filepath.Join(".", example)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", "dist", "test-build":
				return fs.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	require.NoError(t, err)
	require.NoError(t, os.Symlink(modules, filepath.Join(dst, "node_modules")))
	return dst
}

// npmEnv is the environment of an npm or node process: the given variables
// and only what npm itself needs, so nothing from the test's own
// environment leaks into the service.
func npmEnv(vars map[string]string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"npm_config_cache=" + filepath.Join(cacheRoot(), "npm"),
		"npm_config_update_notifier=false",
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// run runs a command to completion within ctx and returns its output.
func run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// server is a long-running node process owned by one test.
type server struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

func startServer(t *testing.T, dir string, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command("node", args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s := &server{cmd: cmd, out: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	require.NoError(t, cmd.Start())
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends SIGTERM (Nest closes its connections) and waits, bounded.
func (s *server) stop(t *testing.T) {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("node ignored SIGTERM for 20s and was killed")
	}
}

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*lockedBuffer)(nil)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
