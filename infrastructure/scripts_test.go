package infrastructure_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/composecheck"
	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

func abs(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(rel)
	require.NoError(t, err)
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func writeSecret(t *testing.T, dir, name, value string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(value), 0o600))
	return p
}

// run executes a script with a bounded context and returns its exit code and
// combined output.
func run(t *testing.T, env []string, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	default:
		t.Fatalf("run %s: %v\n%s", name, err, out.String())
		return -1, ""
	}
}

func cmdlines(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func TestRedisEntrypointRequiresPasswordAndRunsWithAOF(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not found: install the Debian package redis-server with `make deps`")
	}
	dir := t.TempDir()
	const pw = "entrypoint-test-password-0123"
	port := freePort(t)
	env := []string{
		"REDIS_PORT=" + strconv.Itoa(port),
		"REDIS_PASSWORD_FILE=" + writeSecret(t, dir, "pw", pw),
		"REDIS_CONF_DIR=" + abs(t, "redis"),
		"REDIS_RUN_DIR=" + filepath.Join(dir, "run"),
		"REDIS_DATA_DIR=" + dir,
		"REDIS_BIND=127.0.0.1",
	}
	script := abs(t, "redis/redis-entrypoint.sh")
	cmd := exec.Command("sh", script, "serve")
	cmd.Env = append(os.Environ(), env...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	})

	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: pw, MaxRetries: -1, DisableIdentity: true})
	defer func() { _ = c.Close() }()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, retry.Do(rctx, retry.NewConstant(50*time.Millisecond), func(ctx context.Context) error {
		select {
		case <-done:
			return fmt.Errorf("redis exited: %s", log.String())
		default:
		}
		return retry.RetryableError(c.Ping(ctx).Err())
	}), "redis from the entry point never answered:\n%s", log.String())

	anon := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1, DisableIdentity: true})
	defer func() { _ = anon.Close() }()
	require.ErrorContains(t, anon.Ping(ctx).Err(), "NOAUTH", "redis answers without a password")

	cfg, err := c.ConfigGet(ctx, "*").Result()
	require.NoError(t, err)
	require.Equal(t, "yes", cfg["appendonly"])
	require.Equal(t, "everysec", cfg["appendfsync"])
	require.Equal(t, "noeviction", cfg["maxmemory-policy"])

	for _, l := range cmdlines(t) {
		require.NotContains(t, l, pw, "password on a command line")
	}
	st, err := os.Stat(filepath.Join(dir, "run", "redis.conf"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "runtime config holding the password is not private")

	code, out := run(t, env, "sh", script, "health")
	require.Equal(t, 0, code, out)
	bad := append(append([]string{}, env...), "REDIS_PASSWORD_FILE="+writeSecret(t, dir, "wrong", "wrong-password-0123456"))
	code, out = run(t, bad, "sh", script, "health")
	require.NotEqual(t, 0, code, "health passes with a wrong password: %s", out)
}

func TestRedisEntrypointRefusesUnusablePasswords(t *testing.T) {
	tests := []struct{ name, pw string }{
		{"empty", ""},
		{"quote", `abc"def0123456789`},
		{"space", "abc def0123456789"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			code, out := run(t, []string{
				"REDIS_PORT=1", "REDIS_PASSWORD_FILE=" + writeSecret(t, dir, "pw", tc.pw),
				"REDIS_RUN_DIR=" + dir,
			}, "sh", abs(t, "redis/redis-entrypoint.sh"), "serve")
			require.Equal(t, 1, code, out)
			require.Contains(t, out, "refusing to run without a usable password")
			_, err := os.Stat(filepath.Join(dir, "redis.conf"))
			require.True(t, os.IsNotExist(err), "config written despite the refusal")
		})
	}
}

