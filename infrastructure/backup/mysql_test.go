package backup_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup"
	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

func TestMySQLBackupThenRestoreGivesIdenticalData(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t, dbtest.WithBinlog())
	seedAuth(t, m)
	before := mysqlFingerprint(t, m, "auth")
	dir, tf := t.TempDir(), t.TempDir()
	env := mysqlEnv(m, "AUTH")
	port := strconv.Itoa(m.Port)

	res := script(t, env, "backup-mysql.sh", "--store", "auth-mysql", "--port", port, "--database", "auth",
		"--backup-dir", dir, "--textfile-dir", tf)
	require.Equal(t, 0, res.code, res.out)
	files := archives(t, dir)
	require.Len(t, files, 1)
	archive := files[0]
	require.True(t, strings.HasPrefix(archive, filepath.Join(dir, "auth-mysql", "auth", "auth-mysql_auth_")), archive)

	// The sidecar is what sha256sum -c reads.
	check := exec.Command("sha256sum", "-c", filepath.Base(archive)+backup.SumSuffix)
	check.Dir = filepath.Dir(archive)
	out, err := check.CombinedOutput()
	require.NoError(t, err, "sha256sum -c: %s", out)

	meta, err := backup.ReadMetadata(archive)
	require.NoError(t, err)
	st, err := os.Stat(archive)
	require.NoError(t, err)
	require.Equal(t, "auth-mysql", meta.Store)
	require.Equal(t, "auth", meta.Database)
	require.Equal(t, st.Size(), meta.SizeBytes)
	require.Contains(t, meta.ServerVersion, "MariaDB")
	require.NotEmpty(t, meta.BinlogFile, "binlog position not recorded")
	require.NotZero(t, meta.BinlogPosition)
	require.WithinDuration(t, time.Now(), meta.FinishedAt, time.Minute)

	got := metrics(t, filepath.Join(tf, backup.BackupMetricsFile("auth-mysql")))
	require.Equal(t, 1.0, got["krgeobuk_backup_last_run_success{auth-mysql}"])
	require.Equal(t, float64(meta.FinishedAt.Unix()), got["krgeobuk_backup_last_success_timestamp_seconds{auth-mysql}"])

	// Change everything a bad deploy could change.
	m.Exec(t, "auth", `UPDATE users SET name = 'changed' WHERE id = 1;
		DELETE FROM users WHERE id = 2;
		INSERT INTO users (email, created_at) VALUES ('new@example.com', NOW());
		DROP VIEW active_users; DROP PROCEDURE count_users; DROP EVENT purge_audit;
		CREATE TABLE stray (id INT PRIMARY KEY)`)
	changed := mysqlFingerprint(t, m, "auth")
	require.NotEqual(t, before, changed)

	// Without --yes and without a terminal the restore only describes itself.
	res = script(t, env, "restore-mysql.sh", "--store", "auth-mysql", "--port", port, "--file", archive)
	require.Equal(t, 1, res.code, res.out)
	require.Contains(t, res.out, "On auth-mysql (127.0.0.1:"+port+"), database `auth`, which now has 3 tables")
	require.Contains(t, res.out, "will be DROPPED and replaced with backup "+filepath.Base(archive))
	require.Contains(t, res.out, "not confirmed")
	require.Equal(t, changed, mysqlFingerprint(t, m, "auth"), "an unconfirmed restore changed the database")

	res = script(t, env, "restore-mysql.sh", "--store", "auth-mysql", "--port", port, "--file", archive, "--yes")
	require.Equal(t, 0, res.code, res.out)
	require.Equal(t, before, mysqlFingerprint(t, m, "auth"), "restored database differs from the backup's source")
}

// corrupt returns a copy of archive (with sidecars) in a fresh directory,
// changed by mutate; fixSum recomputes the checksum so that only the content
// checks can catch the damage.
func corrupt(t *testing.T, archive string, mutate func([]byte) []byte, fixSum bool) string {
	t.Helper()
	dir := t.TempDir()
	dst := filepath.Join(dir, filepath.Base(archive))
	for _, suffix := range []string{"", backup.SumSuffix, backup.MetaSuffix} {
		b, err := os.ReadFile(archive + suffix)
		require.NoError(t, err)
		if suffix == "" {
			b = mutate(b)
		}
		require.NoError(t, os.WriteFile(dst+suffix, b, 0o600))
	}
	if fixSum {
		b, err := os.ReadFile(dst)
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		// Only the archive's line is recomputed; the metadata's stays.
		side, err := os.ReadFile(dst + backup.SumSuffix)
		require.NoError(t, err)
		_, rest, _ := strings.Cut(string(side), "\n")
		require.NoError(t, os.WriteFile(dst+backup.SumSuffix, []byte(hex.EncodeToString(sum[:])+"  "+filepath.Base(dst)+"\n"+rest), 0o600))
	}
	return dst
}

func regzip(t *testing.T, b []byte, edit func(string) string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, err = zw.Write([]byte(edit(string(plain))))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return out.Bytes()
}

