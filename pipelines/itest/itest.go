// Package itest runs a service's own test command against ephemeral MySQL 8
// and Redis 7 as Dagger services, bound under the host names and ports the
// chart gives the service, with exactly the environment the chart's ConfigMap
// and Secret provide (computed by pipelines/appenv). This package holds the
// decisions (which stores, which ports, which command, which credentials) as
// plain functions; the Dagger module's ci/graphs assembles the graph.
package itest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
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

// NewSecretValues makes a value for every Secret key of the service and the
// test database's root password: the throwaway credentials of one run, to be
// handed to the engine only as secrets (see SecretName). Passwords are
// random; each JWT key pair is a fresh RSA pair, its halves matching.
func NewSecretValues(env *appenv.ServiceEnv) (map[string]string, error) {
	for _, k := range []string{KeyMySQLUser, KeyMySQLPassword, KeyRedisPassword} {
		if !slices.Contains(env.SecretKeys, k) {
			return nil, fmt.Errorf("service %s: the chart's Secrets (%s) have no %s; the stores cannot be wired", env.Service, strings.Join(env.Secrets, ", "), k)
		}
	}
	out := map[string]string{}
	for _, p := range catalog.JWTKeyPairs {
		hasPriv, hasPub := slices.Contains(env.SecretKeys, p.Private), slices.Contains(env.SecretKeys, p.Public)
		if hasPriv != hasPub {
			return nil, fmt.Errorf("service %s: the chart's Secrets hold only one half of %s/%s", env.Service, p.Private, p.Public)
		}
		if !hasPriv {
			continue
		}
		priv, pub, err := NewKeyPair()
		if err != nil {
			return nil, fmt.Errorf("service %s: %s: %w", env.Service, p.Private, err)
		}
		out[p.Private], out[p.Public] = priv, pub
	}
	for _, k := range append(slices.Clone(env.SecretKeys), KeyMySQLRoot) {
		if _, done := out[k]; done {
			continue
		}
		v, err := random(k)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// NewKeyPair makes a 2048-bit RSA key pair (RS256, as the APIs sign tokens)
// as PEM text: PKCS #8 private key, SPKI public key.
func NewKeyPair() (private, public string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("encode public key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})), nil
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
