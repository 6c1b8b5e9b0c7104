package image_test

// Real runs of each built image's root filesystem without the engine: the
// layout is unpacked, then its programs run chrooted in private namespaces
// with no network, as the pipelines would run them in the engine.

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/emulation"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/image"
	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/netns"
	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/rootfs"
)

func repo(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

func cache(t *testing.T) string {
	t.Helper()
	c, err := image.CacheRoot()
	require.NoError(t, err)
	return c
}

func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"debootstrap", "unshare", "nsenter", "chroot", "tar"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is missing: run `make deps`", tool)
	}
}

// built builds (or reuses) the named base image, unpacks it and returns its
// rootfs and runtime config.
func built(t *testing.T, ctx context.Context, name string) (string, *image.Base, []string) {
	t.Helper()
	return builtFor(t, ctx, name, "")
}

// builtFor is built for the variant of arch ("" is amd64, the host's), and
// checks the image says which architecture it is for.
func builtFor(t *testing.T, ctx context.Context, name, arch string) (string, *image.Base, []string) {
	t.Helper()
	requireTools(t)
	b := &image.Bases{Repo: repo(t), Cache: cache(t)}
	recipes := image.BaseImages()
	if arch != "" {
		recipes = image.Arm64Variants()
	}
	var recipe *image.Base
	for _, r := range recipes {
		if r.Name == name && r.Arch == arch {
			recipe = &r
		}
	}
	require.NotNil(t, recipe, "no base image %s for %q", name, arch)
	start := time.Now()
	out, err := b.Build(ctx, *recipe)
	require.NoError(t, err)
	t.Logf("image %s: layout %s ready in %s (cold the first time, then a cache hit)", name, out, time.Since(start).Round(time.Millisecond))
	img, err := image.ReadLayout(out)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	wantArch := arch
	if wantArch == "" {
		wantArch = "amd64"
	}
	require.Equal(t, "linux/"+wantArch, cf.OS+"/"+cf.Architecture, "image %s's config", name)
	root := filepath.Join(t.TempDir(), "rootfs")
	require.NoError(t, image.Unpack(ctx, img, root))
	return root, recipe, append(cf.Config.Env, "HOME=/root")
}

// server is a program started by serve.
type server struct {
	pid    int
	logf   string
	exited chan struct{}
}

// Log is what the server wrote so far.
func (s *server) Log() string {
	b, _ := os.ReadFile(s.logf)
	return string(b)
}

// serve starts args in root with no network; the pid of the result is the
// one whose network namespace the server lives in. Its whole process tree
// dies at cleanup. Its output goes to a world-writable file, as a container
// runtime's would be reachable, so a server that drops privileges can still
// open /dev/stderr.
func serve(t *testing.T, ctx context.Context, root string, emu *emulation.Emulator, env []string, args ...string) *server {
	t.Helper()
	f, logf := worldWritable(t)
	cmd, err := rootfs.Command(ctx, root, rootfs.Opts{Offline: true, Env: env, Stdout: f, Stderr: f, Emulator: emu}, args...)
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	s := &server{pid: cmd.Process.Pid, logf: logf, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		_ = cmd.Cancel()
		<-s.exited
	})
	return s
}

// worldWritable is a log file a process that dropped privileges can still
// open as /dev/stderr, as a container runtime's output would be.
func worldWritable(t *testing.T) (*os.File, string) {
	t.Helper()
	logf := filepath.Join(t.TempDir(), "out.log")
	f, err := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	require.NoError(t, err)
	require.NoError(t, f.Chmod(0o666))
	t.Cleanup(func() { _ = f.Close() })
	return f, logf
}

