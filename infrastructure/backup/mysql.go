package backup

import (
	"bufio"
	"compress/gzip"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// dumpTrailer is the last line mysqldump (and mariadb-dump) writes when, and
// only when, it finished.
const dumpTrailer = "-- Dump completed"

// openMySQL opens a pool to t (database may be empty). The password stays
// inside the driver's config.
func openMySQL(t Target, database string) (*sql.DB, error) {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = t.User, t.Password, "tcp", t.Addr(), database
	c.Timeout = 10 * time.Second
	c.AllowNativePasswords = true
	connector, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	return db, nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// serverInfo fills the version and binary log position of the server.
func serverInfo(ctx context.Context, db *sql.DB, m *Metadata) error {
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&m.ServerVersion); err != nil {
		return err
	}
	// MySQL 8.4 renamed SHOW MASTER STATUS; MariaDB and MySQL 8.0 keep it.
	for _, q := range []string{"SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"} {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			continue
		}
		cols, _ := rows.Columns()
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if rows.Next() && rows.Scan(ptrs...) == nil {
			for i, c := range cols {
				switch c {
				case "File":
					m.BinlogFile = vals[i].String
				case "Position":
					m.BinlogPosition, _ = strconv.ParseUint(vals[i].String, 10, 64)
				case "Executed_Gtid_Set":
					m.GTID = vals[i].String
				}
			}
		}
		_ = rows.Close()
		break
	}
	if m.GTID == "" {
		var g sql.NullString
		if db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&g) == nil {
			m.GTID = g.String
		}
	}
	return nil
}

// mysqlIdentity names the server instance behind a connection, whatever
// address reached it. MySQL 8.4 has @@server_uuid, generated once per data
// directory: that is the identity. MariaDB 10.11 has no server_uuid (and
// @@server_id is 1 on every default install), so there an instance is its
// data directory on its machine: @@hostname names the machine (the
// container, in container mode), @@datadir the directory, which two running
// servers cannot share (InnoDB locks it), and @@port the listener. Two
// different servers that agree on all three are refused as the same one,
// which errs on the safe side.
func mysqlIdentity(ctx context.Context, db *sql.DB) (string, error) {
	var uuid sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT @@server_uuid").Scan(&uuid); err == nil && uuid.String != "" {
		return "server_uuid " + uuid.String, nil
	}
	var host, datadir string
	var port int
	if err := db.QueryRowContext(ctx, "SELECT @@hostname, @@port, @@datadir").Scan(&host, &port, &datadir); err != nil {
		return "", err
	}
	return fmt.Sprintf("host %s, port %d, datadir %s", host, port, datadir), nil
}

// systemDatabases are the schemas every server has.
var systemDatabases = map[string]bool{"information_schema": true, "mysql": true, "performance_schema": true, "sys": true}

// userDatabases lists the databases on a server beyond its system schemas.
func userDatabases(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		if !systemDatabases[strings.ToLower(n)] {
			out = append(out, n)
		}
	}
	return out, rows.Err()
}

func databaseExists(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n)
	return n > 0, err
}

