package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/krgeobuk/krgeobuk-infra/internal/serverproc"
)

// MariaDB is a running MariaDB server owned by one test. Connect over TCP to
// Host:Port as User/Password (root, with every privilege, like the data
// server's MYSQL_ROOT_PASSWORD account) or over the unix Socket.
type MariaDB struct {
	Host     string
	Port     int
	User     string
	Password string
	Socket   string
	// Dir is the server's private directory (data, socket, logs).
	Dir string

	tb    testing.TB
	bin   string
	args  []string
	place place
	net   string // the DSN's network: tcp, or the place's registered dialer
	g     guard
	proc  *serverproc.Process
}

type mariaDBConfig struct {
	binlog bool
	args   []string
	place  place
}

// MariaDBOption changes how StartMariaDB configures the server.
type MariaDBOption func(*mariaDBConfig)

// WithBinlog turns on the binary log (server id 1), so dumps can record a
// binlog position as on a MySQL 8 server.
func WithBinlog() MariaDBOption { return func(c *mariaDBConfig) { c.binlog = true } }

// WithMariaDBArgs appends raw mariadbd options.
func WithMariaDBArgs(args ...string) MariaDBOption {
	return func(c *mariaDBConfig) { c.args = append(c.args, args...) }
}

// StartMariaDB starts a fresh MariaDB server on a free loopback port and
// returns once root can log in with the generated password. t.Cleanup stops
// it; the data directory goes with t.TempDir.
func StartMariaDB(tb testing.TB, opts ...MariaDBOption) *MariaDB {
	tb.Helper()
	var cfg mariaDBConfig
	for _, o := range opts {
		o(&cfg)
	}
	bin := lookBinary(tb, "mariadbd", "mariadb-server")
	installDB := lookBinary(tb, "mariadb-install-db", "mariadb-server")

	tmpl, err := mariaDBTemplate(bin, installDB)
	if err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	dir := tb.TempDir()
	data := filepath.Join(dir, "data")
	if err := copyTree(tmpl, data); err != nil {
		tb.Fatalf("dbtest: copy MariaDB template: %v", err)
	}
	m := &MariaDB{
		Host:     cfg.place.addr(),
		User:     "root",
		Password: randomSecret(),
		Socket:   filepath.Join(dir, "mysqld.sock"),
		Dir:      dir,
		tb:       tb,
		bin:      bin,
		place:    cfg.place,
		net:      cfg.place.mysqlNet(),
	}
	initFile := filepath.Join(dir, "init.sql")
	// The init file runs at every start; it sets the password for root over
	// TCP and the socket. The install leaves passwordless root@127.0.0.1 and
	// root@::1, which would win over root@%% for loopback clients: drop them.
	// The file is 0600 in the test's private directory.
	init := fmt.Sprintf(`DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1';
CREATE USER IF NOT EXISTS 'root'@'%%' IDENTIFIED BY '%[1]s';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%%' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED BY '%[1]s';
FLUSH PRIVILEGES;
`, m.Password)
	if err := os.WriteFile(initFile, []byte(init), 0o600); err != nil {
		tb.Fatalf("dbtest: write init file: %v", err)
	}
	// Internal temporary tables (Aria files) go to the server's own
	// directory: in the shared /tmp, servers of parallel tests crashed in
	// ha_maria::drop_table while freeing them.
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		tb.Fatalf("dbtest: %v", err)
	}
	m.args = []string{
		"--no-defaults",
		"--datadir=" + data,
		"--tmpdir=" + tmp,
		"--socket=" + m.Socket,
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--log-error=" + filepath.Join(dir, "error.log"),
		"--init-file=" + initFile,
		"--skip-networking=0",
		"--bind-address=" + m.Host,
		"--skip-name-resolve",
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=8M",
		"--max-connections=50",
		// A test server needs no crash durability: skip the fsyncs that make
		// loads slow on a shared CI disk.
		"--innodb-flush-log-at-trx-commit=0",
		"--innodb-doublewrite=0",
		"--sync-binlog=0",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
	}
	if os.Geteuid() == 0 {
		m.args = append(m.args, "--user=root")
	}
	if cfg.binlog {
		m.args = append(m.args, "--log-bin="+filepath.Join(dir, "binlog"), "--server-id=1", "--binlog-format=ROW")
	}
	m.args = append(m.args, cfg.args...)

	const attempts = 3
	for i := 1; ; i++ {
		if m.Port, err = serverproc.FreePort(); err != nil {
			tb.Fatalf("dbtest: %v", err)
		}
		err = m.start()
		if err == nil {
			break
		}
		if i == attempts || !isBindError(err.Error()) {
			tb.Fatalf("dbtest: start MariaDB: %v", err)
		}
	}
	tb.Cleanup(func() {
		if tb.Failed() && m.proc != nil {
			tb.Logf("dbtest: MariaDB on port %d, end of its log:\n%s", m.Port, m.proc.LogTail())
		}
		if err := m.stop(); err != nil {
			tb.Errorf("dbtest: stop MariaDB on port %d: %v", m.Port, err)
		}
	})
	return m
}

