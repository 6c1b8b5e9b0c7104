package backup_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
)

// fakeDocker installs a stand-in for `docker exec` (there is no Docker daemon
// here): it records the container name and runs the command on this host,
// where the test's servers listen on the ports the tool passes. It proves
// the container branch's command shape and data path, not Docker itself.
func fakeDocker(t *testing.T) (pathEnv, logFile string) {
	t.Helper()
	dir := t.TempDir()
	logFile = filepath.Join(dir, "containers.log")
	shim := `#!/bin/sh
# fake-docker: emulates "docker exec [-i] [-e NAME]... CONTAINER CMD ARGS..." locally.
[ "$1" = exec ] || { echo "fake-docker: only exec is emulated, got: $1" >&2; exit 99; }
shift
while [ $# -gt 0 ]; do
  case "$1" in
    -i) shift ;;
    -e) case "$2" in *=*) echo "fake-docker: -e with a value puts it on argv" >&2; exit 98 ;; esac; shift 2 ;;
    *) break ;;
  esac
done
echo "$1" >> "` + logFile + `"
shift
exec "$@"
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker"), []byte(shim), 0o755))
	return "PATH=" + dir + ":" + os.Getenv("PATH"), logFile
}

func TestContainerModeRunsTheToolsInTheStoreContainer(t *testing.T) {
	t.Parallel()
	m := dbtest.StartMariaDB(t)
	seedAuth(t, m)
	r := dbtest.StartRedis(t, fastSync)
	seedRedis(t, r)
	pathEnv, log := fakeDocker(t)
	dir := t.TempDir()
	env := append(append(mysqlEnv(m, "AUTH"), redisEnv(r, "AUTH")...), pathEnv)
	mysqlBefore, redisBefore := mysqlFingerprint(t, m, "auth"), redisFingerprint(t, r)

	res := script(t, env, "backup-mysql.sh", "--mode", "container", "--store", "auth-mysql", "--port", strconv.Itoa(m.Port),
		"--database", "auth", "--backup-dir", dir, "--textfile-dir", "-")
	require.Equal(t, 0, res.code, res.out)
	res = script(t, env, "backup-redis.sh", "--mode", "container", "--store", "auth-redis", "--port", strconv.Itoa(r.Port),
		"--backup-dir", dir, "--textfile-dir", "-")
	require.Equal(t, 0, res.code, res.out)

	m.Exec(t, "auth", "DELETE FROM users")
	require.NoError(t, r.Client(t).FlushAll(t.Context()).Err())
	res = script(t, env, "restore-mysql.sh", "--mode", "container", "--store", "auth-mysql", "--port", strconv.Itoa(m.Port),
		"--file", archives(t, filepath.Join(dir, "auth-mysql"))[0], "--yes")
	require.Equal(t, 0, res.code, res.out)
	require.Contains(t, res.out, "On auth-mysql (container auth-mysql, 127.0.0.1:")
	res = script(t, env, "restore-redis.sh", "--mode", "container", "--store", "auth-redis", "--port", strconv.Itoa(r.Port),
		"--file", archives(t, filepath.Join(dir, "auth-redis"))[0], "--yes")
	require.Equal(t, 0, res.code, res.out)

	require.Equal(t, mysqlBefore, mysqlFingerprint(t, m, "auth"))
	require.Equal(t, redisBefore, redisFingerprint(t, r))
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	// dump, restore load; snapshot, cat, rm
	require.Equal(t, []string{"auth-mysql", "auth-redis", "auth-redis", "auth-redis", "auth-mysql"},
		strings.Fields(string(b)))
}
