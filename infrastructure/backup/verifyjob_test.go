package backup_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/backup"
)

// A drill that fails before it restores anything still reports a failure
// for every store, and keeps the time of the last drill that succeeded.
func TestADrillThatFailsEarlyStillReportsFailure(t *testing.T) {
	t.Parallel()
	path, _ := failingDocker(t)
	stores := []string{"auth-mysql", "authz-mysql", "auth-redis", "authz-redis"}
	tests := []struct {
		name   string
		script string
		env    []string
		args   []string
		stores []string
		want   string
	}{
		{"the scratch server does not start", "verify-job.sh", []string{"PATH=" + path}, nil, stores, "fake docker"},
		{"no password for the store", "verify-restore.sh", nil, []string{"--store", "auth-mysql"}, []string{"auth-mysql"}, "AUTH_MYSQL_ROOT_PASSWORD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tf := t.TempDir()
			for _, s := range tc.stores {
				body := fmt.Sprintf("%s{store=%q} 1234\n", backup.MetricVerifyLastSuccess, s)
				require.NoError(t, os.WriteFile(filepath.Join(tf, backup.VerifyMetricsFile(s)), []byte(body), 0o644))
			}
			start := time.Now().Unix()
			res := script(t, tc.env, tc.script, append([]string{"--backup-dir", t.TempDir(), "--textfile-dir", tf}, tc.args...)...)
			require.NotEqual(t, 0, res.code, res.out)
			require.Contains(t, res.out, tc.want)
			for _, s := range tc.stores {
				got := metrics(t, filepath.Join(tf, backup.VerifyMetricsFile(s)))
				require.Equal(t, 0.0, got[backup.MetricVerifySuccess+"{"+s+"}"], s)
				require.GreaterOrEqual(t, got[backup.MetricVerifyTimestamp+"{"+s+"}"], float64(start), s)
				require.Equal(t, 1234.0, got[backup.MetricVerifyLastSuccess+"{"+s+"}"], s)
			}
		})
	}
}
