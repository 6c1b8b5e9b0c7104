package backup_test

import (
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

// The drill decides "is this the source?" by asking the servers, not by
// comparing the strings it was given, and it never drops anything on a
// server that holds data it did not put there unless told.
func TestVerifyNeverDropsADatabaseItDidNotCreate(t *testing.T) {
	t.Parallel()
	src, scratch := dbtest.StartMariaDB(t), dbtest.StartMariaDB(t)
	seedAuth(t, src)
	scratch.Exec(t, "", "CREATE DATABASE billing; CREATE TABLE billing.invoices (id INT PRIMARY KEY); INSERT INTO billing.invoices VALUES (7)")
	dir := t.TempDir()
	env := append(mysqlEnv(src, "AUTH"), "SCRATCH_MYSQL_ROOT_PASSWORD="+scratch.Password)
	common := []string{"--store", "auth-mysql", "--port", strconv.Itoa(src.Port), "--database", "auth", "--backup-dir", dir, "--textfile-dir", "-"}
	res := script(t, env, "backup-mysql.sh", common...)
	require.Equal(t, 0, res.code, res.out)
	// Written after the backup: a drill that drops and reloads the source
	// loses it.
	src.Exec(t, "auth", "INSERT INTO audit (user_id, action) VALUES (99, 'after-backup')")
	sourceEnv := append(mysqlEnv(src, "AUTH"), "SCRATCH_MYSQL_ROOT_PASSWORD="+src.Password)

	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"localhost with the source's port is the source", sourceEnv,
			[]string{"--scratch-host", "localhost", "--scratch-port", strconv.Itoa(src.Port)}, 1, "is the source itself"},
		{"the source's own address is the source", sourceEnv,
			[]string{"--scratch-host", "127.0.0.1", "--scratch-port", strconv.Itoa(src.Port), "--scratch-may-hold-data"}, 1, "is the source itself"},
		{"a port forwarded to the source is the source", sourceEnv,
			[]string{"--scratch-port", strconv.Itoa(forward(t, src.Addr())), "--scratch-may-hold-data"}, 1, "is the source itself (host "},
		{"a scratch holding another database is refused", env,
			[]string{"--scratch-port", strconv.Itoa(scratch.Port)}, 1, "holds databases the drill did not create: billing"},
		{"--scratch-may-hold-data lets the drill use it", env,
			[]string{"--scratch-port", strconv.Itoa(scratch.Port), "--scratch-may-hold-data"}, 0, "restores and matches the source"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := script(t, tc.env, "verify-restore.sh", append(append(append([]string{}, common...), "--allow-drift"), tc.args...)...)
			require.Equal(t, tc.code, res.code, res.out)
			require.Contains(t, res.out, tc.want)
			var n int
			require.NoError(t, src.DB(t, "").QueryRow("SELECT COUNT(*) FROM auth.audit WHERE action = 'after-backup'").Scan(&n))
			require.Equal(t, 1, n, "the source database was dropped and reloaded")
			require.NoError(t, scratch.DB(t, "").QueryRow("SELECT COUNT(*) FROM billing.invoices").Scan(&n))
			require.Equal(t, 1, n, "the scratch server's own data was touched")
		})
	}
}

// forward listens on a loopback port of its own and relays every connection
// to addr: a second address for the same server.
func forward(t *testing.T, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				u, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer func() { _ = u.Close() }()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}
