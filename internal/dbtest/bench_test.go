package dbtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkFreshDataDir measures the two ways to get a fresh MariaDB data
// directory side by side: running mariadb-install-db, and copying the cached
// template (what StartMariaDB does).
func BenchmarkFreshDataDir(b *testing.B) {
	bin := lookBinary(b, "mariadbd", "mariadb-server")
	installDB := lookBinary(b, "mariadb-install-db", "mariadb-server")
	tmpl, err := mariaDBTemplate(bin, installDB)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("install-db", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dir := filepath.Join(b.TempDir(), "data")
			args := []string{"--no-defaults", "--datadir=" + dir, "--auth-root-authentication-method=normal",
				"--skip-test-db", "--innodb-log-file-size=8M", "--skip-log-bin"}
			if os.Geteuid() == 0 {
				args = append(args, "--user=root")
			}
			if out, err := exec.Command(installDB, args...).CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
		}
	})
	b.Run("copy-template", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := copyTree(tmpl, filepath.Join(b.TempDir(), "data")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
