package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

// procWatch samples every process's command line until stopped, recording
// which programs it saw and any command line that contains a secret.
type procWatch struct {
	mu    sync.Mutex
	seen  map[string]bool
	leaks []string
	stop  chan struct{}
	done  chan struct{}
}

func watchProcs(secrets []string) *procWatch {
	w := &procWatch{seen: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			w.sample(secrets)
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *procWatch) sample(secrets []string) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		line := strings.Join(argv, " ")
		w.mu.Lock()
		// Redis rewrites its title into argv[0] ("/usr/bin/redis-server unixsocket:...").
		prog, _, _ := strings.Cut(argv[0], " ")
		w.seen[filepath.Base(prog)] = true
		for _, s := range secrets {
			if strings.Contains(line, s) {
				w.leaks = append(w.leaks, line)
			}
		}
		w.mu.Unlock()
	}
}

func (w *procWatch) finish() (seen map[string]bool, leaks []string) {
	close(w.stop)
	<-w.done
	return w.seen, w.leaks
}

func sawAny(seen map[string]bool, names ...string) bool {
	for _, n := range names {
		if seen[n] {
			return true
		}
	}
	return false
}

func TestPasswordsNeverReachACommandLineOrTheOutput(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	seedAuth(t, m)
	// Enough rows that mysqldump and mysql run long enough to be sampled.
	m.Exec(t, "auth", "CREATE TABLE bulk (id INT PRIMARY KEY, v VARCHAR(255)) ENGINE=InnoDB; "+
		"INSERT INTO bulk SELECT seq, REPEAT('x', 200) FROM seq_1_to_60000")
	r := dbtest.StartRedis(t, fastSync)
	ctx := context.Background()
	c := r.Client(t)
	p := c.Pipeline()
	for i := 0; i < 20000; i++ {
		p.Set(ctx, fmt.Sprintf("session:%d", i), strings.Repeat("v", 64), time.Hour)
	}
	_, err := p.Exec(ctx)
	require.NoError(t, err)

	dir := t.TempDir()
	env := append(mysqlEnv(m, "AUTH"), redisEnv(r, "AUTH")...)
	secrets := []string{m.Password, r.Password}
	mysqlArgs := []string{"--store", "auth-mysql", "--port", strconv.Itoa(m.Port), "--database", "auth", "--backup-dir", dir, "--textfile-dir", "-"}
	redisArgs := []string{"--store", "auth-redis", "--port", strconv.Itoa(r.Port), "--backup-dir", dir, "--textfile-dir", "-"}

	steps := []struct {
		name   string
		script string
		args   func() []string
		expect [][]string // each inner list: one of these programs must be seen
	}{
		{"mysql backup", "backup-mysql.sh", func() []string { return mysqlArgs },
			[][]string{{"mysqldump", "mariadb-dump"}, {"krgeobuk-backup"}}},
		{"mysql restore", "restore-mysql.sh", func() []string {
			return []string{"--store", "auth-mysql", "--port", strconv.Itoa(m.Port), "--yes",
				"--file", archives(t, filepath.Join(dir, "auth-mysql"))[0]}
		}, [][]string{{"mysql", "mariadb"}}},
		{"redis backup", "backup-redis.sh", func() []string { return redisArgs },
			[][]string{{"redis-cli"}}},
		{"redis restore", "restore-redis.sh", func() []string {
			return []string{"--store", "auth-redis", "--port", strconv.Itoa(r.Port), "--yes",
				"--file", archives(t, filepath.Join(dir, "auth-redis"))[0]}
		}, [][]string{{"redis-server"}}},
	}
	for _, st := range steps {
		start := time.Now()
		w := watchProcs(secrets)
		res := script(t, env, st.script, st.args()...)
		seen, leaks := w.finish()
		require.Equal(t, 0, res.code, "%s: %s", st.name, res.out)
		t.Logf("%s: %s", st.name, time.Since(start).Round(time.Millisecond))
		require.Empty(t, leaks, "%s: a password appeared on a command line", st.name)
		for _, s := range secrets {
			require.NotContains(t, res.out, s, "%s: a password appeared in the output", st.name)
		}
		// The check proves something only if it saw the processes at work.
		for _, names := range st.expect {
			require.True(t, sawAny(seen, names...), "%s: never sampled %v while it ran", st.name, names)
		}
	}
}

func TestWrongPasswordErrorsDoNotEchoThePassword(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	seedAuth(t, m)
	const wrong = "wrong-but-secret-password-4711"
	res := script(t, []string{"AUTH_MYSQL_ROOT_PASSWORD=" + wrong}, "backup-mysql.sh", "--store", "auth-mysql",
		"--port", strconv.Itoa(m.Port), "--database", "auth", "--backup-dir", t.TempDir(), "--textfile-dir", "-")
	require.Equal(t, 1, res.code, res.out)
	require.Contains(t, res.out, "Access denied")
	require.NotContains(t, res.out, wrong)
}
