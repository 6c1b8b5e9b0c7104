package dataserver_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

var toolBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "krgeobuk-dataserver-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	toolBin = filepath.Join(dir, "krgeobuk-dataserver")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	out, err := exec.CommandContext(ctx, "go", "build", "-o", toolBin, "./cmd/krgeobuk-dataserver").CombinedOutput()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build krgeobuk-dataserver: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code int
	out  string
}

// run runs the tool (or, when name ends in .sh, a script of
// infrastructure/) with env added, bounded by a timeout.
func run(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := toolBin
	if strings.HasSuffix(name, ".sh") {
		bin = filepath.Join("..", name)
	} else {
		args = append([]string{name}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), append([]string{"KRGEOBUK_DATASERVER_BIN=" + toolBin}, env...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return result{0, out.String()}
	case errors.As(err, &ee):
		return result{ee.ExitCode(), out.String()}
	}
	t.Fatalf("run %s: %v\n%s", name, err, out.String())
	return result{}
}

func readEnv(t *testing.T, p string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}

// The first install writes .env once, 0600, with a fresh random password
// for every placeholder, and never rewrites it; a .env others can read is
// narrowed, and one that still holds a placeholder is refused by name.
func TestInitWritesTheEnvFileOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmpl, err := os.ReadFile("../.env.example")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".env.example"), tmpl, 0o644))
	envFile := filepath.Join(dir, ".env")
	backups, tf := filepath.Join(dir, "var", "backups"), filepath.Join(dir, "textfile")
	args := []string{"--env-file", envFile, "--backup-dir", backups, "--textfile-dir", tf}

	res := run(t, nil, "init", args...)
	require.Equal(t, 0, res.code, res.out)
	st, err := os.Stat(envFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	env := readEnv(t, envFile)
	tmplEnv := readEnv(t, filepath.Join(dir, ".env.example"))
	seen := map[string]bool{}
	for k, v := range tmplEnv {
		if !strings.HasPrefix(v, "change-me") {
			require.Equal(t, v, env[k], "%s was changed", k)
			continue
		}
		require.Regexp(t, regexp.MustCompile(`^[A-Za-z0-9]{32}$`), env[k], k)
		require.False(t, seen[env[k]], "%s repeats another password", k)
		seen[env[k]] = true
		require.NotContains(t, res.out, env[k], "a password was printed")
		require.Contains(t, res.out, k)
	}
	require.Len(t, seen, 8)
	for d, mode := range map[string]os.FileMode{backups: 0o700, tf: 0o755} {
		st, err := os.Stat(d)
		require.NoError(t, err)
		require.Equal(t, mode, st.Mode().Perm(), d)
	}

	before, err := os.ReadFile(envFile)
	require.NoError(t, err)
	res = run(t, nil, "init", args...)
	require.Equal(t, 0, res.code, res.out)
	require.Contains(t, res.out, "kept as it is")
	after, err := os.ReadFile(envFile)
	require.NoError(t, err)
	require.Equal(t, before, after, "a second run rewrote the passwords")

	require.NoError(t, os.WriteFile(envFile, append(after, []byte("\nEXTRA_PASSWORD=change-me-later\n")...), 0o600))
	require.NoError(t, os.Chmod(envFile, 0o644))
	res = run(t, nil, "init", args...)
	require.Equal(t, 1, res.code, res.out)
	require.Contains(t, res.out, "was readable by others: now 0600")
	require.Contains(t, res.out, "placeholder values for EXTRA_PASSWORD")
	st, err = os.Stat(envFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func envFile(t *testing.T, vars map[string]string) string {
	t.Helper()
	var b strings.Builder
	for k, v := range vars {
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	p := filepath.Join(t.TempDir(), ".env")
	require.NoError(t, os.WriteFile(p, []byte(b.String()), 0o600))
	return p
}

func login(addr, user, password, db string) (*sql.DB, error) {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, password, "tcp", addr, db
	c.Timeout = 10 * time.Second
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, err
	}
	d := sql.OpenDB(conn)
	return d, d.Ping()
}

// The accounts end up as the platform expects, from any starting point:
// the app user owns its database and nothing else (a server-wide grant is
// revoked), the exporter reads, passwords follow the env file.
func TestGrantsGiveEachAccountItsOwnPrivilegesOnly(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	m.Exec(t, "", "CREATE DATABASE other; CREATE USER 'auth'@'%' IDENTIFIED BY 'an-old-password-123'; GRANT RELOAD, CREATE ON *.* TO 'auth'@'%'")
	vars := map[string]string{
		"AUTH_MYSQL_ROOT_PASSWORD": m.Password, "AUTH_MYSQL_DATABASE": "auth", "AUTH_MYSQL_USER": "auth",
		"AUTH_MYSQL_PASSWORD": "app-password-0123456789", "MYSQL_EXPORTER_PASSWORD": "exporter-password-0123456789",
	}
	args := []string{"--store", "auth-mysql", "--port", strconv.Itoa(m.Port), "--env-file", envFile(t, vars)}
	for i := 0; i < 2; i++ { // the second run changes nothing and still succeeds
		res := run(t, nil, "grants", args...)
		require.Equal(t, 0, res.code, res.out)
		for _, s := range []string{m.Password, vars["AUTH_MYSQL_PASSWORD"], vars["MYSQL_EXPORTER_PASSWORD"]} {
			require.NotContains(t, res.out, s)
		}
	}
	app, err := login(m.Addr(), "auth", vars["AUTH_MYSQL_PASSWORD"], "auth")
	require.NoError(t, err)
	defer func() { _ = app.Close() }()
	_, err = app.Exec("CREATE TABLE t (id INT PRIMARY KEY)")
	require.NoError(t, err, "the app user cannot create tables in its database")
	_, err = app.Exec("CREATE TABLE other.t (id INT PRIMARY KEY)")
	require.ErrorContains(t, err, "denied", "the app user reaches another database")
	_, err = app.Exec("FLUSH TABLES")
	require.ErrorContains(t, err, "denied", "the server-wide RELOAD was not revoked")
	_, err = login(m.Addr(), "auth", "an-old-password-123", "auth")
	require.Error(t, err, "the old password still works")

	exp, err := login(m.Addr(), "exporter", vars["MYSQL_EXPORTER_PASSWORD"], "")
	require.NoError(t, err)
	defer func() { _ = exp.Close() }()
	var n int
	require.NoError(t, exp.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST").Scan(&n))
	require.Greater(t, n, 1, "the exporter does not see other sessions (PROCESS)")
	_, err = exp.Exec("CREATE DATABASE x")
	require.ErrorContains(t, err, "denied")

	bad := map[string]string{}
	for k, v := range vars {
		bad[k] = v
	}
	bad["AUTH_MYSQL_PASSWORD"] = "short'"
	res := run(t, nil, "grants", "--store", "auth-mysql", "--port", strconv.Itoa(m.Port), "--env-file", envFile(t, bad))
	require.Equal(t, 1, res.code, res.out)
	require.Contains(t, res.out, "the app password is shorter than 16 characters")
	_, err = login(m.Addr(), "auth", vars["AUTH_MYSQL_PASSWORD"], "auth")
	require.NoError(t, err, "a refused run changed the password")
}

func tableIDs(t *testing.T, m *dbtest.MariaDB) map[string]int64 {
	t.Helper()
	rows, err := m.DB(t, "").Query("SELECT NAME, TABLE_ID FROM information_schema.INNODB_SYS_TABLES WHERE NAME LIKE 'auth/%'")
	require.NoError(t, err)
	defer func() { _ = rows.Close() }()
	out := map[string]int64{}
	for rows.Next() {
		var n string
		var id int64
		require.NoError(t, rows.Scan(&n, &id))
		out[n] = id
	}
	return out
}

func checksums(t *testing.T, m *dbtest.MariaDB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tbl := range []string{"users", "audit"} {
		var name string
		var sum sql.NullString
		require.NoError(t, m.DB(t, "").QueryRow("CHECKSUM TABLE auth."+tbl).Scan(&name, &sum))
		out[tbl] = sum.String
	}
	return out
}

func binlogCount(t *testing.T, m *dbtest.MariaDB) int {
	t.Helper()
	rows, err := m.DB(t, "").Query("SHOW BINARY LOGS")
	require.NoError(t, err)
	defer func() { _ = rows.Close() }()
	n := 0
	for rows.Next() {
		n++
	}
	return n
}

// db-maintenance.sh analyzes every table, rebuilds only what is asked or
// fragmented (data unchanged), and purges the binary logs older than the
// window, never the newer ones.
func TestDBMaintenanceAnalyzesRebuildsAndPurgesOldBinlogs(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t, dbtest.WithBinlog())
	m.Exec(t, "", "CREATE DATABASE auth")
	m.Exec(t, "auth", `CREATE TABLE auth.users (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(190)) ENGINE=InnoDB;
		CREATE TABLE auth.audit (id INT AUTO_INCREMENT PRIMARY KEY, action VARCHAR(50)) ENGINE=InnoDB;
		INSERT INTO auth.users (email) SELECT CONCAT('u', seq, '@example.com') FROM seq_1_to_500;
		INSERT INTO auth.audit (action) SELECT 'login' FROM seq_1_to_500;
		FLUSH BINARY LOGS; FLUSH BINARY LOGS; FLUSH BINARY LOGS`)
	require.Equal(t, 4, binlogCount(t, m))
	// MariaDB purges no binary log that InnoDB's crash recovery may still
	// need; wait (bounded) for the checkpoint that releases the older ones.
	m.Exec(t, "", "FLUSH ENGINE LOGS")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, retry.Do(ctx, retry.NewConstant(50*time.Millisecond), func(ctx context.Context) error {
		rows, err := m.DB(t, "").QueryContext(ctx, "SHOW BINLOG EVENTS IN 'binlog.000004'")
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			if vals[2].String == "Binlog_checkpoint" && strings.Contains(vals[5].String, "binlog.000004") {
				return nil
			}
		}
		return retry.RetryableError(errors.New("no checkpoint yet"))
	}), "the binary logs were never released by InnoDB")
	old, err := filepath.Glob(filepath.Join(m.Dir, "binlog.00000[12]"))
	require.NoError(t, err)
	require.Len(t, old, 2)
	tenDays := time.Now().Add(-10 * 24 * time.Hour)
	for _, f := range old {
		require.NoError(t, os.Chtimes(f, tenDays, tenDays))
	}
	env := []string{"KRGEOBUK_ENV_FILE=" + envFile(t, map[string]string{"AUTH_MYSQL_ROOT_PASSWORD": m.Password, "AUTH_MYSQL_DATABASE": "auth"})}
	args := []string{"--store", "auth-mysql", "--port", strconv.Itoa(m.Port)}
	data, ids := checksums(t, m), tableIDs(t, m)

	res := run(t, env, "maintenance/db-maintenance.sh", append(args, "--binlog-days", "-1")...)
	require.Equal(t, 2, res.code, res.out)
	require.Contains(t, res.out, "binlog days must be 0 (no purge) or at least 1")
	require.Equal(t, 4, binlogCount(t, m), "a refused run purged binary logs")

	res = run(t, env, "maintenance/db-maintenance.sh", append(args, "--binlog-days", "7")...)
	require.Equal(t, 0, res.code, res.out)
	require.Contains(t, res.out, "auth-mysql/auth: users analyzed")
	require.Contains(t, res.out, "auth-mysql/auth: audit analyzed")
	require.Contains(t, res.out, "purged 2 binary logs older than 7 days, 2 kept")
	require.Equal(t, 2, binlogCount(t, m))
	require.Equal(t, ids, tableIDs(t, m), "tables that are not fragmented were rebuilt")
	require.NotContains(t, res.out, m.Password)

	res = run(t, env, "maintenance/db-maintenance.sh", append(args, "--binlog-days", "0", "--optimize-all")...)
	require.Equal(t, 0, res.code, res.out)
	require.Contains(t, res.out, "users analyzed and rebuilt")
	now := tableIDs(t, m)
	for name, id := range ids {
		require.NotEqual(t, id, now[name], "%s was not rebuilt", name)
	}
	require.Equal(t, data, checksums(t, m), "a rebuild changed the data")
	require.Equal(t, 2, binlogCount(t, m), "--binlog-days 0 purged")
}
