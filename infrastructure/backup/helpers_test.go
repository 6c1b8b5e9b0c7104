package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup"
	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

// toolBin is the krgeobuk-backup binary built once for the package.
var toolBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "krgeobuk-backup-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	toolBin = filepath.Join(dir, "krgeobuk-backup")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	out, err := exec.CommandContext(ctx, "go", "build", "-o", toolBin, "./cmd/krgeobuk-backup").CombinedOutput()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build krgeobuk-backup: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// result is one script run.
type result struct {
	code int
	out  string
}

// script runs infrastructure/backup/<name> with the tool binary, no .env,
// the given environment and arguments, bounded by a timeout. stdin is
// empty (not a terminal).
func script(t testing.TB, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return scriptCtx(ctx, t, env, name, args...)
}

func scriptCtx(ctx context.Context, t testing.TB, env []string, name string, args ...string) result {
	cmd := exec.CommandContext(ctx, "./"+name, args...)
	cmd.Env = append(os.Environ(), append([]string{
		"KRGEOBUK_BACKUP_BIN=" + toolBin,
		"KRGEOBUK_ENV_FILE=/nonexistent",
	}, env...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = strings.NewReader("")
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return result{0, out.String()}
	case errors.As(err, &ee):
		return result{ee.ExitCode(), out.String()}
	default:
		t.Errorf("run %s: %v\n%s", name, err, out.String())
		return result{-1, out.String()}
	}
}

// --- MySQL fixtures -------------------------------------------------------

const authSchema = `
CREATE DATABASE auth;
CREATE TABLE auth.users (
  id INT AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(190) NOT NULL UNIQUE,
  name VARCHAR(100) CHARACTER SET utf8mb4,
  avatar BLOB,
  created_at DATETIME(6) NOT NULL,
  deleted_at DATETIME NULL
) ENGINE=InnoDB;
CREATE TABLE auth.audit (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  user_id INT NOT NULL,
  action VARCHAR(50) NOT NULL
) ENGINE=InnoDB;
CREATE TRIGGER auth.users_created AFTER INSERT ON auth.users FOR EACH ROW
  INSERT INTO auth.audit (user_id, action) VALUES (NEW.id, 'created');
INSERT INTO auth.users (email, name, avatar, created_at, deleted_at) VALUES
  ('kim@example.com', '김철수', 0x00FF10205C27, '2026-01-02 03:04:05.123456', NULL),
  ('obrien@example.com', 'O''Brien \\ "quoted"', NULL, '2026-02-03 04:05:06', '2026-03-01 00:00:00'),
  ('emoji@example.com', '🙂 tab	newline\n', '', '2026-04-05 06:07:08', NULL);
CREATE PROCEDURE auth.count_users(OUT n INT) SELECT COUNT(*) INTO n FROM auth.users;
CREATE EVENT auth.purge_audit ON SCHEDULE EVERY 1 DAY DO DELETE FROM auth.audit WHERE id < 0;
CREATE VIEW auth.active_users AS SELECT id, email FROM auth.users WHERE deleted_at IS NULL;
`

// seedAuth creates the auth database with every kind of object a dump must
// carry.
func seedAuth(t *testing.T, m *dbtest.MariaDB) {
	t.Helper()
	m.Exec(t, "", authSchema)
}

// mysqlFingerprint is what must survive a round trip: every table's
// definition and CHECKSUM TABLE, and the routines, triggers, events, views.
func mysqlFingerprint(t *testing.T, m *dbtest.MariaDB, database string) map[string]string {
	t.Helper()
	db := m.DB(t, "")
	ctx := context.Background()
	out := map[string]string{}
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`, database)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var n, typ string
		require.NoError(t, rows.Scan(&n, &typ))
		if typ == "VIEW" {
			out["view "+n] = "present"
		} else {
			tables = append(tables, n)
		}
	}
	require.NoError(t, rows.Close())
	for _, tbl := range tables {
		var name string
		var sum sql.NullString
		require.NoError(t, db.QueryRowContext(ctx, fmt.Sprintf("CHECKSUM TABLE `%s`.`%s`", database, tbl)).Scan(&name, &sum))
		out["checksum "+tbl] = sum.String
		var create string
		require.NoError(t, db.QueryRowContext(ctx, fmt.Sprintf("SHOW CREATE TABLE `%s`.`%s`", database, tbl)).Scan(&name, &create))
		var cnt int
		require.NoError(t, db.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM `%s`.`%s`", database, tbl)).Scan(&cnt))
		out["rows "+tbl] = strconv.Itoa(cnt)
	}
	for _, q := range []string{
		`SELECT CONCAT('routine ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?`,
		`SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?`,
		`SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?`,
	} {
		rows, err := db.QueryContext(ctx, q, database)
		require.NoError(t, err)
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			out[n] = "present"
		}
		require.NoError(t, rows.Close())
	}
	return out
}

func mysqlEnv(m *dbtest.MariaDB, prefix string) []string {
	return []string{prefix + "_MYSQL_ROOT_PASSWORD=" + m.Password}
}

// --- Redis fixtures -------------------------------------------------------

