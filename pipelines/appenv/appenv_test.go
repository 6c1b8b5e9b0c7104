package appenv

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/render"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/values"
)

var chartConfigKeys = []string{"LOG_LEVEL", "MYSQL_CONNECTION_LIMIT", "MYSQL_CONNECT_TIMEOUT_MS", "MYSQL_DATABASE",
	"MYSQL_HOST", "MYSQL_IDLE_TIMEOUT_MS", "MYSQL_MAX_IDLE", "MYSQL_PORT", "NODE_ENV", "PORT", "REDIS_CONNECT_TIMEOUT_MS", "REDIS_DB", "REDIS_HOST", "REDIS_PORT", "TCP_PORT"}

func TestForService(t *testing.T) {
	tests := []struct {
		env, service string
		overrides    map[string]string
		want         map[string]string
	}{
		{env: "staging", service: "auth-server", want: map[string]string{
			"MYSQL_HOST": "auth-mysql", "MYSQL_PORT": "3307", "REDIS_HOST": "auth-redis", "REDIS_PORT": "6380",
			"MYSQL_DATABASE": "auth", "NODE_ENV": "production", "PORT": "8000", "TCP_PORT": "8010", "LOG_LEVEL": "info"}},
		{env: "development", service: "authz-server", want: map[string]string{
			"MYSQL_HOST": "authz-mysql", "MYSQL_PORT": "3308", "REDIS_HOST": "authz-redis", "REDIS_PORT": "6381",
			"MYSQL_DATABASE": "authz", "NODE_ENV": "development", "LOG_LEVEL": "debug"}},
		{env: "production", service: "auth-server", overrides: map[string]string{"MYSQL_HOST": "127.0.0.1", "REDIS_PORT": "40001"},
			want: map[string]string{"MYSQL_HOST": "127.0.0.1", "REDIS_PORT": "40001", "REDIS_HOST": "auth-redis"}},
	}
	for _, tt := range tests {
		t.Run(tt.env+"/"+tt.service, func(t *testing.T) {
			got, err := ForService(context.Background(), source(t, tt.env), tt.service, tt.overrides)
			require.NoError(t, err)
			require.Equal(t, tt.service+"-config", got.ConfigMap)
			require.Equal(t, []string{tt.service + "-secrets", tt.service + "-jwt"}, got.Secrets)
			require.Equal(t, []string{"JWT_ACCESS_PRIVATE_KEY", "JWT_ACCESS_PUBLIC_KEY", "JWT_REFRESH_PRIVATE_KEY", "JWT_REFRESH_PUBLIC_KEY",
				"MYSQL_PASSWORD", "MYSQL_USER", "REDIS_PASSWORD"}, got.SecretKeys, "the credentials learnt from development's render, the JWT keys from the catalog")
			keys := make([]string, 0, len(got.Config))
			for k := range got.Config {
				keys = append(keys, k)
			}
			require.ElementsMatch(t, chartConfigKeys, keys, "exactly the chart's ConfigMap keys")
			for k, v := range tt.want {
				require.Equal(t, v, got.Config[k], k)
			}
			require.Len(t, got.Keys(), len(chartConfigKeys)+7)
		})
	}
}