func TestMySQLRestoreRefusesDamagedArchivesAndWrongTargets(t *testing.T) {
	t.Parallel()
	auth, authz := dbtest.StartMariaDB(t), dbtest.StartMariaDB(t)
	seedAuth(t, auth)
	authz.Exec(t, "", "CREATE DATABASE authz; CREATE TABLE authz.roles (id INT PRIMARY KEY); INSERT INTO authz.roles VALUES (1)")
	dir := t.TempDir()
	env := append(mysqlEnv(auth, "AUTH"), mysqlEnv(authz, "AUTHZ")...)
	res := script(t, env, "backup-mysql.sh", "--store", "auth-mysql", "--port", strconv.Itoa(auth.Port),
		"--database", "auth", "--backup-dir", dir, "--textfile-dir", "-")
	require.Equal(t, 0, res.code, res.out)
	good := archives(t, dir)[0]
	auth.Exec(t, "auth", "DELETE FROM users")
	authState, authzState := mysqlFingerprint(t, auth, "auth"), mysqlFingerprint(t, authz, "authz")

	half := func(b []byte) []byte { return b[:len(b)/2] }
	flip := func(b []byte) []byte {
		c := append([]byte{}, b...)
		c[len(c)/2] ^= 0x01
		return c
	}
	tests := []struct {
		name    string
		archive string
		store   string
		port    int
		want    string
	}{
		{"truncated", corrupt(t, good, half, false), "auth-mysql", auth.Port, "does not match the sidecar"},
		{"one bit flipped", corrupt(t, good, flip, false), "auth-mysql", auth.Port, "does not match the sidecar"},
		{"truncated with a matching checksum", corrupt(t, good, half, true), "auth-mysql", auth.Port, "gzip test"},
		{"bit flipped with a matching checksum", corrupt(t, good, flip, true), "auth-mysql", auth.Port, "archive is corrupted or truncated"},
		{"dump cut short but well compressed", corrupt(t, good, func(b []byte) []byte {
			return regzip(t, b, func(s string) string { return s[:strings.LastIndex(s, "-- Dump completed")] })
		}, true), "auth-mysql", auth.Port, "does not end with \"-- Dump completed\""},
		{"no checksum sidecar", func() string {
			p := corrupt(t, good, func(b []byte) []byte { return b }, false)
			require.NoError(t, os.Remove(p+backup.SumSuffix))
			return p
		}(), "auth-mysql", auth.Port, "no checksum sidecar"},
		{"backup of another store", good, "authz-mysql", authz.Port, "is a backup of auth-mysql (mysql), not of authz-mysql: refusing"},
		{"unknown store", good, "billing-mysql", authz.Port, `unknown mysql store "billing-mysql" (known: auth-mysql, authz-mysql)`},
		{"redis store through the mysql script", good, "auth-redis", authz.Port, `unknown mysql store "auth-redis"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := script(t, append(env, "AUTH_REDIS_PASSWORD=x"), "restore-mysql.sh",
				"--store", tc.store, "--port", strconv.Itoa(tc.port), "--file", tc.archive, "--yes")
			require.Equal(t, 1, res.code, res.out)
			require.Contains(t, res.out, tc.want)
			require.NotContains(t, res.out, "DROPPED", "described a replacement before refusing")
			require.Equal(t, authState, mysqlFingerprint(t, auth, "auth"), "auth-mysql changed")
			require.Equal(t, authzState, mysqlFingerprint(t, authz, "authz"), "authz-mysql changed")
		})
	}
}

func TestFailedDumpLeavesNoBackupAndDeletesNothing(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	seedAuth(t, m)
	dir, tf := t.TempDir(), t.TempDir()
	env := mysqlEnv(m, "AUTH")
	args := []string{"--store", "auth-mysql", "--port", strconv.Itoa(m.Port), "--database", "auth", "--backup-dir", dir, "--textfile-dir", tf}
	for i := 0; i < 2; i++ {
		res := script(t, env, "backup-mysql.sh", args...)
		require.Equal(t, 0, res.code, res.out)
	}
	old := archives(t, dir)
	require.Len(t, old, 2)
	for _, a := range old {
		age(t, a, 100*24*time.Hour)
	}
	newest, err := backup.NewestVerified(filepath.Dir(old[0]))
	require.NoError(t, err)
	before := tree(t, dir)

	// mysqldump writes the tables, then fails on a view whose table is gone:
	// a failure in the middle of the stream.
	m.Exec(t, "auth", "CREATE TABLE doomed (id INT); CREATE VIEW broken AS SELECT id FROM doomed; DROP TABLE doomed")
	res := script(t, env, "backup-mysql.sh", append(args, "--keep", "1", "--max-age", "24h")...)
	require.Equal(t, 1, res.code, res.out)
	require.Contains(t, res.out, "mysqldump failed")
	require.Contains(t, res.out, "retention auth-mysql: skipped because the run failed; nothing deleted")
	require.Equal(t, before, tree(t, dir), "a failed run left or removed files")

	got := metrics(t, filepath.Join(tf, backup.BackupMetricsFile("auth-mysql")))
	require.Equal(t, 0.0, got["krgeobuk_backup_last_run_success{auth-mysql}"])
	require.Equal(t, float64(newest.Meta.FinishedAt.Unix()), got["krgeobuk_backup_last_success_timestamp_seconds{auth-mysql}"],
		"the last success must stay the newest good backup")
}

func TestRetentionKeepsTheNewestVerifiedWhateverTheirAge(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	seedAuth(t, m)
	dir := t.TempDir()
	env := mysqlEnv(m, "AUTH")
	args := []string{"--store", "auth-mysql", "--port", strconv.Itoa(m.Port), "--database", "auth", "--backup-dir", dir, "--textfile-dir", "-"}
	for i := 0; i < 3; i++ {
		res := script(t, env, "backup-mysql.sh", args...)
		require.Equal(t, 0, res.code, res.out)
	}
	list := archives(t, dir) // names sort by time: oldest first
	require.Len(t, list, 3)
	a1, a2, a3 := list[0], list[1], list[2]
	for i, a := range list {
		age(t, a, time.Duration(300-i)*24*time.Hour)
	}
	// The newest old backup is damaged: it must not count as one of the kept.
	b, err := os.ReadFile(a3)
	require.NoError(t, err)
	b[len(b)/2] ^= 0xff
	require.NoError(t, os.WriteFile(a3, b, 0o600))

	res := script(t, env, "backup-mysql.sh", append(args, "--keep", "2", "--max-age", "720h")...)
	require.Equal(t, 0, res.code, res.out)
	now := archives(t, dir)
	require.Len(t, now, 2, res.out)
	require.Equal(t, a2, now[0], "the newest verified old backup was not kept")
	require.NotContains(t, now, a1)
	require.NotContains(t, now, a3)
	a4 := now[1]
	for _, gone := range []string{a1, a3} {
		for _, s := range []string{backup.SumSuffix, backup.MetaSuffix} {
			_, err := os.Stat(gone + s)
			require.True(t, os.IsNotExist(err), "sidecar %s left behind", gone+s)
		}
	}

	// Young backups survive even beyond the count; old ones beyond it go.
	res = script(t, env, "backup-mysql.sh", append(args, "--keep", "1", "--max-age", "720h")...)
	require.Equal(t, 0, res.code, res.out)
	now = archives(t, dir)
	require.Len(t, now, 2, res.out)
	require.Equal(t, a4, now[0])
	require.NotContains(t, now, a2)

	// Settings that could delete every backup are refused up front.
	res = script(t, env, "backup-mysql.sh", append(args, "--keep", "0")...)
	require.Equal(t, 2, res.code, res.out)
	require.Contains(t, res.out, "keep must be at least 1")
	require.Len(t, archives(t, dir), 2)
}

// atTerminal runs a script under script(1), which gives it a pseudo-terminal
// as stdin, and types input into it.
func atTerminal(t *testing.T, env []string, input, name string, args ...string) result {
	t.Helper()
	quoted := []string{"./" + name}
	for _, a := range args {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	cmd := exec.Command("script", "-qec", strings.Join(quoted, " "), "/dev/null")
	cmd.Env = append(os.Environ(), append([]string{"KRGEOBUK_BACKUP_BIN=" + toolBin, "KRGEOBUK_ENV_FILE=/nonexistent"}, env...)...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code, string(out)}
}

func TestInteractiveRestoreNeedsTheStoreNameTyped(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	seedAuth(t, m)
	before := mysqlFingerprint(t, m, "auth")
	dir := t.TempDir()
	env := mysqlEnv(m, "AUTH")
	port := strconv.Itoa(m.Port)
	res := script(t, env, "backup-mysql.sh", "--store", "auth-mysql", "--port", port, "--database", "auth", "--backup-dir", dir, "--textfile-dir", "-")
	require.Equal(t, 0, res.code, res.out)
	archive := archives(t, dir)[0]
	m.Exec(t, "auth", "DELETE FROM users")
	changed := mysqlFingerprint(t, m, "auth")

	tests := []struct {
		typed string
		code  int
		want  string
		state map[string]string
	}{
		{"authz-mysql\n", 1, "not confirmed: nothing was changed", changed},
		{"\n", 1, "not confirmed: nothing was changed", changed},
		{"auth-mysql\n", 0, "database auth restored", before},
	}
	for _, tc := range tests {
		res := atTerminal(t, env, tc.typed, "restore-mysql.sh", "--store", "auth-mysql", "--port", port, "--file", archive)
		require.Equal(t, tc.code, res.code, "typed %q: %s", tc.typed, res.out)
		require.Contains(t, res.out, "Type the store name (auth-mysql) to go ahead:")
		require.Contains(t, res.out, tc.want)
		require.Equal(t, tc.state, mysqlFingerprint(t, m, "auth"), "typed %q", tc.typed)
	}
}
