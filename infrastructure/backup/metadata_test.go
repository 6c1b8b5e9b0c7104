package backup_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup"
	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

// copyBackup copies an archive and its sidecars into a fresh directory.
func copyBackup(t *testing.T, archive string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(archive))
	for _, suffix := range []string{"", backup.SumSuffix, backup.MetaSuffix} {
		b, err := os.ReadFile(archive + suffix)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst+suffix, b, 0o600))
	}
	return dst
}

func editMeta(t *testing.T, archive string, edit func(*backup.Metadata)) {
	t.Helper()
	m, err := backup.ReadMetadata(archive)
	require.NoError(t, err)
	edit(&m)
	b, err := json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(archive+backup.MetaSuffix, b, 0o600))
}

// The metadata steers a restore (which database is dropped, which store it
// belongs to), so it is covered by the checksum like the archive.
func TestRestoreRefusesMetadataTheChecksumDoesNotCover(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	seedAuth(t, m)
	m.Exec(t, "", "CREATE DATABASE other; CREATE TABLE other.keep (id INT PRIMARY KEY); INSERT INTO other.keep VALUES (1)")
	dir := t.TempDir()
	res := script(t, mysqlEnv(m, "AUTH"), "backup-mysql.sh", "--store", "auth-mysql", "--port", strconv.Itoa(m.Port),
		"--database", "auth", "--backup-dir", dir, "--textfile-dir", "-")
	require.Equal(t, 0, res.code, res.out)
	archive := archives(t, filepath.Join(dir, "auth-mysql"))[0]
	env := append(mysqlEnv(m, "AUTH"), mysqlEnv(m, "AUTHZ")...)

	tests := []struct {
		name  string
		store string
		edit  func(t *testing.T, archive string)
		code  int
		want  []string
	}{
		{"an intact backup restores and names the database it drops", "auth-mysql", func(*testing.T, string) {}, 0,
			[]string{"database `auth`, which now has 2 tables", "restored from"}},
		{"an edited database is refused", "auth-mysql", func(t *testing.T, a string) {
			editMeta(t, a, func(m *backup.Metadata) { m.Database = "other" })
		}, 1, []string{"metadata", "does not match"}},
		{"an edited store is refused", "authz-mysql", func(t *testing.T, a string) {
			editMeta(t, a, func(m *backup.Metadata) { m.Store = "authz-mysql" })
		}, 1, []string{"metadata", "does not match"}},
		{"a backup from before the metadata was covered is refused with the way out", "auth-mysql", func(t *testing.T, a string) {
			b, err := os.ReadFile(a + backup.SumSuffix)
			require.NoError(t, err)
			first, _, _ := strings.Cut(string(b), "\n")
			require.NoError(t, os.WriteFile(a+backup.SumSuffix, []byte(first+"\n"), 0o600))
		}, 1, []string{"metadata is not covered by its checksum", "sha256sum"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := copyBackup(t, archive)
			tc.edit(t, a)
			m.Exec(t, "auth", "DELETE FROM audit WHERE action = 'marker'; INSERT INTO audit (user_id, action) VALUES (99, 'marker')")
			res := script(t, env, "restore-mysql.sh", "--store", tc.store, "--port", strconv.Itoa(m.Port), "--yes", "--file", a)
			require.Equal(t, tc.code, res.code, res.out)
			for _, w := range tc.want {
				require.Contains(t, res.out, w)
			}
			var n int
			require.NoError(t, m.DB(t, "").QueryRow("SELECT COUNT(*) FROM other.keep").Scan(&n), "database other was dropped")
			require.Equal(t, 1, n)
			require.NoError(t, m.DB(t, "").QueryRow("SELECT COUNT(*) FROM auth.audit WHERE action = 'marker'").Scan(&n))
			if tc.code == 0 {
				require.Zero(t, n, "auth was not replaced by the backup")
			} else {
				require.Equal(t, 1, n, "a refused restore changed auth")
			}
		})
	}
}