// eventually retries f every 250 ms for at most budget.
// It stops early, failing, when the server s (if any) has exited.
func eventually(ctx context.Context, s *server, budget time.Duration, f func(ctx context.Context) error) error {
	b := retry.WithMaxDuration(budget, retry.NewConstant(250*time.Millisecond))
	return retry.Do(ctx, b, func(ctx context.Context) error {
		if s != nil {
			select {
			case <-s.exited:
				return fmt.Errorf("the server exited")
			default:
			}
		}
		if err := f(ctx); err != nil {
			return retry.RetryableError(err)
		}
		return nil
	})
}

func secret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "s3cr'et-" + hex.EncodeToString(b)
}

// noSecretOnCmdlines fails when any process's command line holds a secret.
func noSecretOnCmdlines(t *testing.T, secrets ...string) {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended
		}
		for _, s := range secrets {
			require.NotContains(t, string(b), s, "a secret is on the command line of %s", p)
		}
	}
}

func TestNodeImageBuildsTheExamplesOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	root, _, env := built(t, ctx, "node")
	// ci/graphs mounts an empty cache volume on /root/.npm; the image's
	// cache must not be there
	require.NoDirExists(t, filepath.Join(root, "root/.npm"))
	steps := map[string][][]string{
		"auth-api": {{"npm", "ci", "--no-audit", "--no-fund"}, {"npm", "run", "build"}, {"npx", "tsc", "-p", "tsconfig.test.json"},
			{"npm", "prune", "--omit=dev", "--no-audit", "--no-fund"}},
		"spa": {{"npm", "ci", "--no-audit", "--no-fund"}, {"npm", "run", "build"}},
	}
	for _, ex := range []string{"auth-api", "spa"} {
		t.Run(ex, func(t *testing.T) {
			// the committed example, as the module's source directory holds it
			require.NoError(t, os.MkdirAll(filepath.Join(root, "src"), 0o755))
			archive := exec.Command("sh", "-c", `git -C "$0" archive HEAD "examples/$1" | tar -x -C "$2" --strip-components=1`, repo(t), ex, filepath.Join(root, "src"))
			out, err := archive.CombinedOutput()
			require.NoError(t, err, "copy examples/%s: %s", ex, out)
			for _, s := range steps[ex] {
				start := time.Now()
				var out strings.Builder
				err := rootfs.Run(ctx, root, rootfs.Opts{Offline: true, Env: env, Dir: "/src/" + ex, Stdout: &out, Stderr: &out}, s...)
				require.NoError(t, err, "examples/%s: %v with no network:\n%s", ex, s, out.String())
				t.Logf("examples/%s: %v offline in %s", ex, s, time.Since(start).Round(time.Millisecond))
			}
		})
	}
	require.FileExists(t, filepath.Join(root, "src/auth-api/dist/main.js"))
	require.NoDirExists(t, filepath.Join(root, "src/auth-api/node_modules/typescript"), "npm prune --omit=dev removes dev dependencies")
	require.FileExists(t, filepath.Join(root, "src/spa/dist/index.html"))
	// the pruned API starts as uid 1000 far enough to load its modules
	var out strings.Builder
	err := rootfs.Run(ctx, root, rootfs.Opts{Offline: true, Env: append(env, "NODE_ENV=production"), Dir: "/src/auth-api", Stdout: &out, Stderr: &out},
		"setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "node", "-e", "require('@nestjs/core'); require('mysql2'); require('ioredis'); console.log('loaded')")
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "loaded")
}

// check's Go image needs, offline: Go (the cache key's version), gofmt,
// git, make, shellcheck, and Node.js with npm so check skips its install.
func TestGolangImageHasWhatCheckRunsOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	root, _, env := built(t, ctx, "golang")
	require.NoError(t, os.WriteFile(filepath.Join(root, "tmp/bad.go"), []byte("package x\nfunc  f() {}\n"), 0o644))
	tests := []struct {
		cmd  string
		want string
	}{
		{"go version", "go version " + runtime.Version() + " linux/amd64"},
		{"gofmt -l /tmp/bad.go", "/tmp/bad.go"},
		{"command -v npm && command -v node", "/usr/bin/npm\n/usr/bin/node"},
		{"make --version", "GNU Make"},
		{"shellcheck --version", "ShellCheck"},
		{"git --version", "git version"},
	}
	for _, tt := range tests {
		var out strings.Builder
		err := rootfs.Run(ctx, root, rootfs.Opts{Offline: true, Env: env, Dir: "/", Stdout: &out, Stderr: &out}, "sh", "-c", tt.cmd)
		require.NoError(t, err, "%s: %s", tt.cmd, out.String())
		require.Contains(t, out.String(), tt.want, tt.cmd)
	}
}