func TestExporterEntrypointsWritePerInstanceCredentials(t *testing.T) {
	dir := t.TempDir()
	mysqlPw := writeSecret(t, dir, "mysql", "exporter-pw-0123456789")
	authPw := writeSecret(t, dir, "auth", "auth-redis-pw-0123456789")
	authzPw := writeSecret(t, dir, "authz", "authz-redis-pw-0123456789")

	cnf := filepath.Join(dir, "my.cnf")
	code, out := run(t, []string{"MYSQLD_EXPORTER_PASSWORD_FILE=" + mysqlPw, "MYSQLD_EXPORTER_CNF=" + cnf},
		"sh", abs(t, "exporters/mysqld-exporter-entrypoint.sh"), "--render-only")
	require.Equal(t, 0, code, out)
	b, err := os.ReadFile(cnf)
	require.NoError(t, err)
	// Every catalog MySQL store has a section named as the monitoring chart's
	// auth_module (client.<store without -mysql>) pointing at its port.
	for _, st := range catalog.Stores() {
		if st.Engine != "mysql" {
			continue
		}
		section := fmt.Sprintf("[client.%s]\nuser=exporter\npassword=exporter-pw-0123456789\nhost=%s\nport=%d\n",
			strings.TrimSuffix(st.Name, "-mysql"), st.Name, st.Port)
		require.Contains(t, string(b), section)
	}
	st, err := os.Stat(cnf)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	pwMap := filepath.Join(dir, "map.json")
	code, out = run(t, []string{
		"AUTH_REDIS_PASSWORD_FILE=" + authPw, "AUTHZ_REDIS_PASSWORD_FILE=" + authzPw,
		"REDIS_EXPORTER_PASSWORD_MAP=" + pwMap, "DATA_SERVER_ADDRESS=10.30.0.10",
	}, "sh", abs(t, "exporters/redis-exporter-entrypoint.sh"), "--render-only")
	require.Equal(t, 0, code, out)
	b, err = os.ReadFile(pwMap)
	require.NoError(t, err)
	var got map[string]string
	require.NoError(t, json.Unmarshal(b, &got), "password map is not JSON:\n%s", b)
	require.Equal(t, map[string]string{
		"redis://auth-redis:6380":  "auth-redis-pw-0123456789",
		"redis://authz-redis:6381": "authz-redis-pw-0123456789",
		"redis://10.30.0.10:6380":  "auth-redis-pw-0123456789",
		"redis://10.30.0.10:6381":  "authz-redis-pw-0123456789",
	}, got)
}

func TestExporterAccountInitScriptGrantsReadOnlyMonitoring(t *testing.T) {
	m := dbtest.StartMariaDB(t)
	dir := t.TempDir()
	const exporterPw = "exporter-pw-0123456789"
	code, out := run(t, []string{
		"MYSQL_ROOT_PASSWORD_FILE=" + writeSecret(t, dir, "root", m.Password),
		"MYSQL_EXPORTER_PASSWORD_FILE=" + writeSecret(t, dir, "exp", exporterPw),
		"MYSQL_HOST=127.0.0.1", "MYSQL_TCP_PORT=" + strconv.Itoa(m.Port),
	}, abs(t, "mysql/initdb/10-exporter-user.sh"))
	require.Equal(t, 0, code, out)
	require.NotContains(t, out, m.Password)

	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = "exporter", exporterPw, "tcp", m.Addr()
	db, err := sql.Open("mysql", cfg.FormatDSN())
	require.NoError(t, err)
	defer func() { _ = db.Close() }()
	var threads string
	require.NoError(t, db.QueryRow("SHOW GLOBAL STATUS LIKE 'Threads_connected'").Scan(new(string), &threads))
	_, err = db.Exec("CREATE DATABASE exporter_must_not")
	require.ErrorContains(t, err, "denied", "the exporter account can change the server")
}

func TestHealthCheckNamesTheStoreThatIsDown(t *testing.T) {
	authM, authzM := dbtest.StartMariaDB(t), dbtest.StartMariaDB(t)
	authR, authzR := dbtest.StartRedis(t), dbtest.StartRedis(t)
	envFile := filepath.Join(t.TempDir(), ".env")
	require.NoError(t, os.WriteFile(envFile, []byte(strings.Join([]string{
		"AUTH_MYSQL_ROOT_PASSWORD=" + authM.Password,
		"AUTHZ_MYSQL_ROOT_PASSWORD=" + authzM.Password,
		"AUTH_REDIS_PASSWORD=" + authR.Password,
		"AUTHZ_REDIS_PASSWORD=" + authzR.Password,
	}, "\n")+"\n"), 0o600))
	env := []string{
		"KRGEOBUK_ENV_FILE=" + envFile,
		"AUTH_MYSQL_PORT=" + strconv.Itoa(authM.Port), "AUTHZ_MYSQL_PORT=" + strconv.Itoa(authzM.Port),
		"AUTH_REDIS_PORT=" + strconv.Itoa(authR.Port), "AUTHZ_REDIS_PORT=" + strconv.Itoa(authzR.Port),
	}
	secrets := []string{authM.Password, authzM.Password, authR.Password, authzR.Password}
	script := abs(t, "maintenance/health-check.sh")

	code, out := run(t, env, script)
	require.Equal(t, 0, code, out)
	for _, st := range catalog.Stores() {
		require.Contains(t, out, "ok    "+st.Name+" ", "store %s not checked", st.Name)
	}

	authzR.Stop()
	code, out = run(t, env, script)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "FAIL  authz-redis")
	require.Contains(t, out, "1 store(s) down: authz-redis")
	require.Contains(t, out, "ok    auth-redis ")

	// A wrong password is a failure too, not "the port is open".
	wrongEnv := append(append([]string{}, env...), "AUTH_MYSQL_ROOT_PASSWORD=wrong-password-0123")
	require.NoError(t, os.WriteFile(envFile, []byte("AUTH_MYSQL_ROOT_PASSWORD=wrong-password-0123\n"), 0o600))
	code, out = run(t, wrongEnv, script)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "FAIL  auth-mysql")
	for _, s := range secrets {
		require.NotContains(t, out, s)
	}
}

