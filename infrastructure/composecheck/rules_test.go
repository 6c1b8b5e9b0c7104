package composecheck_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/infrastructure/composecheck"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

const infraDir = ".."

func load(t *testing.T, dir string, files []string) *composecheck.Input {
	t.Helper()
	in, err := composecheck.Load(context.Background(), dir, files, filepath.Join(dir, ".env.example"))
	require.NoError(t, err)
	return in
}

func TestEveryComposeFileLoadsAndFollowsTheRules(t *testing.T) {
	tests := []struct {
		name     string
		files    []string
		complete bool
	}{
		{"stack (COMPOSE_FILE of .env.example)", composecheck.StackFiles, true},
		{"stack plus verify", composecheck.AllFiles(), true},
	}
	for _, f := range composecheck.AllFiles() {
		tests = append(tests, struct {
			name     string
			files    []string
			complete bool
		}{f + " alone", []string{f}, false})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := load(t, infraDir, tc.files)
			require.Empty(t, composecheck.Check(in, tc.complete))
		})
	}
}

func TestEnvExampleNamesTheStackFiles(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(infraDir, ".env.example"))
	require.NoError(t, err)
	require.Contains(t, string(b), "COMPOSE_FILE="+strings.Join(composecheck.StackFiles, ":")+"\n")
}

func TestStackRunsEveryCatalogStoreOnItsPortWithAContainerName(t *testing.T) {
	in := load(t, infraDir, composecheck.StackFiles)
	for _, st := range catalog.Stores() {
		svc, ok := in.Project.Services[st.Name]
		require.True(t, ok, "no service for %s", st.Name)
		// The backup scripts' container mode runs `docker exec <store>`.
		require.Equal(t, st.Name, svc.ContainerName)
		require.Len(t, svc.Ports, 1)
		require.Equal(t, uint32(st.Port), svc.Ports[0].Target)
	}
	for name, port := range composecheck.ExporterPorts {
		_, ok := in.Project.Services[name]
		require.True(t, ok, "no exporter %s (port %d)", name, port)
	}
}

// copyInfra copies the compose files and the config folders they mount into
// a temp dir, so a test can break one of them.
func copyInfra(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	for _, f := range append(composecheck.AllFiles(), ".env.example", "redis/redis.conf") {
		b, err := os.ReadFile(filepath.Join(infraDir, f))
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dst, f), b, 0o644))
	}
	return dst
}

func edit(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), old, "test edit does not apply to %s", path)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644))
}

