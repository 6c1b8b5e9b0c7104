package backup_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup"
	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

func TestVerifyRestoresTheNewestBackupAndReportsIt(t *testing.T) {
	t.Parallel()
	src, scratch := dbtest.StartMariaDB(t), dbtest.StartMariaDB(t)
	seedAuth(t, src)
	dir, tf := t.TempDir(), t.TempDir()
	env := append(mysqlEnv(src, "AUTH"), "SCRATCH_MYSQL_ROOT_PASSWORD="+scratch.Password)
	common := []string{"--store", "auth-mysql", "--port", strconv.Itoa(src.Port), "--database", "auth", "--backup-dir", dir, "--textfile-dir", tf}
	verify := append(append([]string{}, common...), "--scratch-port", strconv.Itoa(scratch.Port))
	res := script(t, env, "backup-mysql.sh", common...)
	require.Equal(t, 0, res.code, res.out)
	metricsFile := filepath.Join(tf, backup.VerifyMetricsFile("auth-mysql"))

	tests := []struct {
		name    string
		change  string // applied to the source before the check
		args    []string
		env     []string
		code    int
		want    string
		success float64
	}{
		{"unchanged source matches", "", nil, nil, 0, "restores and matches the source", 1},
		{"changed row fails a strict check", "UPDATE users SET name = 'drift' WHERE id = 1", nil, nil, 1, "table users: CHECKSUM TABLE", 0},
		{"changed row passes when drift is allowed", "", []string{"--allow-drift"}, nil, 0, "1 data differences allowed as drift", 1},
		{"missing table fails even with drift allowed", "DROP TABLE audit", []string{"--allow-drift"}, nil, 1, "table audit restored but not in the source", 0},
		{"scratch that is the source is refused", "", []string{"--scratch-port", strconv.Itoa(src.Port)}, nil, 1, "is the source itself", 0},
		{"no scratch password is a failed check", "", nil, []string{"SCRATCH_MYSQL_ROOT_PASSWORD="}, 1, "set SCRATCH_MYSQL_ROOT_PASSWORD", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.change != "" {
				src.Exec(t, "auth", tc.change)
			}
			start := time.Now().Unix()
			res := script(t, append(append([]string{}, env...), tc.env...), "verify-restore.sh", append(append([]string{}, verify...), tc.args...)...)
			require.Equal(t, tc.code, res.code, res.out)
			require.Contains(t, res.out, tc.want)
			got := metrics(t, metricsFile)
			require.Equal(t, tc.success, got["krgeobuk_backup_restore_verify_success{auth-mysql}"])
			require.GreaterOrEqual(t, got["krgeobuk_backup_restore_verify_timestamp_seconds{auth-mysql}"], float64(start))
			// The scratch copy is dropped after the check.
			var n int
			require.NoError(t, scratch.DB(t, "").QueryRow(
				"SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'auth'").Scan(&n))
			require.Zero(t, n, "scratch database left behind")
		})
	}
}

func TestVerifyChecksRedisSnapshotsKeyByKey(t *testing.T) {
	t.Parallel()
	r := dbtest.StartRedis(t, fastSync)
	seedRedis(t, r)
	dir, tf := t.TempDir(), t.TempDir()
	env := redisEnv(r, "AUTHZ")
	common := []string{"--store", "authz-redis", "--port", strconv.Itoa(r.Port), "--backup-dir", dir, "--textfile-dir", tf}
	res := script(t, env, "backup-redis.sh", common...)
	require.Equal(t, 0, res.code, res.out)

	res = script(t, env, "verify-restore.sh", common...)
	require.Equal(t, 0, res.code, res.out)
	metricsFile := filepath.Join(tf, backup.VerifyMetricsFile("authz-redis"))
	require.Equal(t, 1.0, metrics(t, metricsFile)["krgeobuk_backup_restore_verify_success{authz-redis}"])

	require.NoError(t, r.Client(t).Set(context.Background(), "perms", "replaced", 0).Err())
	res = script(t, env, "verify-restore.sh", common...)
	require.Equal(t, 1, res.code, res.out)
	require.Contains(t, res.out, `db0 key "perms" differs`)
	require.Equal(t, 0.0, metrics(t, metricsFile)["krgeobuk_backup_restore_verify_success{authz-redis}"])
}