func TestFirewallDryRunPrintsTheRuleSetAndChangesNothing(t *testing.T) {
	// Tripwires stand in for iptables: a dry run must never call them.
	bin := t.TempDir()
	marker := filepath.Join(t.TempDir(), "called")
	for _, name := range []string{"iptables", "iptables-restore", "ip6tables", "nft"} {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name),
			[]byte("#!/bin/sh\necho \"$0 $*\" >> "+marker+"\nexit 1\n"), 0o755))
	}
	path := "PATH=" + bin + ":" + os.Getenv("PATH")
	script := abs(t, "security/firewall-rules.sh")

	var ports []int
	for _, st := range catalog.Stores() {
		ports = append(ports, st.Port)
	}
	for _, p := range composecheck.ExporterPorts {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	var portList []string
	for _, p := range ports {
		portList = append(portList, strconv.Itoa(p))
	}
	dports := "--dports " + strings.Join(portList, ",")

	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want []string
	}{
		{"one CIDR by flag", nil, []string{"--dry-run", "--cidr", "10.20.0.0/16"}, 0, []string{
			"  *filter\n  :KRGEOBUK-DATA - [0:0]\n  -A KRGEOBUK-DATA -i lo -j RETURN\n" +
				"  -A KRGEOBUK-DATA -s 172.30.0.0/24 -p tcp -m multiport " + dports + " -j RETURN\n" +
				"  -A KRGEOBUK-DATA -s 10.20.0.0/16 -p tcp -m multiport " + dports + " -j RETURN\n" +
				"  -A KRGEOBUK-DATA -p tcp -m multiport " + dports + " -j DROP\n  COMMIT\n",
			"hooks: INPUT -j KRGEOBUK-DATA; DOCKER-USER -j KRGEOBUK-DATA",
			"dry run: nothing changed",
		}},
		{"two CIDRs from the environment", []string{"CLUSTER_NODE_CIDR=10.20.0.0/16,192.168.50.0/24"}, []string{"--dry-run"}, 0, []string{
			"-A KRGEOBUK-DATA -s 10.20.0.0/16 -p tcp",
			"-A KRGEOBUK-DATA -s 192.168.50.0/24 -p tcp",
		}},
		{"no CIDR", nil, []string{"--dry-run"}, 2, []string{"no cluster node CIDR"}},
		{"prefix too long", nil, []string{"--dry-run", "--cidr", "10.20.0.0/33"}, 2, []string{"invalid CIDR '10.20.0.0/33'"}},
		{"whole internet", nil, []string{"--dry-run", "--cidr", "0.0.0.0/0"}, 2, []string{"invalid CIDR '0.0.0.0/0'"}},
		{"octet out of range", nil, []string{"--dry-run", "--cidr", "10.300.0.0/16"}, 2, []string{"invalid CIDR '10.300.0.0/16'"}},
		{"bad input fails before anything, even without --dry-run", nil, []string{"--cidr", "nonsense"}, 2, []string{"invalid CIDR 'nonsense'"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(t, append([]string{path, "CLUSTER_NODE_CIDR="}, tc.env...), script, tc.args...)
			require.Equal(t, tc.code, code, out)
			for _, w := range tc.want {
				require.Contains(t, out, w)
			}
			_, err := os.Stat(marker)
			require.True(t, os.IsNotExist(err), "a firewall command was called")
		})
	}
}
