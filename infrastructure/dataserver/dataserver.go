// Package dataserver installs and looks after the data server's MySQL
// stores: the first install's env file and folders (Init), the accounts the
// apps and the exporter log in with (Grants), and the weekly table
// maintenance and binary-log purge (Maintain). Everything runs over SQL
// connections: no password reaches a command line, and every error is
// scrubbed of the passwords it could quote.
package dataserver

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Server is one MySQL store as the tool reaches it.
type Server struct {
	Name     string // the catalog store, for messages
	Addr     string // host:port
	User     string
	Password string
}

func (s Server) open() (*sql.DB, error) {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = s.User, s.Password, "tcp", s.Addr
	c.Timeout = 10 * time.Second
	c.AllowNativePasswords = true
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db, nil
}

func redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return errors.New(s)
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// --- first install ---------------------------------------------------------

// passwordChars is what the compose entry points accept in a password
// (.env.example): no quotes, spaces or backslashes.
const passwordChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

var placeholder = regexp.MustCompile(`^change-me`)

// InitResult says what Init did, by variable name (never a value).
type InitResult struct {
	Created   bool
	Generated []string // variables given a random password
	Tightened bool     // an existing file's mode was narrowed to 0600
}

// Init writes envFile from template when it does not exist yet: every
// change-me value becomes a random 32-character password, the file is
// created 0600. An existing file is never rewritten (it holds the live
// passwords); its mode is narrowed to 0600, and any change-me value left in
// it is refused, naming the variables. It also creates the backup folder
// (0700) and the node exporter's textfile folder.
func Init(envFile, template string, dirs map[string]os.FileMode) (InitResult, error) {
	var res InitResult
	if st, err := os.Stat(envFile); err == nil {
		if st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(envFile, 0o600); err != nil {
				return res, err
			}
			res.Tightened = true
		}
		b, err := os.ReadFile(envFile)
		if err != nil {
			return res, err
		}
		var left []string
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
			if ok && !strings.HasPrefix(k, "#") && placeholder.MatchString(v) {
				left = append(left, k)
			}
		}
		if len(left) > 0 {
			return res, fmt.Errorf("%s still has placeholder values for %s: set them (or move the file away and run again to generate them)",
				envFile, strings.Join(left, ", "))
		}
	} else if os.IsNotExist(err) {
		if err := writeFromTemplate(envFile, template, &res); err != nil {
			return res, err
		}
	} else {
		return res, err
	}
	for dir, mode := range dirs {
		if err := os.MkdirAll(dir, mode); err != nil {
			return res, err
		}
		if err := os.Chmod(dir, mode); err != nil {
			return res, err
		}
	}
	return res, nil
}

func writeFromTemplate(envFile, template string, res *InitResult) error {
	b, err := os.ReadFile(template)
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(strings.TrimSpace(k), "#") || !placeholder.MatchString(v) {
			continue
		}
		pw, err := randomPassword(32)
		if err != nil {
			return err
		}
		lines[i] = k + "=" + pw
		res.Generated = append(res.Generated, k)
	}
	if err := os.MkdirAll(filepath.Dir(envFile), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(envFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, strings.Join(lines, "\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(envFile)
		return err
	}
	res.Created = true
	return nil
}

func randomPassword(n int) (string, error) {
	out := make([]byte, n)
	max := big.NewInt(int64(len(passwordChars)))
	for i := range out {
		j, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		out[i] = passwordChars[j.Int64()]
	}
	return string(out), nil
}

// --- accounts ---------------------------------------------------------------

var (
	validName     = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)
	validPassword = regexp.MustCompile(`^[A-Za-z0-9._~+=-]{16,}$`)
)

// Accounts are the logins a store must have.
type Accounts struct {
	Database    string
	AppUser     string
	AppPassword string
	// ExporterPassword is the read-only mysqld_exporter account's.
	ExporterPassword string
}