// seedRedis writes every data type, with and without expiry, into two
// databases.
func seedRedis(t *testing.T, r *dbtest.Redis) {
	t.Helper()
	ctx := context.Background()
	c0 := r.Client(t)
	c5 := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password, DB: 5, DisableIdentity: true})
	defer func() { _ = c5.Close() }()
	p := c0.Pipeline()
	p.Set(ctx, "session:1", "token-one", 2*time.Hour)
	p.Set(ctx, "config:flag", "on", 0)
	p.HSet(ctx, "user:1", map[string]any{"name": "김철수", "role": "admin"})
	p.PExpire(ctx, "user:1", 90*time.Minute)
	p.RPush(ctx, "queue", "a", "b", "c")
	p.SAdd(ctx, "perms", "read", "write")
	p.ZAdd(ctx, "rank", redis.Z{Score: 1.5, Member: "x"}, redis.Z{Score: -2, Member: "y"})
	p.XAdd(ctx, &redis.XAddArgs{Stream: "events", ID: "1-1", Values: map[string]any{"k": "v"}})
	p.Set(ctx, "binary", string([]byte{0, 1, 2, 255}), 0)
	_, err := p.Exec(ctx)
	require.NoError(t, err)
	require.NoError(t, c5.Set(ctx, "db5:key", "five", 3*time.Hour).Err())
	require.NoError(t, c5.HSet(ctx, "db5:hash", "f", "v").Err())
}

// redisFingerprint is every key of every database with its type, absolute
// expiry and serialized value.
func redisFingerprint(t *testing.T, r *dbtest.Redis) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for db := 0; db < 16; db++ {
		c := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password, DB: db, DisableIdentity: true})
		keys, err := c.Keys(ctx, "*").Result()
		require.NoError(t, err)
		for _, k := range keys {
			typ, err := c.Type(ctx, k).Result()
			require.NoError(t, err)
			exp, err := c.PExpireTime(ctx, k).Result()
			require.NoError(t, err)
			out[fmt.Sprintf("db%d %s", db, k)] = fmt.Sprintf("%s expire=%d %q", typ, exp.Milliseconds(), readValue(t, c, typ, k))
		}
		_ = c.Close()
	}
	return out
}

// fastSync skips the 5 s a Redis primary waits for more replicas before a
// diskless transfer; redis-cli --rdb is such a transfer.
var fastSync = dbtest.WithRedisConfig("repl-diskless-sync-delay 0")

// readValue reads a key's value in a canonical form. DUMP payloads are not
// canonical: a hashtable-encoded set serializes in its per-process hash
// order.
func readValue(t *testing.T, c *redis.Client, typ, k string) string {
	t.Helper()
	ctx := context.Background()
	var v any
	var err error
	switch typ {
	case "string":
		v, err = c.Get(ctx, k).Result()
	case "list":
		v, err = c.LRange(ctx, k, 0, -1).Result()
	case "set":
		var m []string
		m, err = c.SMembers(ctx, k).Result()
		sort.Strings(m)
		v = m
	case "zset":
		v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
	case "hash":
		v, err = c.HGetAll(ctx, k).Result()
	case "stream":
		v, err = c.XRange(ctx, k, "-", "+").Result()
	default:
		t.Fatalf("key %s has type %s, which the test does not read", k, typ)
	}
	require.NoError(t, err)
	return fmt.Sprint(v)
}

func redisEnv(r *dbtest.Redis, prefix string) []string {
	return []string{prefix + "_REDIS_PASSWORD=" + r.Password}
}

// --- files ----------------------------------------------------------------

// tree lists every file under dir (relative paths), hidden ones included.
func tree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if !os.IsNotExist(err) {
		require.NoError(t, err)
	}
	sort.Strings(out)
	return out
}

func archives(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, f := range tree(t, dir) {
		if strings.HasSuffix(f, ".sql.gz") || strings.HasSuffix(f, ".rdb") {
			out = append(out, filepath.Join(dir, f))
		}
	}
	return out
}

// age rewrites a backup's metadata so it looks finished `by` ago, and its
// checksum line with it, as if it had been written then.
func age(t *testing.T, archive string, by time.Duration) {
	t.Helper()
	m, err := backup.ReadMetadata(archive)
	require.NoError(t, err)
	m.FinishedAt = m.FinishedAt.Add(-by)
	m.StartedAt = m.StartedAt.Add(-by)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(archive+backup.MetaSuffix, b, 0o600))
	side, err := os.ReadFile(archive + backup.SumSuffix)
	require.NoError(t, err)
	first, _, _ := strings.Cut(string(side), "\n")
	sum := sha256.Sum256(b)
	name := filepath.Base(archive) + backup.MetaSuffix
	require.NoError(t, os.WriteFile(archive+backup.SumSuffix, []byte(first+"\n"+hex.EncodeToString(sum[:])+"  "+name+"\n"), 0o600))
}

// metrics parses a textfile with Prometheus' own text parser and returns
// name{store} -> value.
func metrics(t *testing.T, path string) map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	require.NoError(t, err, "metrics file does not parse")
	out := map[string]float64{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			store := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "store" {
					store = l.GetValue()
				}
			}
			out[fmt.Sprintf("%s{%s}", name, store)] = m.GetGauge().GetValue()
		}
	}
	return out
}