func TestBrokenComposeFilesFailNamingServiceAndRule(t *testing.T) {
	const (
		auth  = "docker-compose.auth.yml"
		authz = "docker-compose.authz.yml"
		mon   = "docker-compose.monitoring.yml"
		ver   = "docker-compose.verify.yml"
	)
	tests := []struct {
		name     string
		file     string
		old, new string
		want     string // a violation must contain this
	}{
		{"healthcheck disabled", auth,
			`test: ["CMD", "mysqladmin", "ping", "--host=127.0.0.1", "--port=3307", "--silent"]`, `disable: true`,
			"healthcheck: service auth-mysql: healthcheck is disabled"},
		{"healthcheck missing", mon,
			"    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:9121/health\"]\n      interval: 30s\n      timeout: 5s\n      retries: 3\n      start_period: 10s\n", "",
			"healthcheck: service redis-exporter: no healthcheck"},
		{"restart no on a store", auth,
			"    restart: unless-stopped\n    stop_grace_period: 30s", "    restart: \"no\"\n    stop_grace_period: 30s",
			`restart: service auth-redis: restart is "no"`},
		{"restart missing", mon,
			"      start_period: 10s\n    restart: unless-stopped\n    deploy:\n      resources:\n        limits:\n          cpus: \"0.25\"\n          memory: 128M\n    logging: *logging\n\n  mysqld-exporter:",
			"      start_period: 10s\n    deploy:\n      resources:\n        limits:\n          cpus: \"0.25\"\n          memory: 128M\n    logging: *logging\n\n  mysqld-exporter:",
			"restart: service node-exporter: no restart policy"},
		{"memory limit missing", mon,
			"          memory: 128M\n    logging: *logging\n\n  redis-exporter:", "    logging: *logging\n\n  redis-exporter:",
			"limits: service mysqld-exporter: no memory limit"},
		{"no limits at all", authz,
			"    deploy:\n      resources:\n        limits:\n          cpus: \"1.0\"\n          memory: 1536M\n        reservations:\n          memory: 768M\n", "",
			"limits: service authz-mysql: no deploy.resources.limits"},
		{"data on a bind mount", auth,
			"- auth-mysql-data:/var/lib/mysql", "- ./mysql-data:/var/lib/mysql",
			"data-volume: service auth-mysql: /var/lib/mysql is a bind mount"},
		{"data volume missing", authz,
			"      - authz-redis-data:/data\n", "",
			"data-volume: service authz-redis: no named volume at /data"},
		{"store on the image's default port", auth,
			`"0.0.0.0:3307:3307"`, `"0.0.0.0:3306:3306"`,
			"ports: service auth-mysql: must publish exactly 3307:3307"},
		{"store server listens elsewhere", authz,
			`"--port=3308"`, `"--port=3306"`,
			"ports: service authz-mysql: server is not told to listen on 3308"},
		{"redis listens elsewhere", authz,
			`REDIS_PORT: "6381"`, `REDIS_PORT: "6379"`,
			"ports: service authz-redis: server is not told to listen on 6381"},
		{"exporter on another port", mon,
			"--web.listen-address=:9100", "--web.listen-address=:9101",
			"ports: service node-exporter: host-network exporter must listen with --web.listen-address=:9100"},
		{"exporter publishes another port", mon,
			`"0.0.0.0:9121:9121"`, `"0.0.0.0:9122:9121"`,
			"ports: service redis-exporter: must publish exactly 9121:9121"},
		{"scratch server on every interface", ver,
			`"127.0.0.1:3399:3399"`, `"3399:3399"`,
			"ports: service scratch-mysql: publishes 3399"},
		{"major-only tag", auth, "image: mysql:8.4.3", "image: mysql:8",
			`image-pinned: service auth-mysql: image "mysql:8" is not pinned`},
		{"latest tag", authz, "image: redis:7.0.15-alpine", "image: redis:latest",
			`image-pinned: service authz-redis: image "redis:latest" is not pinned`},
		{"no tag", mon, "image: prom/node-exporter:v1.8.2", "image: prom/node-exporter",
			`image-pinned: service node-exporter: image "prom/node-exporter" is not pinned`},
		{"literal password in environment", auth,
			"MYSQL_ROOT_PASSWORD_FILE: /run/secrets/auth_mysql_root_password", "MYSQL_ROOT_PASSWORD: hunter2hunter2hunter2",
			"credentials: service auth-mysql: environment MYSQL_ROOT_PASSWORD holds a literal value"},
		{"password file outside secrets", authz,
			"MYSQL_PASSWORD_FILE: /run/secrets/authz_mysql_password", "MYSQL_PASSWORD_FILE: /etc/authz-password",
			`credentials: service authz-mysql: environment MYSQL_PASSWORD_FILE points at "/etc/authz-password"`},
		{"password on the command line", auth,
			`command: ["serve"]`, `command: ["serve", "--requirepass", "${AUTH_REDIS_PASSWORD}"]`,
			`credentials: service auth-redis: command argument "--requirepass"`},
		{"redis without a password file", auth,
			"      REDIS_PASSWORD_FILE: /run/secrets/auth_redis_password\n", "",
			"redis-auth: service auth-redis: REDIS_PASSWORD_FILE must name a compose secret"},
		{"redis password secret not mounted", authz,
			"    secrets:\n      - authz_redis_password\n", "",
			`redis-auth: service authz-redis: REDIS_PASSWORD_FILE names secret "authz_redis_password", which the service does not mount`},
		{"redis started without the entry point", auth,
			`entrypoint: ["/bin/sh", "/usr/local/etc/redis/redis-entrypoint.sh"]`, `entrypoint: ["redis-server"]`,
			"redis-auth: service auth-redis: entrypoint must be redis-entrypoint.sh"},
		{"redis without AOF", "redis/redis.conf", "appendonly yes", "appendonly no",
			`redis-aof: service auth-redis: redis.conf sets appendonly "no"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := copyInfra(t)
			edit(t, filepath.Join(dir, tc.file), tc.old, tc.new)
			in := load(t, dir, composecheck.AllFiles())
			var got []string
			for _, v := range composecheck.Check(in, true) {
				got = append(got, v.String())
			}
			require.NotEmpty(t, got, "broken input passed every rule")
			found := false
			for _, g := range got {
				found = found || strings.Contains(g, tc.want)
			}
			require.True(t, found, "want a violation containing %q, got:\n%s", tc.want, strings.Join(got, "\n"))
		})
	}
}

func TestVariableReferencesAreNotLiteralCredentials(t *testing.T) {
	dir := copyInfra(t)
	edit(t, filepath.Join(dir, "docker-compose.auth.yml"),
		"MYSQL_ROOT_PASSWORD_FILE: /run/secrets/auth_mysql_root_password",
		"MYSQL_ROOT_PASSWORD: ${AUTH_MYSQL_ROOT_PASSWORD:?set it}")
	require.Empty(t, composecheck.Check(load(t, dir, composecheck.AllFiles()), true))
}

func TestStackWithoutAuthzFileMissesCatalogStores(t *testing.T) {
	in := load(t, infraDir, []string{"docker-compose.auth.yml", "docker-compose.monitoring.yml"})
	var got []string
	for _, v := range composecheck.Check(in, true) {
		got = append(got, v.String())
	}
	require.Equal(t, []string{
		"catalog-store: service authz-mysql: catalog store has no compose service in [docker-compose.auth.yml docker-compose.monitoring.yml]",
		"catalog-store: service authz-redis: catalog store has no compose service in [docker-compose.auth.yml docker-compose.monitoring.yml]",
	}, got)
}