// emulator is the cached qemu-aarch64-static the arm64 variants run with.
func emulator(t *testing.T, ctx context.Context) *emulation.Emulator {
	t.Helper()
	e, err := emulation.Fetch(ctx, cache(t), t.Logf)
	require.NoError(t, err)
	return &e
}

// Both nginx images, the arm64 one under emulation: the chart's config
// passes nginx -t, and nginx serves the site as uid 101 (master and workers).
func TestNginxImageServesTheChartsConfigAsUID101(t *testing.T) {
	for _, c := range []struct{ platform, arch string }{{"linux/amd64", ""}, {"linux/arm64", "arm64"}} {
		arch := c.arch
		t.Run(c.platform, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			root, _, env := builtFor(t, ctx, "nginx", arch)
			var emu *emulation.Emulator
			if arch != "" {
				emu = emulator(t, ctx)
				requireHostRefuses(t, filepath.Join(root, "usr/sbin/nginx"))
			}
			src, err := appenv.EmbeddedSource("production")
			require.NoError(t, err)
			conf, err := appenv.NginxConf(ctx, src, "auth-client")
			require.NoError(t, err)
			require.Contains(t, conf, "listen 8080")
			// what ci/graphs does: the chart's config and the built site
			require.NoError(t, os.WriteFile(filepath.Join(root, "etc/nginx/nginx.conf"), []byte(conf), 0o644))
			page := "<!doctype html><title>krgeobuk spa</title><div id=app>" + secret(t) + "</div>\n"
			require.NoError(t, os.WriteFile(filepath.Join(root, "usr/share/nginx/html/index.html"), []byte(page), 0o644))

			f, logf := worldWritable(t)
			err = rootfs.Run(ctx, root, rootfs.Opts{Offline: true, Env: env, Emulator: emu, Stdout: f, Stderr: f},
				"setpriv", "--reuid=101", "--regid=101", "--clear-groups", "nginx", "-t")
			out, _ := os.ReadFile(logf)
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "test is successful")

			srv := serve(t, ctx, root, emu, env, "setpriv", "--reuid=101", "--regid=101", "--clear-groups", "nginx", "-g", "daemon off;")
			client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return netns.Dial(ctx, srv.pid, network, addr)
			}}, Timeout: 5 * time.Second}
			var body string
			err = eventually(ctx, srv, 2*time.Minute, func(ctx context.Context) error {
				resp, err := client.Get("http://127.0.0.1:8080/")
				if err != nil {
					return err
				}
				defer func() { _ = resp.Body.Close() }()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					return err
				}
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("GET / = %d", resp.StatusCode)
				}
				body = string(b)
				return nil
			})
			require.NoError(t, err, "nginx as uid 101 with the chart's nginx.conf:\n%s", srv.Log())
			require.Equal(t, page, body)

			// every process chrooted in the rootfs (nginx's master and
			// workers: setpriv and the shell exec'd into nginx) runs as 101;
			// under emulation they are qemu processes, so the root, not the
			// command line, says which they are
			n := 0
			procs, _ := filepath.Glob("/proc/[0-9]*/status")
			for _, p := range procs {
				if !belongsTo(filepath.Dir(p), root) {
					continue
				}
				st, err := os.ReadFile(p)
				if err != nil {
					continue
				}
				n++
				require.Regexp(t, `\nUid:\s+101\s+101\s+101\s+101\n`, string(st), "%s must run as uid 101", p)
			}
			require.GreaterOrEqual(t, n, 2, "nginx's master and a worker of this test")
		})
	}
}

