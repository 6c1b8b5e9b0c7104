package itest

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

func TestStoresComeFromTheChart(t *testing.T) {
	tests := []struct {
		service string
		want    []Store
	}{
		{service: "auth-server", want: []Store{{Engine: "mysql", Alias: "auth-mysql", Port: 3307}, {Engine: "redis", Alias: "auth-redis", Port: 6380}}},
		{service: "authz-server", want: []Store{{Engine: "mysql", Alias: "authz-mysql", Port: 3308}, {Engine: "redis", Alias: "authz-redis", Port: 6381}}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			src, err := appenv.EmbeddedSource("staging")
			require.NoError(t, err)
			env, err := appenv.ForService(context.Background(), src, tt.service, nil)
			require.NoError(t, err)
			got, err := Stores(env)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestStoresRejects(t *testing.T) {
	tests := []struct {
		name    string
		config  map[string]string
		wantErr string
	}{
		{name: "SPA", config: map[string]string{}, wantErr: "service x: the chart gives it no MYSQL_HOST/MYSQL_PORT"},
		{name: "no redis", config: map[string]string{"MYSQL_HOST": "m", "MYSQL_PORT": "3307"}, wantErr: "no REDIS_HOST/REDIS_PORT"},
		{name: "bad port", config: map[string]string{"MYSQL_HOST": "m", "MYSQL_PORT": "33o7", "REDIS_HOST": "r", "REDIS_PORT": "1"},
			wantErr: `service x: MYSQL_PORT="33o7" is not a port`},
		{name: "port out of range", config: map[string]string{"MYSQL_HOST": "m", "MYSQL_PORT": "1", "REDIS_HOST": "r", "REDIS_PORT": "70000"},
			wantErr: `REDIS_PORT="70000" is not a port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Stores(&appenv.ServiceEnv{Service: "x", Config: tt.config})
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		script  string
		want    []string
		wantErr string
	}{
		{script: "", want: []string{"npm", "test"}},
		{script: "test", want: []string{"npm", "test"}},
		{script: "test:integration", want: []string{"npm", "run", "test:integration"}},
		{script: "test; rm -rf /", wantErr: `test script "test; rm -rf /": not a package.json script name`},
		{script: "-h", wantErr: "not a package.json script name"},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			got, err := Command(tt.script)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestImages(t *testing.T) {
	got, err := DefaultImages().WithOverrides("", "127.0.0.1:5000/library/mysql:8.4.6", "")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:5000/library/mysql:8.4.6", got.MySQL)
	require.Equal(t, RedisImage, got.Redis)
	for _, ref := range []string{MySQLImage, RedisImage} {
		require.Regexp(t, `:[0-9][^@]*@sha256:[0-9a-f]{64}$`, ref, "exact tag and digest")
	}
	_, err = DefaultImages().WithOverrides("", "", "redis:latest")
	require.ErrorContains(t, err, `redis image: image "redis:latest": the tag latest is not a pin`)
}

func TestNewSecretValues(t *testing.T) {
	src, err := appenv.EmbeddedSource("staging")
	require.NoError(t, err)
	env, err := appenv.ForService(context.Background(), src, "auth-server", nil)
	require.NoError(t, err)
	a, err := NewSecretValues(env)
	require.NoError(t, err)
	b, err := NewSecretValues(env)
	require.NoError(t, err)
	require.ElementsMatch(t, append(append([]string{}, env.SecretKeys...), KeyMySQLRoot), keys(a), "every Secret key and the root password")
	for k, v := range a {
		require.NotEmpty(t, v, k)
		require.NotEqual(t, v, b[k], "%s: random per run", k)
	}
	require.Regexp(t, `^itest_[0-9a-f]{8}$`, a[KeyMySQLUser], "MySQL user names are short")
	require.Equal(t, "krgeobuk-itest-auth-server-MYSQL_USER", SecretName("auth-server", KeyMySQLUser))
	for _, p := range catalog.JWTKeyPairs {
		requirePair(t, a[p.Private], a[p.Public])
	}
	require.NotEqual(t, a["JWT_ACCESS_PUBLIC_KEY"], a["JWT_REFRESH_PUBLIC_KEY"], "a pair per token kind")

	env.SecretKeys = []string{KeyMySQLUser}
	_, err = NewSecretValues(env)
	require.ErrorContains(t, err, "have no MYSQL_PASSWORD; the stores cannot be wired")

	env.SecretKeys = []string{KeyMySQLUser, KeyMySQLPassword, KeyRedisPassword, "JWT_ACCESS_PRIVATE_KEY"}
	_, err = NewSecretValues(env)
	require.ErrorContains(t, err, "hold only one half of JWT_ACCESS_PRIVATE_KEY/JWT_ACCESS_PUBLIC_KEY")
}

// requirePair checks that public is the PEM public half of PEM private.
func requirePair(t *testing.T, private, public string) {
	t.Helper()
	pb, _ := pem.Decode([]byte(private))
	require.NotNil(t, pb, "private key is PEM")
	key, err := x509.ParsePKCS8PrivateKey(pb.Bytes)
	require.NoError(t, err)
	ub, _ := pem.Decode([]byte(public))
	require.NotNil(t, ub, "public key is PEM")
	pub, err := x509.ParsePKIXPublicKey(ub.Bytes)
	require.NoError(t, err)
	require.True(t, key.(*rsa.PrivateKey).PublicKey.Equal(pub), "the public key is the private key's half")
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
