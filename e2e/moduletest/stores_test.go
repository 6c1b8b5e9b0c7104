package moduletest

import (
	"fmt"
	"strconv"

	"dagger.io/dagger"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/itest"
)

// The stores a built API image is run against here. The module's own graphs
// (ci/graphs, package of another Go module, on the module's generated client)
// cannot be imported by this test; these are the same containers on the
// published client: same images, ports, health checks and secret wiring.

// secrets hands the run's random credentials (pipelines/itest) to the engine.
func secrets(dag *dagger.Client, senv *appenv.ServiceEnv) (map[string]*dagger.Secret, error) {
	values, err := itest.NewSecretValues(senv)
	if err != nil {
		return nil, err
	}
	out := map[string]*dagger.Secret{}
	for k, v := range values {
		out[k] = dag.SetSecret(itest.SecretName(senv.Service, k), v)
	}
	return out, nil
}

func mysqlStore(dag *dagger.Client, image string, port int, db string, creds map[string]*dagger.Secret) *dagger.Service {
	p := strconv.Itoa(port)
	return dag.Container().
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

// redisStart keeps the password off the command line (printf builtin).
const redisStart = `umask 077 && printf 'port %d\nrequirepass %%s\nsave ""\nappendonly no\n' "$REDIS_PASSWORD" > /tmp/redis.conf && exec redis-server /tmp/redis.conf`

func redisStore(dag *dagger.Client, image string, port int, password *dagger.Secret) *dagger.Service {
	return dag.Container().
		From(image).
		WithSecretVariable("REDIS_PASSWORD", password).
		WithExposedPort(port).
		WithDockerHealthcheck([]string{fmt.Sprintf(`redis-cli -p %d ping | grep -qE 'PONG|NOAUTH'`, port)},
			dagger.ContainerWithDockerHealthcheckOpts{Shell: true, Interval: "1s", Timeout: "3s", Retries: 30}).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{"sh", "-c", fmt.Sprintf(redisStart, port)}})
}