// DumpMySQL writes a consistent, compressed dump of one database of t into
// its series directory under root: --single-transaction (InnoDB snapshot, no
// global lock), routines, triggers and events, binary columns as hex. The
// archive appears only after mysqldump exited 0, the gzip stream tests clean
// and the dump ends with mysqldump's completion line.
func DumpMySQL(ctx context.Context, t Target, database, root string, now time.Time) (Backup, error) {
	fail := func(err error) (Backup, error) {
		return Backup{}, fmt.Errorf("dump %s/%s: %s", t.Store.Name, database, redact(err.Error(), t.Password))
	}
	db, err := openMySQL(t, "")
	if err != nil {
		return fail(err)
	}
	defer func() { _ = db.Close() }()
	meta := Metadata{Store: t.Store.Name, Engine: "mysql", Database: database, Mode: mode(t), StartedAt: now.UTC()}
	if ok, err := databaseExists(ctx, db, database); err != nil {
		return fail(err)
	} else if !ok {
		return fail(fmt.Errorf("database %q does not exist", database))
	}
	if err := serverInfo(ctx, db, &meta); err != nil {
		return fail(err)
	}
	cmd, cleanup, err := mysqlTool(ctx, t, "mysqldump",
		"--single-transaction", "--quick", "--routines", "--triggers", "--events",
		"--hex-blob", "--default-character-set=utf8mb4", "--databases", database)
	if err != nil {
		return fail(err)
	}
	defer cleanup()
	produce := func(w io.Writer) error {
		stderr := &tailBuffer{max: 4096}
		cmd.Stderr = stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start mysqldump: %w", err)
		}
		zw := gzip.NewWriter(w)
		_, copyErr := io.Copy(zw, out)
		closeErr := zw.Close()
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("mysqldump failed: %w: %s", err, stderr.String())
		}
		if copyErr != nil {
			return fmt.Errorf("compress: %w", copyErr)
		}
		return closeErr
	}
	name := archiveName(t.Store.Name, database, ".sql.gz", now)
	b, err := writeArtifact(SeriesDir(root, t.Store.Name, database), name, meta, produce, CheckDump)
	if err != nil {
		return fail(err)
	}
	return b, nil
}

func mode(t Target) string {
	if t.Container != "" {
		return "container"
	}
	return "host"
}

// CheckDump decompresses a dump archive completely (what gzip -t checks: the
// stream, its CRC and its length) and requires mysqldump's completion line
// at the end. Failures wrap ErrCorrupt.
func CheckDump(path string) error {
	_, err := inspectDump(path)
	return err
}

// useStatement is how mysqldump --databases switches to each database it
// dumps; the restore loads the dump into exactly these.
var useStatement = regexp.MustCompile("^USE `((?:[^`]|``)+)`;$")

// inspectDump is CheckDump that also returns the databases the dump loads
// into, in order, read from its USE statements.
func inspectDump(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("gzip test: %v: %w", err, ErrCorrupt)
	}
	last := ""
	var dbs []string
	seen := map[string]bool{}
	r := bufio.NewReaderSize(zr, 64*1024)
	for {
		line, err := r.ReadString('\n')
		if s := strings.TrimSpace(line); s != "" {
			last = s
			if m := useStatement.FindStringSubmatch(s); m != nil {
				name := strings.ReplaceAll(m[1], "``", "`")
				if !seen[name] {
					seen[name] = true
					dbs = append(dbs, name)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("gzip test: %v: %w", err, ErrCorrupt)
		}
	}
	if !strings.HasPrefix(last, dumpTrailer) {
		return nil, fmt.Errorf("dump does not end with %q (mysqldump stopped early): %w", dumpTrailer, ErrCorrupt)
	}
	return dbs, nil
}

// mysqlSummary describes a database for the restore confirmation.
func mysqlSummary(ctx context.Context, db *sql.DB, database string) (string, error) {
	ok, err := databaseExists(ctx, db, database)
	if err != nil {
		return "", err
	}
	if !ok {
		return fmt.Sprintf("database %s does not exist there yet and will be created", quoteIdent(database)), nil
	}
	var tables int
	var rows sql.NullInt64
	err = db.QueryRowContext(ctx, `SELECT COUNT(*), SUM(TABLE_ROWS) FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'`, database).Scan(&tables, &rows)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("database %s, which now has %d tables and about %d rows, will be DROPPED and replaced",
		quoteIdent(database), tables, rows.Int64), nil
}

// loadMySQL drops database on t and loads the dump archive into it.
func loadMySQL(ctx context.Context, t Target, db *sql.DB, archive, database string) error {
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(database)); err != nil {
		return fmt.Errorf("drop %s: %w", database, err)
	}
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%v: %w", err, ErrCorrupt)
	}
	cmd, cleanup, err := mysqlTool(ctx, t, "mysql", "--default-character-set=utf8mb4", "--batch")
	if err != nil {
		return err
	}
	defer cleanup()
	stderr := &tailBuffer{max: 4096}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = zr, io.Discard, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mysql client failed: %w: %s", err, redact(stderr.String(), t.Password))
	}
	return nil
}

