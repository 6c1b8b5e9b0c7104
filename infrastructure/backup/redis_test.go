package backup_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup"
	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

func TestRedisSnapshotThenRestoreGivesIdenticalKeys(t *testing.T) {
	t.Parallel()
	r := dbtest.StartRedis(t, dbtest.WithAOF(), fastSync)
	other := dbtest.StartRedis(t, fastSync)
	seedRedis(t, r)
	before := redisFingerprint(t, r)
	require.Len(t, before, 10)
	dir, tf := t.TempDir(), t.TempDir()
	env := append(redisEnv(r, "AUTH"), redisEnv(other, "AUTHZ")...)
	port := strconv.Itoa(r.Port)

	res := script(t, env, "backup-redis.sh", "--store", "auth-redis", "--port", port, "--backup-dir", dir, "--textfile-dir", tf)
	require.Equal(t, 0, res.code, res.out)
	files := archives(t, dir)
	require.Len(t, files, 1)
	archive := files[0]
	require.True(t, strings.HasPrefix(archive, filepath.Join(dir, "auth-redis", "auth-redis_")), archive)
	out, err := exec.Command("redis-check-rdb", archive).CombinedOutput()
	require.NoError(t, err, "%s", out)
	meta, err := backup.ReadMetadata(archive)
	require.NoError(t, err)
	require.Equal(t, "7.0.15", meta.ServerVersion)
	require.Equal(t, int64(10), meta.Keys)
	got := metrics(t, filepath.Join(tf, backup.BackupMetricsFile("auth-redis")))
	require.Equal(t, 1.0, got["krgeobuk_backup_last_run_success{auth-redis}"])

	ctx := context.Background()
	c := r.Client(t)
	require.NoError(t, c.Del(ctx, "queue").Err())
	require.NoError(t, c.Set(ctx, "stray", "x", 0).Err())
	require.NoError(t, c.Expire(ctx, "config:flag", time.Minute).Err())
	require.NoError(t, c.HSet(ctx, "user:1", "role", "nobody").Err())
	c5 := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password, DB: 5, DisableIdentity: true})
	require.NoError(t, c5.FlushDB(ctx).Err())
	_ = c5.Close()
	changed := redisFingerprint(t, r)
	require.NotEqual(t, before, changed)

	// A snapshot of auth-redis never goes into authz-redis.
	res = script(t, env, "restore-redis.sh", "--store", "authz-redis", "--port", strconv.Itoa(other.Port), "--file", archive, "--yes")
	require.Equal(t, 1, res.code, res.out)
	require.Contains(t, res.out, "is a backup of auth-redis (redis), not of authz-redis: refusing")

	res = script(t, env, "restore-redis.sh", "--store", "auth-redis", "--port", port, "--file", archive)
	require.Equal(t, 1, res.code, res.out)
	require.Contains(t, res.out, "every key (8 now, in 1 databases) will be DELETED (FLUSHALL) and replaced with the 10 keys of backup "+filepath.Base(archive))
	require.Equal(t, changed, redisFingerprint(t, r), "an unconfirmed restore changed the data")

	damaged := []struct {
		name   string
		mutate func([]byte) []byte
		fixSum bool
		want   string
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-20] }, false, "does not match the sidecar"},
		{"checksum byte flipped, sidecar recomputed", func(b []byte) []byte {
			c := append([]byte{}, b...)
			c[len(c)-3] ^= 0x10
			return c
		}, true, "redis-check-rdb: [offset"},
		{"trailing bytes, sidecar recomputed", func(b []byte) []byte {
			return append(append([]byte{}, b...), []byte("0123456789012345678901234567890123456789")...)
		}, true, "does not end with the EOF opcode"},
		{"value bytes flipped, sidecar recomputed", func(b []byte) []byte {
			c := append([]byte{}, b...)
			c[len(c)/2] ^= 0x40
			return c
		}, true, "archive is corrupted or truncated"},
	}
	for _, d := range damaged {
		bad := corrupt(t, archive, d.mutate, d.fixSum)
		res = script(t, env, "restore-redis.sh", "--store", "auth-redis", "--port", port, "--file", bad, "--yes")
		require.Equal(t, 1, res.code, "%s: %s", d.name, res.out)
		require.Contains(t, res.out, d.want, d.name)
		require.Equal(t, changed, redisFingerprint(t, r), "%s: the store changed", d.name)
	}

	res = script(t, env, "restore-redis.sh", "--store", "auth-redis", "--port", port, "--file", archive, "--yes")
	require.Equal(t, 0, res.code, res.out)
	require.Contains(t, res.out, "10 keys restored")
	require.Equal(t, before, redisFingerprint(t, r), "restored keys, types, values or expiry times differ")
}