// The arm64 node image is a runtime base: its Node.js really is arm64 and
// runs under emulation, with the CA bundle in place, and no npm.
func TestArm64NodeImageRunsNodeUnderEmulation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	root, _, env := builtFor(t, ctx, "node", "arm64")
	emu := emulator(t, ctx)
	requireHostRefuses(t, filepath.Join(root, "usr/bin/node"))
	tests := []struct {
		cmd  string
		want string
	}{
		{"node --version", "v18."},
		{"node -p 'process.arch + \" \" + process.platform'", "arm64 linux"},
		// a child process: an emulated exec of another arm64 program
		{"node -e 'process.stdout.write(require(\"child_process\").execFileSync(\"uname\", [\"-m\"]))'", "aarch64"},
		{"test -s /etc/ssl/certs/ca-certificates.crt && echo bundle", "bundle"},
		{"command -v npm || echo no-npm", "no-npm"},
	}
	for _, tt := range tests {
		var out strings.Builder
		start := time.Now()
		err := rootfs.Run(ctx, root, rootfs.Opts{Offline: true, Env: env, Emulator: emu, Stdout: &out, Stderr: &out}, "sh", "-c", tt.cmd)
		require.NoError(t, err, "%s: %s", tt.cmd, out.String())
		require.Contains(t, out.String(), tt.want, tt.cmd)
		t.Logf("%s: %q in %s", tt.cmd, strings.TrimSpace(out.String()), time.Since(start).Round(time.Millisecond))
	}
	// the emulation was the runs' own: the host still refuses arm64
	requireHostRefuses(t, filepath.Join(root, "usr/bin/node"))
}

// requireHostRefuses fails unless the host, outside any emulator's
// namespace, refuses to execute the arm64 program prog.
func requireHostRefuses(t *testing.T, prog string) {
	t.Helper()
	err := exec.Command(prog, "--version").Run()
	require.Error(t, err)
	require.ErrorIs(t, err, syscall.ENOEXEC, "the host ran the arm64 program %s", prog)
}

// belongsTo reports whether the process at procDir is chrooted in root.
func belongsTo(procDir, root string) bool {
	r, err := os.Readlink(filepath.Join(procDir, "root"))
	return err == nil && r == root
}

func TestMySQLImageCreatesTheDatabaseAndUserFromSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	root, recipe, env := built(t, ctx, "mysql")
	user, pass, rootPass := "app_user", secret(t), secret(t)
	env = append(env, "MYSQL_DATABASE=krgeobuk_test", "MYSQL_USER="+user, "MYSQL_PASSWORD="+pass, "MYSQL_ROOT_PASSWORD="+rootPass)
	// as the module runs it: the entrypoint with `mysqld --port=P`
	args := append(append([]string{}, recipe.Config.Entrypoint...), "mysqld", "--port=3307")
	srv := serve(t, ctx, root, nil, env, args...)

	mysql.RegisterDialContext("netns", func(ctx context.Context, addr string) (net.Conn, error) {
		return netns.Dial(ctx, srv.pid, "tcp", addr)
	})
	open := func(u, p string) *sql.DB {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = u, p, "netns", "127.0.0.1:3307", "krgeobuk_test"
		cfg.Timeout = 5 * time.Second
		db, err := sql.Open("mysql", cfg.FormatDSN())
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	app := open(user, pass)
	err := eventually(ctx, srv, 3*time.Minute, func(ctx context.Context) error { return app.PingContext(ctx) })
	require.NoError(t, err, "connect as %s on 0.0.0.0:3307:\n%s", user, srv.Log())

	var current string
	require.NoError(t, app.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&current))
	require.Equal(t, "krgeobuk_test", current)
	_, err = app.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY)")
	require.NoError(t, err, "the user owns its database")
	require.NoError(t, open("root", rootPass).PingContext(ctx), "root has MYSQL_ROOT_PASSWORD")
	require.Error(t, open(user, "wrong").PingContext(ctx), "a wrong password is refused")

	// the health check the module uses
	var out strings.Builder
	err = rootfs.Run(ctx, root, rootfs.Opts{JoinNet: srv.pid, Env: env[:1], Stdout: &out, Stderr: &out},
		"mysqladmin", "ping", "--host=127.0.0.1", "--port=3307", "--silent")
	require.NoError(t, err, out.String())

	// secrets: never on a command line, never in the log, init file gone
	noSecretOnCmdlines(t, pass, rootPass)
	require.NotContains(t, srv.Log(), pass)
	require.NotContains(t, srv.Log(), rootPass)
	require.NoError(t, eventually(ctx, srv, time.Minute, func(context.Context) error {
		if _, err := os.Stat(filepath.Join(root, "run/mysqld/init.sql")); err == nil {
			return fmt.Errorf("init file with the secrets still present")
		}
		return nil
	}))
}

func TestRedisImageAnswersTheItestStartWithPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	root, _, env := built(t, ctx, "redis")
	// no quote in it: ci/graphs writes the password into redis.conf
	// unquoted, so a quote or space would break its config
	pass := strings.ReplaceAll(secret(t), "'", "")
	// ci/graphs' Redis start command (printf builtin: no secret on a command line)
	start := `umask 077 && printf 'port %d\nrequirepass %s\nsave ""\nappendonly no\n' 6380 "$REDIS_PASSWORD" > /tmp/redis.conf && exec redis-server /tmp/redis.conf`
	srv := serve(t, ctx, root, nil, append(env, "REDIS_PASSWORD="+pass), "sh", "-c", start)

	var conn net.Conn
	err := eventually(ctx, srv, time.Minute, func(ctx context.Context) error {
		c, err := netns.Dial(ctx, srv.pid, "tcp", "127.0.0.1:6380")
		if err != nil {
			return err
		}
		conn = c
		return nil
	})
	require.NoError(t, err, srv.Log())
	defer func() { _ = conn.Close() }()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	r := bufio.NewReader(conn)
	ask := func(cmd ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(cmd))
		for _, c := range cmd {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(c), c)
		}
		_, err := conn.Write([]byte(b.String()))
		require.NoError(t, err)
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		return strings.TrimSpace(line)
	}
	require.True(t, strings.HasPrefix(ask("PING"), "-NOAUTH"), "redis must require the password")
	require.Equal(t, "-WRONGPASS invalid username-password pair or user is disabled.", ask("AUTH", "wrong"))
	require.Equal(t, "+OK", ask("AUTH", pass))
	require.Equal(t, "+PONG", ask("PING"))
	noSecretOnCmdlines(t, pass)
}

func TestGoSDKImageBuildsTheModuleOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	requireTools(t)
	g := &image.GoSDK{Repo: repo(t), Cache: cache(t), Log: io.Discard}
	start := time.Now()
	out, err := g.Build(ctx)
	require.NoError(t, err)
	t.Logf("go-sdk image: layout %s ready in %s", out, time.Since(start).Round(time.Millisecond))
	img, err := image.ReadLayout(out)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	require.Contains(t, cf.Config.Env, "GOPROXY=file://"+image.ProxyDir)
	require.Contains(t, cf.Config.Env, "GOSUMDB=off")
	require.Contains(t, cf.Config.Env, "GOTOOLCHAIN=local")
	require.False(t, strings.HasPrefix(image.ProxyDir, "/go/pkg/mod"), "the engine hides /go/pkg/mod under a cache volume")

	start = time.Now()
	var log strings.Builder
	require.NoError(t, g.Prove(ctx, out, &log), log.String())
	t.Logf("go-sdk image: codegen + go get + go build of the module, offline, in %s", time.Since(start).Round(time.Millisecond))
}
