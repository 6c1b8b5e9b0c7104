package dbtest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// fatalRecorder captures Fatalf instead of failing the test, to read the
// message a missing binary produces; it stops the caller like Fatalf does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestMissingBinaryFailsNamingMakeDeps(t *testing.T) {
	tests := []struct {
		name  string
		start func(tb testing.TB)
		want  []string
	}{
		{"mariadb", func(tb testing.TB) { StartMariaDB(tb) }, []string{"mariadbd", "mariadb-server", "make deps"}},
		{"redis", func(tb testing.TB) { StartRedis(tb) }, []string{"redis-server", "make deps"}},
	}
	saved := sbinDirs
	t.Cleanup(func() { sbinDirs = saved })
	sbinDirs = nil
	t.Setenv("PATH", t.TempDir())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &fatalRecorder{TB: t}
			func() {
				defer func() {
					if p := recover(); p != nil && p != rec {
						panic(p)
					}
				}()
				tc.start(rec)
			}()
			for _, w := range tc.want {
				require.Contains(t, rec.msg, w)
			}
		})
	}
}