// mysqlState is what the restore check compares: definitions and contents.
type mysqlState struct {
	tables    map[string]string // name -> SHOW CREATE TABLE, AUTO_INCREMENT counter removed
	checksums map[string]string // name -> CHECKSUM TABLE
	objects   map[string]bool   // "view x", "routine PROCEDURE p", "trigger t", "event e"
}

var autoIncrement = regexp.MustCompile(` AUTO_INCREMENT=\d+`)

func readMySQLState(ctx context.Context, db *sql.DB, database string) (*mysqlState, error) {
	st := &mysqlState{tables: map[string]string{}, checksums: map[string]string{}, objects: map[string]bool{}}
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`, database)
	if err != nil {
		return nil, err
	}
	var tables []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			_ = rows.Close()
			return nil, err
		}
		if typ == "VIEW" {
			st.objects["view "+name] = true
			continue
		}
		tables = append(tables, name)
	}
	_ = rows.Close()
	for _, tbl := range tables {
		full := quoteIdent(database) + "." + quoteIdent(tbl)
		var n, create string
		if err := db.QueryRowContext(ctx, "SHOW CREATE TABLE "+full).Scan(&n, &create); err != nil {
			return nil, fmt.Errorf("show create table %s: %w", tbl, err)
		}
		st.tables[tbl] = autoIncrement.ReplaceAllString(create, "")
		var sum sql.NullString
		if err := db.QueryRowContext(ctx, "CHECKSUM TABLE "+full).Scan(&n, &sum); err != nil {
			return nil, fmt.Errorf("checksum table %s: %w", tbl, err)
		}
		st.checksums[tbl] = sum.String
	}
	for _, q := range []struct{ kind, query string }{
		{"routine", `SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?`},
		{"trigger", `SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?`},
		{"event", `SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?`},
	} {
		rows, err := db.QueryContext(ctx, q.query, database)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				_ = rows.Close()
				return nil, err
			}
			st.objects[q.kind+" "+name] = true
		}
		_ = rows.Close()
	}
	return st, nil
}

// Differences between a source and its restored copy. Structural ones
// (missing or different tables and objects) always fail a check; data ones
// (table contents) fail it unless drift is allowed.
type Differences struct {
	Structural []string
	Data       []string
}

// Empty reports whether the two sides matched.
func (d Differences) Empty() bool { return len(d.Structural) == 0 && len(d.Data) == 0 }

func compareMySQL(src, dst *mysqlState) Differences {
	var d Differences
	for _, name := range sortedKeys(src.tables) {
		create, ok := dst.tables[name]
		switch {
		case !ok:
			d.Structural = append(d.Structural, fmt.Sprintf("table %s missing from the restore", name))
		case create != src.tables[name]:
			d.Structural = append(d.Structural, fmt.Sprintf("table %s has a different definition", name))
		case dst.checksums[name] != src.checksums[name]:
			d.Data = append(d.Data, fmt.Sprintf("table %s: CHECKSUM TABLE %s in the source, %s restored", name, src.checksums[name], dst.checksums[name]))
		}
	}
	for _, name := range sortedKeys(dst.tables) {
		if _, ok := src.tables[name]; !ok {
			d.Structural = append(d.Structural, fmt.Sprintf("table %s restored but not in the source", name))
		}
	}
	for _, o := range sortedKeys(src.objects) {
		if !dst.objects[o] {
			d.Structural = append(d.Structural, o+" missing from the restore")
		}
	}
	for _, o := range sortedKeys(dst.objects) {
		if !src.objects[o] {
			d.Structural = append(d.Structural, o+" restored but not in the source")
		}
	}
	return d
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