func (a Accounts) check() error {
	var problems []string
	for what, v := range map[string]string{"database": a.Database, "app user": a.AppUser} {
		if !validName.MatchString(v) {
			problems = append(problems, fmt.Sprintf("the %s %q is not 1-32 of A-Z a-z 0-9 _", what, v))
		}
	}
	for what, v := range map[string]string{"app password": a.AppPassword, "exporter password": a.ExporterPassword} {
		if !validPassword.MatchString(v) {
			problems = append(problems, "the "+what+" is shorter than 16 characters or has characters outside A-Z a-z 0-9 . _ ~ + = -")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Grants makes the store's accounts what the platform expects, and only
// that: the app user with every privilege on its own database and none on
// the server (a global one found is revoked), the exporter with PROCESS,
// REPLICATION CLIENT and SELECT and at most 3 connections; both with the
// passwords of the env file (a changed password is rotated). It is safe to
// run again. Each change is logged, never a password.
func Grants(ctx context.Context, s Server, a Accounts, log io.Writer) error {
	if err := a.check(); err != nil {
		return fmt.Errorf("grants on %s: %w", s.Name, err)
	}
	secrets := []string{s.Password, a.AppPassword, a.ExporterPassword}
	db, err := s.open()
	if err != nil {
		return redact(err, secrets...)
	}
	defer func() { _ = db.Close() }()
	app := fmt.Sprintf("'%s'@'%%'", a.AppUser)
	exp := "'exporter'@'%'"
	stmts := []struct{ what, sql string }{
		{"app user " + a.AppUser, fmt.Sprintf("CREATE USER IF NOT EXISTS %s IDENTIFIED BY '%s'", app, a.AppPassword)},
		{"app user's password", fmt.Sprintf("ALTER USER %s IDENTIFIED BY '%s'", app, a.AppPassword)},
		{"app user's privileges on " + a.Database, fmt.Sprintf("GRANT ALL PRIVILEGES ON %s.* TO %s", quoteIdent(a.Database), app)},
		{"app user's server-wide privileges revoked", fmt.Sprintf("REVOKE ALL PRIVILEGES ON *.* FROM %s", app)},
		{"exporter", fmt.Sprintf("CREATE USER IF NOT EXISTS %s IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS 3", exp, a.ExporterPassword)},
		{"exporter's password", fmt.Sprintf("ALTER USER %s IDENTIFIED BY '%s' WITH MAX_USER_CONNECTIONS 3", exp, a.ExporterPassword)},
		{"exporter's privileges", "GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO " + exp},
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(a.Database)+" CHARACTER SET utf8mb4"); err != nil {
		return fmt.Errorf("grants on %s: database %s: %w", s.Name, a.Database, redact(err, secrets...))
	}
	for _, st := range stmts {
		if _, err := db.ExecContext(ctx, st.sql); err != nil {
			return fmt.Errorf("grants on %s: %s: %w", s.Name, st.what, redact(err, secrets...))
		}
		fmt.Fprintf(log, "grants %s: %s\n", s.Name, st.what)
	}
	return nil
}

// --- maintenance ------------------------------------------------------------

// MaintainOptions configure a maintenance run.
type MaintainOptions struct {
	Databases []string
	// BinlogDays purges binary logs older than this many days (0: no
	// purge). At least 1: the dumps' point-in-time recovery replays them.
	BinlogDays int
	// OptimizeFreeRatio and OptimizeMinFree pick the tables OPTIMIZE
	// rebuilds: free space at least this share of the table and this many
	// bytes. OptimizeAll rebuilds every table.
	OptimizeFreeRatio float64
	OptimizeMinFree   int64
	OptimizeAll       bool
}

// Validate refuses settings that would purge what a restore needs.
func (o MaintainOptions) Validate() error {
	if len(o.Databases) == 0 {
		return errors.New("no database given")
	}
	if o.BinlogDays < 0 {
		return fmt.Errorf("binlog days must be 0 (no purge) or at least 1, got %d", o.BinlogDays)
	}
	if o.OptimizeFreeRatio < 0 || o.OptimizeFreeRatio > 1 {
		return fmt.Errorf("optimize free ratio must be between 0 and 1, got %g", o.OptimizeFreeRatio)
	}
	return nil
}

// Maintain runs ANALYZE TABLE on every base table of each database (fresh
// statistics for the optimizer), OPTIMIZE TABLE on those whose free space
// passes the thresholds (InnoDB rebuilds them online), and then purges the
// binary logs older than o.BinlogDays. It reports each step.
func Maintain(ctx context.Context, s Server, o MaintainOptions, log io.Writer) error {
	if err := o.Validate(); err != nil {
		return fmt.Errorf("maintain %s: %w", s.Name, err)
	}
	db, err := s.open()
	if err != nil {
		return redact(err, s.Password)
	}
	defer func() { _ = db.Close() }()
	for _, database := range o.Databases {
		if err := maintainDatabase(ctx, db, s.Name, database, o, log); err != nil {
			return fmt.Errorf("maintain %s/%s: %w", s.Name, database, redact(err, s.Password))
		}
	}
	if o.BinlogDays > 0 {
		if err := purgeBinlogs(ctx, db, s.Name, o.BinlogDays, log); err != nil {
			return fmt.Errorf("maintain %s: binary logs: %w", s.Name, redact(err, s.Password))
		}
	}
	return nil
}

type tableInfo struct {
	name            string
	data, free, idx int64
}

func maintainDatabase(ctx context.Context, db *sql.DB, store, database string, o MaintainOptions, log io.Writer) error {
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME, COALESCE(DATA_LENGTH,0), COALESCE(INDEX_LENGTH,0), COALESCE(DATA_FREE,0)
		FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`, database)
	if err != nil {
		return err
	}
	var tables []tableInfo
	for rows.Next() {
		var t tableInfo
		if err := rows.Scan(&t.name, &t.data, &t.idx, &t.free); err != nil {
			_ = rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if len(tables) == 0 {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", database).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("database %q does not exist", database)
		}
	}
	for _, t := range tables {
		full := quoteIdent(database) + "." + quoteIdent(t.name)
		if err := adminStatement(ctx, db, "ANALYZE TABLE "+full); err != nil {
			return fmt.Errorf("analyze %s: %w", t.name, err)
		}
		total := t.data + t.idx + t.free
		fragmented := total > 0 && float64(t.free)/float64(total) >= o.OptimizeFreeRatio && t.free >= o.OptimizeMinFree
		if !o.OptimizeAll && !fragmented {
			fmt.Fprintf(log, "maintain %s/%s: %s analyzed (%d bytes free of %d: not rebuilt)\n", store, database, t.name, t.free, total)
			continue
		}
		start := time.Now()
		if err := adminStatement(ctx, db, "OPTIMIZE TABLE "+full); err != nil {
			return fmt.Errorf("optimize %s: %w", t.name, err)
		}
		fmt.Fprintf(log, "maintain %s/%s: %s analyzed and rebuilt (%d bytes were free of %d) in %s\n",
			store, database, t.name, t.free, total, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// adminStatement runs ANALYZE or OPTIMIZE, which report failures as rows
// (Msg_type error), not as errors.
func adminStatement(ctx context.Context, db *sql.DB, stmt string) error {
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var table, op, typ, text string
		if err := rows.Scan(&table, &op, &typ, &text); err != nil {
			return err
		}
		if strings.EqualFold(typ, "error") {
			return errors.New(text)
		}
	}
	return rows.Err()
}

func purgeBinlogs(ctx context.Context, db *sql.DB, store string, days int, log io.Writer) error {
	var name, value string
	if err := db.QueryRowContext(ctx, "SHOW VARIABLES LIKE 'log_bin'").Scan(&name, &value); err != nil {
		return err
	}
	if !strings.EqualFold(value, "ON") {
		fmt.Fprintf(log, "maintain %s: the binary log is off: nothing to purge\n", store)
		return nil
	}
	before, err := binlogs(ctx, db)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf("PURGE BINARY LOGS BEFORE NOW() - INTERVAL %d DAY", days)); err != nil {
		return err
	}
	after, err := binlogs(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "maintain %s: purged %d binary logs older than %d days, %d kept\n", store, len(before)-len(after), days, len(after))
	return nil
}

func binlogs(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, string(vals[0]))
	}
	return out, rows.Err()
}
