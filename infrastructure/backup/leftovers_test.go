package backup_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

// childOf returns the pid of a child of parent whose program is one of
// names, or 0.
func childOf(parent int, names ...string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		comm := s[strings.IndexByte(s, '(')+1 : i]
		if len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		for _, n := range names {
			if comm == n {
				return pid
			}
		}
	}
	return 0
}

// A backup killed with SIGKILL runs no cleanup: whatever it wrote holding
// the password must not outlive it.
func TestKilledBackupLeavesNoPasswordOnDisk(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	seedAuth(t, m)
	m.Exec(t, "auth", "CREATE TABLE bulk (id INT PRIMARY KEY, v VARCHAR(255)) ENGINE=InnoDB; "+
		"INSERT INTO bulk SELECT seq, REPEAT('x', 200) FROM seq_1_to_60000")
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolBin, "backup", "--store", "auth-mysql", "--port", strconv.Itoa(m.Port),
		"--database", "auth", "--backup-dir", t.TempDir(), "--textfile-dir", "-")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "AUTH_MYSQL_ROOT_PASSWORD="+m.Password)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	child := 0
	for deadline := time.Now().Add(30 * time.Second); child == 0 && time.Now().Before(deadline); {
		child = childOf(cmd.Process.Pid, "mariadb-dump", "mysqldump")
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.NotZero(t, child, "never saw the dump running, so the kill proved nothing: %s", out.String())
	_ = syscall.Kill(child, syscall.SIGKILL)

	var found []string
	require.NoError(t, filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(m.Password)) {
			found = append(found, p)
		}
		return nil
	}))
	require.Empty(t, found, "the password outlived the killed run")
}

// Older versions left <tmp>/krgeobuk-backup-*/client.cnf behind when they
// were killed; any run removes them, and nothing else.
func TestAnyRunSweepsPasswordFilesOlderVersionsLeft(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	legacy := filepath.Join(tmp, "krgeobuk-backup-1234567", "client.cnf")
	other := filepath.Join(tmp, "krgeobuk-backup-test-99", "krgeobuk-backup")
	for _, f := range []string{legacy, other} {
		require.NoError(t, os.MkdirAll(filepath.Dir(f), 0o700))
		require.NoError(t, os.WriteFile(f, []byte("[client]\npassword=\"old-secret\"\n"), 0o600))
	}
	cmd := exec.Command(toolBin, "help")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.NoFileExists(t, legacy)
	require.NoDirExists(t, filepath.Dir(legacy))
	require.FileExists(t, other, "swept a file that is not an old password file")
}

// envWatch samples the environment of the named programs while it runs and
// records every variable holding a secret that the program may not have.
type envWatch struct {
	mu    sync.Mutex
	seen  map[string]bool
	leaks []string
	stop  chan struct{}
	done  chan struct{}
}

// watchEnv watches the programs in allowed; allowed[prog] is the one
// "NAME=secret" entry that program may hold ("" for none).
func watchEnv(allowed map[string]string, secrets []string) *envWatch {
	w := &envWatch{seen: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			entries, _ := os.ReadDir("/proc")
			for _, e := range entries {
				if _, err := strconv.Atoi(e.Name()); err != nil {
					continue
				}
				comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
				if err != nil {
					continue
				}
				prog := strings.TrimSpace(string(comm))
				allow, ok := allowed[prog]
				if !ok {
					continue
				}
				env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
				if err != nil || len(env) == 0 {
					continue
				}
				w.mu.Lock()
				w.seen[prog] = true
				for _, kv := range strings.Split(string(env), "\x00") {
					for _, s := range secrets {
						if strings.Contains(kv, s) && kv != allow {
							name, _, _ := strings.Cut(kv, "=")
							w.leaks = append(w.leaks, prog+" holds "+name)
						}
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return w
}

func (w *envWatch) finish() (map[string]bool, []string) {
	close(w.stop)
	<-w.done
	return w.seen, w.leaks
}

// failingDocker puts a docker on PATH that records its environment in
// <dir>/docker.env and fails.
func failingDocker(t *testing.T) (path, envFile string) {
	t.Helper()
	dir := t.TempDir()
	envFile = filepath.Join(dir, "docker.env")
	script := "#!/bin/sh\nenv > '" + envFile + "'\necho 'fake docker: no such container' >&2\nexit 1\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755))
	return dir + ":" + os.Getenv("PATH"), envFile
}

// Passwords from the environment reach only the child that needs them, and
// only as the one variable it reads.
func TestChildProcessesGetOnlyTheirOwnPassword(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	seedAuth(t, m)
	r := dbtest.StartRedis(t, fastSync)
	seedRedis(t, r)
	env := append(mysqlEnv(m, "AUTH"), redisEnv(r, "AUTH")...)
	secrets := []string{m.Password, r.Password}
	dir := t.TempDir()
	redisArgs := []string{"--store", "auth-redis", "--port", strconv.Itoa(r.Port), "--backup-dir", dir, "--textfile-dir", "-"}

	t.Run("host mode tools", func(t *testing.T) {
		w := watchEnv(map[string]string{
			"redis-cli":       "REDISCLI_AUTH=" + r.Password,
			"redis-server":    "",
			"redis-check-rdb": "",
			"mariadb-dump":    "",
			"mysqldump":       "",
		}, secrets)
		res := script(t, env, "backup-redis.sh", redisArgs...)
		require.Equal(t, 0, res.code, res.out)
		res = script(t, env, "verify-restore.sh", redisArgs...)
		require.Equal(t, 0, res.code, res.out)
		res = script(t, env, "backup-mysql.sh", "--store", "auth-mysql", "--port", strconv.Itoa(m.Port),
			"--database", "auth", "--backup-dir", dir, "--textfile-dir", "-")
		require.Equal(t, 0, res.code, res.out)
		seen, leaks := w.finish()
		require.Empty(t, leaks)
		require.True(t, seen["redis-server"], "never sampled the snapshot reader")
	})
	t.Run("container mode docker", func(t *testing.T) {
		path, envFile := failingDocker(t)
		res := script(t, append(append([]string{}, env...), "PATH="+path), "backup-mysql.sh", "--mode", "container",
			"--store", "auth-mysql", "--port", strconv.Itoa(m.Port), "--database", "auth", "--backup-dir", dir, "--textfile-dir", "-")
		require.Equal(t, 1, res.code, res.out)
		b, err := os.ReadFile(envFile)
		require.NoError(t, err, "docker never ran: %s", res.out)
		for _, kv := range strings.Split(string(b), "\n") {
			if kv == "MYSQL_PWD="+m.Password {
				continue
			}
			for _, s := range secrets {
				require.NotContains(t, kv, s, "docker received a password it does not need")
			}
		}
		require.Contains(t, string(b), "MYSQL_PWD="+m.Password)
	})
}
