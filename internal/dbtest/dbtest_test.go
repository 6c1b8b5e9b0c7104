package dbtest_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

// cmdlineOf returns the command line of the process listening as pidFile
// says, or of every process whose cmdline mentions marker.
func cmdlinesMentioning(t *testing.T, marker string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		line := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(line, marker) {
			out = append(out, line)
		}
	}
	return out
}

func TestMariaDBServesKeepsDataAcrossRestartAndHidesPassword(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	ctx := context.Background()

	m.Exec(t, "", "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO app.t VALUES (1,'one'),(2,'two')")
	db := m.DB(t, "app")
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n))
	require.Equal(t, 2, n)

	// The server runs from the test's own directory and its command line
	// never carries the password.
	lines := cmdlinesMentioning(t, m.Dir)
	require.NotEmpty(t, lines, "mariadbd for %s not found in /proc", m.Dir)
	for _, l := range lines {
		require.NotContains(t, l, m.Password, "password on a command line")
	}

	// A wrong password is refused: the server really authenticates.
	wrong, err := sql.Open("mysql", strings.Replace(m.DSN(""), m.Password, "wrong", 1))
	require.NoError(t, err)
	defer func() { _ = wrong.Close() }()
	require.ErrorContains(t, wrong.PingContext(ctx), "Access denied")

	m.Stop()
	down, err := sql.Open("mysql", m.DSN("app"))
	require.NoError(t, err)
	defer func() { _ = down.Close() }()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.Error(t, down.PingContext(pctx), "server still answers after Stop")

	m.Start()
	db2 := m.DB(t, "app")
	require.NoError(t, db2.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n))
	require.Equal(t, 2, n, "rows lost across Stop/Start")
}

func TestMariaDBOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  []dbtest.MariaDBOption
		query string
		want  string
	}{
		{"binlog off by default", nil, "SELECT @@log_bin", "0"},
		{"binlog on", []dbtest.MariaDBOption{dbtest.WithBinlog()}, "SELECT @@log_bin", "1"},
		{"raw option", []dbtest.MariaDBOption{dbtest.WithMariaDBArgs("--max-connections=17")}, "SELECT @@max_connections", "17"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := dbtest.StartMariaDB(t, tc.opts...)
			var got string
			require.NoError(t, m.DB(t, "").QueryRow(tc.query).Scan(&got))
			require.Equal(t, tc.want, got)
		})
	}
}

func TestTwoMariaDBsAreIsolated(t *testing.T) {
	t.Parallel()
	a, b := dbtest.StartMariaDB(t), dbtest.StartMariaDB(t)
	require.NotEqual(t, a.Port, b.Port)
	require.NotEqual(t, a.Password, b.Password)
	a.Exec(t, "", "CREATE DATABASE only_in_a")
	var n int
	require.NoError(t, b.DB(t, "").QueryRow(
		"SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='only_in_a'").Scan(&n))
	require.Zero(t, n, "servers share a data directory")
}

func TestRedisRequiresPasswordAndRestarts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       []dbtest.RedisOption
		survives   bool
		appendonly string
	}{
		{"without AOF data is lost on restart", nil, false, "no"},
		{"with AOF data survives restart", []dbtest.RedisOption{dbtest.WithAOF()}, true, "yes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			r := dbtest.StartRedis(t, tc.opts...)
			c := r.Client(t)
			require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
			cfg, err := c.ConfigGet(ctx, "appendonly").Result()
			require.NoError(t, err)
			require.Equal(t, tc.appendonly, cfg["appendonly"])

			anon := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, DisableIdentity: true})
			defer func() { _ = anon.Close() }()
			require.ErrorContains(t, anon.Get(ctx, "k").Err(), "NOAUTH")

			for _, l := range cmdlinesMentioning(t, r.Dir) {
				require.NotContains(t, l, r.Password, "password on a command line")
			}

			r.Stop()
			require.Error(t, c.Ping(ctx).Err(), "server still answers after Stop")
			r.Start()
			got, err := c.Get(ctx, "k").Result()
			if tc.survives {
				require.NoError(t, err)
				require.Equal(t, "v", got)
			} else {
				require.ErrorIs(t, err, redis.Nil)
			}
		})
	}
}
