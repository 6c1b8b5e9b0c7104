package graphs

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"dagger/krgeobuk/internal/dagger"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/itest"
)

// Credentials are the throwaway secrets of one integration test run, by key.
type Credentials map[string]*dagger.Secret

// NewCredentials hands a random value for every Secret key of the service
// (and the test database's root password) to the engine as a secret.
func NewCredentials(c *dagger.Client, env *appenv.ServiceEnv) (Credentials, error) {
	values, err := itest.NewSecretValues(env)
	if err != nil {
		return nil, err
	}
	out := Credentials{}
	for k, v := range values {
		out[k] = c.SetSecret(itest.SecretName(env.Service, k), v)
	}
	return out, nil
}

// TestRequest is one integration test run.
type TestRequest struct {
	Env    *appenv.ServiceEnv
	Source *dagger.Directory
	Images itest.Images
	// Script is the package.json script to run; "" means `npm test`.
	Script      string
	Credentials Credentials
}

// TestContainer returns the test container: the service's sources with its
// dependencies installed, the stores bound under the chart's names, the
// chart's environment set, and the test command as its last exec. Evaluating
// its stdout runs the tests; a failing test fails the evaluation.
func TestContainer(c *dagger.Client, req TestRequest) (*dagger.Container, error) {
	if req.Env == nil {
		return nil, fmt.Errorf("integration test: no environment")
	}
	svc := req.Env.Service
	if req.Source == nil {
		return nil, fmt.Errorf("integration test %s: no source directory", svc)
	}
	stores, err := itest.Stores(req.Env)
	if err != nil {
		return nil, err
	}
	cmd, err := itest.Command(req.Script)
	if err != nil {
		return nil, fmt.Errorf("integration test %s: %w", svc, err)
	}
	for _, k := range append(slices.Clone(req.Env.SecretKeys), itest.KeyMySQLRoot) {
		if req.Credentials[k] == nil {
			return nil, fmt.Errorf("integration test %s: no credential for %s", svc, k)
		}
	}

	ctr := NodeDeps(c, req.Images.Node, req.Source)
	for _, st := range stores {
		var s *dagger.Service
		if st.Engine == "mysql" {
			s = MySQL(c, req.Images.MySQL, st.Port, req.Env.Config["MYSQL_DATABASE"], req.Credentials)
		} else {
			s = Redis(c, req.Images.Redis, st.Port, req.Credentials[itest.KeyRedisPassword])
		}
		ctr = ctr.WithServiceBinding(st.Alias, s)
	}
	for _, k := range slices.Sorted(maps.Keys(req.Env.Config)) {
		ctr = ctr.WithEnvVariable(k, req.Env.Config[k])
	}
	for _, k := range req.Env.SecretKeys {
		ctr = ctr.WithSecretVariable(k, req.Credentials[k])
	}
	return ctr.WithExec(cmd), nil
}

// MySQL is a throwaway MySQL 8 listening on port with database db and the
// run's application user. The image's entrypoint creates both from the
// secret variables; the health check needs no password (mysqladmin ping
// answers 0 for a running server even when access is denied).
func MySQL(c *dagger.Client, image string, port int, db string, creds Credentials) *dagger.Service {
	p := strconv.Itoa(port)
	return c.Container().
		From(image).
		WithEnvVariable("MYSQL_DATABASE", db).
		WithSecretVariable("MYSQL_USER", creds[itest.KeyMySQLUser]).
		WithSecretVariable("MYSQL_PASSWORD", creds[itest.KeyMySQLPassword]).
		WithSecretVariable("MYSQL_ROOT_PASSWORD", creds[itest.KeyMySQLRoot]).
		WithExposedPort(port).
		WithDockerHealthcheck([]string{"mysqladmin", "ping", "--host=127.0.0.1", "--port=" + p, "--silent"},
			dagger.ContainerWithDockerHealthcheckOpts{Interval: "2s", Timeout: "5s", StartPeriod: "120s", Retries: 30}).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{"mysqld", "--port=" + p}, UseEntrypoint: true})
}

// redisStart writes the config from the secret variable with the shell's
// printf builtin, so the password is never on a command line.
const redisStart = `umask 077 && printf 'port %d\nrequirepass %%s\nsave ""\nappendonly no\n' "$REDIS_PASSWORD" > /tmp/redis.conf && exec redis-server /tmp/redis.conf`

// Redis is a throwaway Redis 7 listening on port and requiring password.
// The health check runs without the container's secret variables (the engine
// does not give them to it), so it asks without the password: a running
// server answers PONG, or NOAUTH once it requires one; either proves it is up.
func Redis(c *dagger.Client, image string, port int, password *dagger.Secret) *dagger.Service {
	return c.Container().
		From(image).
		WithSecretVariable("REDIS_PASSWORD", password).
		WithExposedPort(port).
		WithDockerHealthcheck([]string{fmt.Sprintf(`redis-cli -p %d ping | grep -qE 'PONG|NOAUTH'`, port)},
			dagger.ContainerWithDockerHealthcheckOpts{Shell: true, Interval: "1s", Timeout: "3s", Retries: 30}).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{"sh", "-c", fmt.Sprintf(redisStart, port)}})
}
