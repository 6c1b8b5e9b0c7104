// Package itest runs a service's own test command against ephemeral MySQL 8
// and Redis 7 as Dagger services, bound under the host names and ports the
// chart gives the service, with exactly the environment the chart's ConfigMap
// and Secret provide (computed by pipelines/appenv). This package holds the
// decisions (which stores, which ports, which command, which credentials) as
// plain functions; the Dagger module's ci/graphs assembles the graph.
package itest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
)

// Pinned store images: exact tag and digest. Overridable (local mirrors).
const (
	MySQLImage = "docker.io/library/mysql:8.4.6@sha256:869218921e61d6c3c89820955d63cca42971f0e3e6c1e2792247bbd944ebc6e9"
	RedisImage = "docker.io/library/redis:7.4.11-alpine@sha256:ff02b58f971e7d7d156a1267e283fcbbeee91773b6aa36c49dac28ecfe28eadf"
)

// Images are the images of one run.
type Images struct {
	Node, MySQL, Redis string
}

// DefaultImages returns the pinned images.
func DefaultImages() Images {
	return Images{Node: build.NodeImage, MySQL: MySQLImage, Redis: RedisImage}
}

// WithOverrides applies every non-empty override, each checked by
// build.CheckImage.
func (i Images) WithOverrides(node, mysql, redis string) (Images, error) {
	out := i
	for _, o := range []struct {
		dst  *string
		val  string
		what string
	}{{&out.Node, node, "node image"}, {&out.MySQL, mysql, "mysql image"}, {&out.Redis, redis, "redis image"}} {
		if o.val != "" {
			*o.dst = o.val
		}
		if err := build.CheckImage(*o.dst); err != nil {
			return Images{}, fmt.Errorf("%s: %w", o.what, err)
		}
	}
	return out, nil
}

// Store is one data store the service reaches, as the chart names it.
type Store struct {
	Engine string // "mysql" or "redis"
	// Alias is the host name the service connects to (MYSQL_HOST/REDIS_HOST).
	Alias string
	// Port is the port it connects to (MYSQL_PORT/REDIS_PORT); the store
	// listens on it.
	Port int
}

// Stores reads the service's data stores from its environment, MySQL first.
// A service without both, or with a port that is not a port, is refused.
func Stores(env *appenv.ServiceEnv) ([]Store, error) {
	var out []Store
	for _, s := range []struct{ engine, host, port string }{
		{"mysql", "MYSQL_HOST", "MYSQL_PORT"},
		{"redis", "REDIS_HOST", "REDIS_PORT"},
	} {
		host, port := env.Config[s.host], env.Config[s.port]
		if host == "" || port == "" {
			return nil, fmt.Errorf("service %s: the chart gives it no %s/%s; integration tests need both stores", env.Service, s.host, s.port)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("service %s: %s=%q is not a port", env.Service, s.port, port)
		}
		out = append(out, Store{Engine: s.engine, Alias: host, Port: p})
	}
	return out, nil
}

var scriptName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9:._-]*$`)

// Command is the service's own test command: `npm test`, or `npm run
// <script>` for a script named in its package.json.
func Command(script string) ([]string, error) {
	if script == "" || script == "test" {
		return []string{"npm", "test"}, nil
	}
	if !scriptName.MatchString(script) {
		return nil, fmt.Errorf("test script %q: not a package.json script name", script)
	}
	return []string{"npm", "run", script}, nil
}

// Secret keys the chart's Secret provides, and the test database's root
// password, which no service ever sees.
const (
	KeyMySQLUser     = "MYSQL_USER"
	KeyMySQLPassword = "MYSQL_PASSWORD"
	KeyRedisPassword = "REDIS_PASSWORD"
	KeyMySQLRoot     = "MYSQL_ROOT_PASSWORD"
)

// NewSecretValues makes a random value for every Secret key of the service
// and the test database's root password: the throwaway credentials of one
// run, to be handed to the engine only as secrets (see SecretName).
func NewSecretValues(env *appenv.ServiceEnv) (map[string]string, error) {
	for _, k := range []string{KeyMySQLUser, KeyMySQLPassword, KeyRedisPassword} {
		if !slices.Contains(env.SecretKeys, k) {
			return nil, fmt.Errorf("service %s: the chart's Secret %s has no %s; the stores cannot be wired", env.Service, env.Secret, k)
		}
	}
	out := map[string]string{}
	for _, k := range append(slices.Clone(env.SecretKeys), KeyMySQLRoot) {
		v, err := random(k)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// SecretName names one run's secret in the engine.
func SecretName(service, key string) string {
	return fmt.Sprintf("krgeobuk-itest-%s-%s", service, key)
}

func random(key string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random %s: %w", key, err)
	}
	if key == KeyMySQLUser {
		return "itest_" + hex.EncodeToString(b[:4]), nil // MySQL user names are short
	}
	return hex.EncodeToString(b), nil
}