func TestForServiceRejects(t *testing.T) {
	tests := []struct {
		name, env, service string
		overrides          map[string]string
		wantErr            string
	}{
		{name: "unknown service", env: "staging", service: "billing-server", wantErr: `unknown service "billing-server"`},
		{name: "unknown environment", env: "qa", service: "auth-server", wantErr: `environment "qa": unknown`},
		{name: "invented key", env: "staging", service: "auth-server", overrides: map[string]string{"DATABASE_URL": "x"},
			wantErr: "service auth-server: overrides: DATABASE_URL is not a key the chart gives auth-server"},
		{name: "secret as config", env: "staging", service: "auth-server", overrides: map[string]string{"MYSQL_PASSWORD": "x"},
			wantErr: "MYSQL_PASSWORD is a Secret key; pass its value as a secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := EmbeddedSource(tt.env)
			if err == nil {
				_, err = ForService(context.Background(), src, tt.service, tt.overrides)
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestSPAHasNoEnvironmentButTheChartsNginxConf(t *testing.T) {
	staging := source(t, "staging")
	got, err := ForService(context.Background(), staging, "portal-client", nil)
	require.NoError(t, err)
	require.Empty(t, got.Keys(), "the chart gives an SPA no environment")

	conf, err := NginxConf(context.Background(), staging, "portal-client")
	require.NoError(t, err)
	require.Contains(t, conf, "listen 8080;")
	require.Contains(t, conf, "pid /tmp/nginx.pid;")
	require.Contains(t, conf, "include /etc/nginx/mime.types;")

	_, err = NginxConf(context.Background(), staging, "auth-server")
	require.ErrorContains(t, err, "service auth-server is an API")
}

// appenv renders the environment it is given, not the embedded one of the
// same name: a platform team's own environment folder is what it reads.
func TestForServiceReadsTheGivenEnvironment(t *testing.T) {
	src := source(t, "staging")
	own := *src.Env
	own.Values = values.Merge(src.Env.Values, map[string]any{"services": map[string]any{"auth-server": map[string]any{"config": map[string]any{"LOG_LEVEL": "warn"}}}})
	src.Env = &own
	got, err := ForService(context.Background(), src, "auth-server", nil)
	require.NoError(t, err)
	require.Equal(t, "warn", got.Config["LOG_LEVEL"])
}

// The JWT Secret is known by the name the chart gives it, renamed or not;
// a Secret appenv cannot know the keys of is an error, not a guess.
func TestForServiceJWTSecret(t *testing.T) {
	src := source(t, "staging")
	src.Env.Values = values.Merge(src.Env.Values, map[string]any{"services": map[string]any{
		"auth-server": map[string]any{"jwt": map[string]any{"existingSecret": "auth-jwt-2026"}}}})
	got, err := ForService(context.Background(), src, "auth-server", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"auth-server-secrets", "auth-jwt-2026"}, got.Secrets)
	require.Contains(t, got.SecretKeys, "JWT_REFRESH_PUBLIC_KEY")

	_, err = secretKeys(context.Background(), src, "auth-server", []string{"auth-server-secrets", "auth-jwt-2026", "extra"})
	require.ErrorContains(t, err, "Deployment auth-server reads Secrets auth-server-secrets, auth-jwt-2026, extra; appenv knows the keys of one credentials Secret and the JWT Secret auth-jwt-2026")
}

func source(t *testing.T, env string) Source {
	t.Helper()
	src, err := EmbeddedSource(env)
	require.NoError(t, err)
	return src
}

// The container is followed through envFrom: a reference to something the
// chart does not render is an error naming both.
func TestFromObjectsFollowsTheDeployment(t *testing.T) {
	const dep = `apiVersion: apps/v1
kind: Deployment
metadata: {name: auth-server}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: auth-server
          image: x
          envFrom:
            - configMapRef: {name: %s}
            - secretRef: {name: auth-server-secrets}
          env:
            - {name: EXTRA, value: "1"}
`
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: auth-server-config}\ndata: {PORT: \"8000\"}\n"
	objs, err := render.Decode(fmt.Sprintf(dep, "auth-server-config") + "---\n" + cm)
	require.NoError(t, err)
	got, err := fromObjects(objs, "x", "auth-server")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"PORT": "8000", "EXTRA": "1"}, got.Config)
	require.Equal(t, []string{"auth-server-secrets"}, got.Secrets)

	objs, err = render.Decode(fmt.Sprintf(dep, "elsewhere") + "---\n" + cm)
	require.NoError(t, err)
	_, err = fromObjects(objs, "x", "auth-server")
	require.ErrorContains(t, err, "Deployment auth-server reads ConfigMap elsewhere, which the chart does not render")

	_, err = fromObjects(objs, "x", "authz-server")
	require.ErrorContains(t, err, "the chart renders no Deployment authz-server")
}
