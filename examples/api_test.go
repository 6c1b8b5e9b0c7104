// Package examples_test runs the example services' own tests against real
// MariaDB and Redis servers, with the environment computed by the same
// pipelines/appenv code the Dagger integration-test function uses.
package examples_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	retry "github.com/sethvargo/go-retry"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/internal/dbtest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/itest"
)

// stack is the example API's data stores and the environment that wires it
// to them.
type stack struct {
	mysql   *dbtest.MariaDB
	redis   *dbtest.Redis
	env     *appenv.ServiceEnv
	secrets map[string]string
}

// newStack starts MariaDB and Redis and computes auth-server's environment
// in development from the chart, pointing only the hosts and ports at the
// local servers. The application user is created as the data server's
// provisioning would: its own password, privileges on its own database.
func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{mysql: dbtest.StartMariaDB(t), redis: dbtest.StartRedis(t)}
	src, err := appenv.EmbeddedSource("development")
	require.NoError(t, err)
	env, err := appenv.ForService(context.Background(), src, "auth-server", map[string]string{
		"MYSQL_HOST": s.mysql.Host, "MYSQL_PORT": strconv.Itoa(s.mysql.Port),
		"REDIS_HOST": s.redis.Host, "REDIS_PORT": strconv.Itoa(s.redis.Port),
		"PORT": strconv.Itoa(freePort(t)), "TCP_PORT": strconv.Itoa(freePort(t)),
	})
	require.NoError(t, err)
	s.env = env
	user, password := "auth_app", random(t)
	db := env.Config["MYSQL_DATABASE"]
	s.mysql.Exec(t, "", fmt.Sprintf("CREATE DATABASE `%s`; CREATE USER '%s'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON `%s`.* TO '%s'@'%%';",
		db, user, password, db, user))
	s.secrets = map[string]string{"MYSQL_USER": user, "MYSQL_PASSWORD": password, "REDIS_PASSWORD": s.redis.Password}
	for _, p := range catalog.JWTKeyPairs {
		priv, pub, err := itest.NewKeyPair()
		require.NoError(t, err)
		s.secrets[p.Private], s.secrets[p.Public] = priv, pub
	}
	require.ElementsMatch(t, env.SecretKeys, slices.Collect(maps.Keys(s.secrets)), "the test supplies exactly the Secret's keys")
	return s
}

// vars is the service's whole environment: the chart's config and secrets.
func (s *stack) vars(override map[string]string) map[string]string {
	out := maps.Clone(s.env.Config)
	maps.Copy(out, s.secrets)
	maps.Copy(out, override)
	return out
}

func random(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// The API's own test suite (`npm test`, what `dagger call integration-test`
// runs) passes against real MariaDB and Redis.
func TestAuthAPIOwnTests(t *testing.T) {
	requireNode(t)
	dir := checkout(t, "auth-api")
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := run(ctx, dir, npmEnv(s.vars(nil)), "npm", "test")
	require.NoError(t, err, "npm test:\n%s", out)
	require.Contains(t, out, "# fail 0")
	require.Regexp(t, `# pass [1-9]`, out)
	require.Contains(t, out, "ok 1 - are usable as the integration environment gives them", "the JWT key checks ran:\n%s", out)
	require.Contains(t, out, "ok 5 - answers the chosen share of normal requests 500 and counts them", "the fault switch ran:\n%s", out)
	require.Contains(t, out, "ok 6 - delays the chosen share of normal requests, as the latency histogram shows", "the fault switch ran:\n%s", out)
	for _, v := range s.secrets {
		require.NotContains(t, out, v, "a secret value reached the test output")
	}
}

// The built API's readiness follows its stores: ready with both, not ready
// (503, naming the store) when either stops, ready again when it returns;
// liveness never depends on them. Passwords appear in no response and no log.
func TestAuthAPIReadinessFollowsTheStores(t *testing.T) {
	requireNode(t)
	dir := checkout(t, "auth-api")
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := run(ctx, dir, npmEnv(nil), "npm", "run", "build")
	require.NoError(t, err, "npm run build:\n%s", out)

	srv := startServer(t, dir, npmEnv(s.vars(nil)), "dist/main.js")
	base := "http://127.0.0.1:" + s.env.Config["PORT"]
	ready := func(want int, store, state string) map[string]any {
		t.Helper()
		var body map[string]any
		var last string
		err := retry.Do(ctx, retry.WithMaxDuration(60*time.Second, retry.NewConstant(250*time.Millisecond)), func(ctx context.Context) error {
			code, b, err := get(ctx, base+"/health/ready")
			if err != nil {
				last = err.Error()
				return retry.RetryableError(err)
			}
			last = fmt.Sprintf("%d %s", code, b)
			body = map[string]any{}
			if err := json.Unmarshal([]byte(b), &body); err != nil {
				return retry.RetryableError(err)
			}
			checks, _ := body["checks"].(map[string]any)
			if code != want || !strings.HasPrefix(fmt.Sprint(checks[store]), state) {
				return retry.RetryableError(fmt.Errorf("readiness %s", last))
			}
			return nil
		})
		require.NoError(t, err, "want %d with %s %s; last answer: %s\n--- server log ---\n%s", want, store, state, last, srv.out.String())
		return body
	}
	live := func() {
		t.Helper()
		code, _, err := get(ctx, base+"/health")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "liveness never depends on the stores")
	}

	ready(http.StatusOK, "mysql", "up")
	ready(http.StatusOK, "redis", "up")

	s.redis.Stop()
	ready(http.StatusServiceUnavailable, "redis", "down")
	live()
	s.redis.Start()
	ready(http.StatusOK, "redis", "up")

	s.mysql.Stop()
	body := ready(http.StatusServiceUnavailable, "mysql", "down")
	require.Equal(t, "unavailable", body["status"])
	live()
	s.mysql.Start()
	ready(http.StatusOK, "mysql", "up")

	srv.stop(t)
	for _, v := range s.secrets {
		require.NotContains(t, srv.out.String(), v, "a secret value reached the server log")
	}
}

// Wrong credentials keep the API alive but not ready, and the answer names
// the store without the password.
func TestAuthAPINotReadyWithWrongCredentials(t *testing.T) {
	requireNode(t)
	dir := checkout(t, "auth-api")
	s := newStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := run(ctx, dir, npmEnv(nil), "npm", "run", "build")
	require.NoError(t, err, "npm run build:\n%s", out)

	wrong := "not-" + random(t)
	srv := startServer(t, dir, npmEnv(s.vars(map[string]string{"MYSQL_PASSWORD": wrong})), "dist/main.js")
	base := "http://127.0.0.1:" + s.env.Config["PORT"]
	var last string
	err = retry.Do(ctx, retry.WithMaxDuration(60*time.Second, retry.NewConstant(250*time.Millisecond)), func(ctx context.Context) error {
		code, b, err := get(ctx, base+"/health/ready")
		if err != nil {
			return retry.RetryableError(err)
		}
		last = b
		// Redis may still be connecting when MySQL first refuses: wait until
		// both stores have answered, then the API must say exactly this.
		if code != http.StatusServiceUnavailable || !strings.Contains(b, "Access denied") || !strings.Contains(b, `"redis":"up"`) {
			return retry.RetryableError(fmt.Errorf("readiness %d %s", code, b))
		}
		return nil
	})
	require.NoError(t, err, "last answer (want 503, MySQL access denied, Redis up): %s\n%s", last, srv.out.String())
	require.NotContains(t, last, wrong)
}

func get(ctx context.Context, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}