func (m *MariaDB) start() error {
	m.g.mu.Lock()
	defer m.g.mu.Unlock()
	if m.proc != nil && !m.proc.Exited() {
		return nil
	}
	args := append(append([]string{}, m.args...), "--port="+strconv.Itoa(m.Port))
	p, err := serverproc.Start(m.place.command(m.bin, args...), filepath.Join(m.Dir, "error.log"))
	if err != nil {
		return err
	}
	m.proc = p
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		return fmt.Errorf("open DSN: %w", err)
	}
	defer func() { _ = db.Close() }()
	err = serverproc.WaitReady(p, "mariadbd on "+m.Addr(), db.PingContext)
	if err != nil {
		_ = p.Stop()
	}
	return err
}

func (m *MariaDB) stop() error {
	m.g.mu.Lock()
	defer m.g.mu.Unlock()
	if m.proc == nil {
		return nil
	}
	return m.proc.Stop()
}

// Stop shuts the server down cleanly (for outage tests); its data stays.
func (m *MariaDB) Stop() {
	m.tb.Helper()
	if err := m.stop(); err != nil {
		m.tb.Fatalf("dbtest: stop MariaDB on port %d: %v", m.Port, err)
	}
}

// Start starts a stopped server again on the same port with the same data
// and returns once it answers.
func (m *MariaDB) Start() {
	m.tb.Helper()
	if err := m.start(); err != nil {
		m.tb.Fatalf("dbtest: restart MariaDB on port %d: %v", m.Port, err)
	}
}

// Addr is host:port for TCP clients.
func (m *MariaDB) Addr() string { return fmt.Sprintf("%s:%d", m.Host, m.Port) }

// DSN is a go-sql-driver/mysql data source name for database db over TCP
// ("" selects no database). It contains the password: keep it out of logs.
func (m *MariaDB) DSN(db string) string {
	c := mysql.NewConfig()
	c.User = m.User
	c.Passwd = m.Password
	c.Net = m.net
	c.Addr = m.Addr()
	c.DBName = db
	c.MultiStatements = true
	c.ParseTime = true
	return c.FormatDSN()
}

// DB opens a connection pool to database db, closed by t.Cleanup.
func (m *MariaDB) DB(tb testing.TB, db string) *sql.DB {
	tb.Helper()
	pool, err := sql.Open("mysql", m.DSN(db))
	if err != nil {
		tb.Fatalf("dbtest: open %s/%s: %v", m.Addr(), db, err)
	}
	tb.Cleanup(func() { _ = pool.Close() })
	return pool
}

// Exec runs statements (several separated by ';' are allowed) and fails the
// test on error.
func (m *MariaDB) Exec(tb testing.TB, db, statements string, args ...any) {
	tb.Helper()
	pool := m.DB(tb, db)
	if _, err := pool.ExecContext(context.Background(), statements, args...); err != nil {
		tb.Fatalf("dbtest: exec on %s/%s: %v", m.Addr(), db, err)
	}
}

var templateMu sync.Mutex

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// mariaDBTemplate returns a directory holding a freshly initialised data
// directory for this mariadbd version. Copying it is about ten times faster
// than running mariadb-install-db (BenchmarkFreshDataDir: 0.28 s against
// 3.4 s here), so the template is built once per version under
// $KRGEOBUK_CACHE and shared by every test and test binary.
func mariaDBTemplate(bin, installDB string) (string, error) {
	// Parallel tests of one binary wait for a single install instead of
	// racing several.
	templateMu.Lock()
	defer templateMu.Unlock()
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	version := unsafeName.ReplaceAllString(strings.TrimSpace(string(out)), "_")
	root := cacheRoot()
	final := filepath.Join(root, "dbtest", "mariadb-template-v1-"+version)
	if _, err := os.Stat(filepath.Join(final, "mysql")); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", fmt.Errorf("create cache dir: %w", err)
	}
	// Build beside the final place and rename, so a concurrent test binary
	// never sees a half-initialised template.
	work, err := os.MkdirTemp(filepath.Dir(final), ".mariadb-template-*")
	if err != nil {
		return "", fmt.Errorf("create template dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	data := filepath.Join(work, "data")
	args := []string{
		"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--innodb-log-file-size=8M", "--skip-log-bin",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(installDB, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mariadb-install-db: %w\n%s", err, b)
	}
	if err := os.Rename(data, final); err != nil {
		if _, statErr := os.Stat(filepath.Join(final, "mysql")); statErr == nil {
			return final, nil // another test binary won the race
		}
		return "", fmt.Errorf("install template: %w", err)
	}
	return final, nil
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

// copyTree copies regular files and directories from src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = in.Close() }()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			_ = out.Close()
			return err
		}
		return out.Close()
	})
}
