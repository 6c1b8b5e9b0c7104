package main

// Contract tests: each function is called against the FAKE session and the
// queries it sends are checked. They prove the shape of the calls (pinned
// images, cache volumes, service bindings, secrets, addresses) and that bad
// arguments are refused before anything is sent; the real runs are the
// end-to-end suite's job.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"dagger/krgeobuk/internal/dagger"
	"dagger/krgeobuk/internal/fakesession"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/itest"
)

func module() *Krgeobuk { return New(dag.Directory()) }

func TestBuildAPI(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	ctrs, err := module().Build(ctx, "auth-server", nil, "", nil, true, nil, "development", "0123abc", "", "", "")
	require.NoError(t, err)
	require.Len(t, ctrs, 1, "one platform by default")
	id, err := ctrs[0].ID(ctx)
	require.NoError(t, err)
	runtime := chainOf(t, string(id))
	all := flat(runtime)

	require.Equal(t, []string{build.NodeImage}, slices.Compact(argList(all, "from", "address")),
		"build and runtime stages both start from the pinned Node LTS")
	require.Contains(t, argList(all, "directory", "path"), "examples/auth-api", "the example API, asked for by name")
	require.Equal(t, []string{build.NPMCacheVolume}, slices.Compact(argList(all, "cacheVolume", "key")))
	require.Equal(t, []string{"/root/.npm"}, slices.Compact(argList(all, "withMountedCache", "path")))
	var dist []fakesession.Call
	for _, c := range calls(runtime, "withDirectory") {
		if c.Args["path"] == "/app/dist" {
			dist = chainOf(t, fmt.Sprint(c.Args["source"]))
		}
	}
	require.Equal(t, []string{"npm ci --no-audit --no-fund", "npm run build", "npm prune --omit=dev --no-audit --no-fund"}, execs(dist),
		"lockfile install on the cache volume, build, then production dependencies only")
	require.Equal(t, "/app/package.json", calls(dist, "withFile")[0].Args["path"], "dependencies install before the sources are copied")

	// The runtime stage itself: non-root, no build tools, the chart's ports.
	require.Equal(t, "from", runtime[1].Field)
	require.Equal(t, []string{build.APIUser}, argList(runtime, "withUser", "name"))
	require.Equal(t, []string{"8000", "8010"}, argList(runtime, "withExposedPort", "port"))
	require.Equal(t, []string{"[node dist/main.js]"}, argList(runtime, "withEntrypoint", "args"))
	require.Empty(t, calls(runtime, "withExec"), "nothing runs in the runtime stage")
	require.ElementsMatch(t, []string{"/app/node_modules", "/app/dist"}, argList(runtime, "withDirectory", "path"))
	for _, o := range argList(runtime, "withDirectory", "owner") {
		require.Equal(t, build.APIUser, o)
	}
	labels := map[string]string{}
	for _, c := range calls(runtime, "withLabel") {
		labels[fmt.Sprint(c.Args["name"])] = fmt.Sprint(c.Args["value"])
	}
	require.Equal(t, build.DefaultSource, labels["org.opencontainers.image.source"], "an example names this repository")
	require.Equal(t, "examples/auth-api", labels[build.ExampleLabel], "and says it is an example")
	require.Equal(t, "0123abc", labels["org.opencontainers.image.revision"])
	require.NotEmpty(t, labels["org.opencontainers.image.created"])
}

func TestBuildSPAUsesTheChartsNginxConf(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	src := dag.Directory().WithNewFile("package.json", "{}")
	ctrs, err := module().Build(ctx, "portal-client", src, "", nil, false, []dagger.Platform{"linux/amd64", "linux/arm64"}, "staging", "", "https://github.com/krgeobuk/portal-client", "", "")
	require.NoError(t, err)
	require.Len(t, ctrs, 2, "one container per platform")
	for i, want := range []string{"linux/amd64", "linux/arm64"} {
		id, err := ctrs[i].ID(ctx)
		require.NoError(t, err)
		runtime := chainOf(t, string(id))
		require.Equal(t, want, runtime[0].Args["platform"])
		require.Equal(t, build.NginxImage, runtime[1].Args["address"], "unprivileged nginx, pinned")
		require.Equal(t, []string{build.SPAUser}, argList(runtime, "withUser", "name"))
		require.Equal(t, []string{"8080"}, argList(runtime, "withExposedPort", "port"))
		files := calls(runtime, "withNewFile")
		require.Len(t, files, 1)
		require.Equal(t, "/etc/nginx/nginx.conf", files[0].Args["path"])
		require.Contains(t, files[0].Args["contents"], "listen 8080;", "the chart's nginx.conf")
		require.Contains(t, files[0].Args["contents"], "try_files $uri $uri/ /index.html;")
		require.Equal(t, []string{"/usr/share/nginx/html"}, argList(runtime, "withDirectory", "path"))
		all := flat(runtime)
		require.Contains(t, argList(all, "withNewFile", "path"), "package.json", "the given source, not the example")
		require.Equal(t, []string{"npm ci --no-audit --no-fund", "npm run build"}, execs(all))
		require.NotContains(t, argList(all, "directory", "path"), "examples/spa", "no example anywhere")
		labels := map[string]string{}
		for _, c := range calls(runtime, "withLabel") {
			labels[fmt.Sprint(c.Args["name"])] = fmt.Sprint(c.Args["value"])
		}
		require.Equal(t, "https://github.com/krgeobuk/portal-client", labels["org.opencontainers.image.source"], "--source-url labels a checkout")
		require.NotContains(t, labels, build.ExampleLabel)
		var dist []fakesession.Call
		for _, c := range calls(runtime, "withDirectory") {
			dist = chainOf(t, fmt.Sprint(c.Args["source"]))
		}
		require.Equal(t, "container", dist[0].Field)
		require.Nil(t, dist[0].Args["platform"], "the build stage runs once, on the engine's own platform")
	}
}

// A platform other than the engine's gets the API's build output copied in:
// allowed only when nothing in its production node_modules is tied to the
// engine's platform, which the lockfile and the built addons tell.
func TestBuildAPIForAnotherPlatformChecksItsDependencies(t *testing.T) {
	portable := `{"lockfileVersion":3,"packages":{"":{"name":"auth-server"},"node_modules/@nestjs/core":{"version":"10.0.0","hasInstallScript":true}}}`
	prebuilt := `{"lockfileVersion":3,"packages":{"":{"name":"auth-server"},"node_modules/@swc/core-linux-x64-gnu":{"version":"1.0.0","cpu":["x64"]}}}`
	for _, tc := range []struct {
		name, lock, addons, want string
	}{
		{name: "portable", lock: portable, addons: ""},
		{name: "prebuilt binary", lock: prebuilt, want: "node_modules/@swc/core-linux-x64-gnu"},
		{name: "native addon", lock: portable, addons: "node_modules/bcrypt/lib/binding/napi-v3/bcrypt_lib.node\n", want: "bcrypt_lib.node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recordFrom(t)
			fake.SetStdout(tc.addons)
			ctx := context.Background()
			src := dag.Directory().WithNewFile("package.json", `{"name":"auth-server"}`).WithNewFile("package-lock.json", tc.lock)
			ctrs, err := module().Build(ctx, "auth-server", src, "", nil, false, []dagger.Platform{"linux/amd64", "linux/arm64"}, "staging", "", "https://github.com/krgeobuk/auth-server", "", "")
			var asked []string
			for _, q := range fake.Queries() {
				asked = append(asked, q.Leaf().Field)
			}
			require.Contains(t, asked, "defaultPlatform")
			if tc.want != "" {
				require.ErrorContains(t, err, "build auth-server for linux/arm64")
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			require.Len(t, ctrs, 2)
			require.Contains(t, asked, "stdout", "the built node_modules were searched for native addons")
		})
	}
}

func TestPublish(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	const token = "ghp-contract-test-token-8c1f"
	password := dag.SetSecret("registry-password", token)
	authz := dag.Directory().WithNewFile("package.json", `{"name":"authz-server"}`).
		WithNewFile("package-lock.json", `{"lockfileVersion":3,"packages":{"":{"name":"authz-server"}}}`)
	client := dag.Directory().WithNewFile("package.json", `{"name":"auth-client"}`)
	host, logins := loginRegistry(t, "ci-bot", token)
	refs, err := module().Publish(ctx, host+"/krgeobuk", "0123abc", []string{"authz-server", "auth-client"}, nil, authz, client, nil, nil, nil, nil,
		"ci-bot", password, nil, []dagger.Platform{"linux/amd64", "linux/arm64"}, "development", "0123abc", "", "", "", nil, nil)
	require.NoError(t, err)
	require.Len(t, refs, 2)
	require.Regexp(t, `^`+regexp.QuoteMeta(host)+`/krgeobuk/authz-server@sha256:[0-9a-f]{64}$`, refs[0], "deploy order, pinned by digest")
	require.Regexp(t, `^`+regexp.QuoteMeta(host)+`/krgeobuk/auth-client@sha256:[0-9a-f]{64}$`, refs[1])
	require.Contains(t, logins(), "HEAD /v2/krgeobuk/authz-server/manifests/krgeobuk-login-check ci-bot:"+token, "the login is checked before the build")

	var published []fakesession.Query
	for _, q := range fake.Queries() {
		if q.Leaf().Field == "publish" {
			published = append(published, q)
		}
	}
	require.Len(t, published, 2)
	for i, svc := range []string{"authz-server", "auth-client"} {
		q := published[i]
		require.Equal(t, host+"/krgeobuk/"+svc+":0123abc", q.Leaf().Args["address"])
		variants, _ := q.Leaf().Args["platformVariants"].([]any)
		require.Len(t, variants, 1, "the second platform is a variant of one multi-platform image")
		auth := calls(q.Chain, "withRegistryAuth")
		require.Len(t, auth, 1)
		require.Equal(t, host, auth[0].Args["address"])
		require.Equal(t, "ci-bot", auth[0].Args["username"])
		secret := chainOf(t, fmt.Sprint(auth[0].Args["secret"]))
		require.Equal(t, "setSecret", secret[len(secret)-1].Field, "the password travels as a secret object")
		require.Contains(t, argList(flat(q.Chain), "withNewFile", "contents"), `{"name":"`+svc+`"}`, "each service built from its own checkout")
	}
	requireNoPlaintextOutsideSetSecret(t, []string{token})
}

// A wrong password is refused, naming the registry and the user, before
// anything is built or pushed, and the password is in no message.
func TestPublishChecksTheLoginBeforeBuilding(t *testing.T) {
	recordFrom(t)
	host, _ := loginRegistry(t, "ci-bot", "ghp-the-right-token")
	const wrong = "ghp-a-wrong-token-77a1"
	authz := dag.Directory().WithNewFile("package.json", `{"name":"authz-server"}`).
		WithNewFile("package-lock.json", `{"lockfileVersion":3,"packages":{"":{"name":"authz-server"}}}`)
	_, err := module().Publish(context.Background(), host+"/krgeobuk", "v1", []string{"authz-server"}, nil, authz, nil, nil, nil, nil, nil,
		"ci-bot", dag.SetSecret("registry-password", wrong), nil, nil, "development", "", "", "", "", nil, nil)
	require.EqualError(t, err, "publish: registry "+host+` refused the credentials of user "ci-bot" (HTTP 401)`)
	require.Empty(t, publishQueries(), "nothing pushed")
	for _, q := range fake.Queries() {
		require.NotEqual(t, "withExec", q.Leaf().Field, "nothing built")
	}
	requireNoPlaintextOutsideSetSecret(t, []string{wrong})
}

// loginRegistry is a stand-in registry (httptest) that asks for basic auth,
// accepts user:password only, and knows no manifest; logins lists every
// request as "METHOD PATH user:password".
func loginRegistry(t *testing.T, user, password string) (host string, logins func() []string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, pw, _ := r.BasicAuth()
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+u+":"+pw)
		mu.Unlock()
		if u != user || pw != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/v2/" {
			return
		}
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`, http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestIntegrationTestWiresTheChartsEnvironment(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	fake.SetStdout("tests passed\n")
	t.Cleanup(func() { fake.SetStdout("fake stdout\n") })
	src := dag.Directory().WithNewFile("package.json", `{"scripts":{"test":"node --test"}}`)
	out, err := module().IntegrationTest(ctx, "auth-server", src, "", nil, false, "staging", "", "", "", "")
	require.NoError(t, err)
	require.Contains(t, argList(flat(fake.Queries()[len(fake.Queries())-1].Chain), "withNewFile", "contents"), `{"scripts":{"test":"node --test"}}`,
		"the given checkout is tested")
	require.NoError(t, err)
	require.Equal(t, "tests passed\n", out)

	qs := fake.Queries()
	last := qs[len(qs)-1]
	require.Equal(t, "stdout", last.Leaf().Field)
	test := last.Chain
	require.Equal(t, []string{"npm ci --no-audit --no-fund", "npm test"}, execs(test), "the service's own test command, last")
	require.Equal(t, build.NodeImage, argList(test, "from", "address")[0])
	require.Equal(t, []string{build.NPMCacheVolume}, argList(flat(test), "cacheVolume", "key"))

	plain, secret := envVars(test)
	require.Equal(t, map[string]string{
		"NODE_ENV": "production", "PORT": "8000", "TCP_PORT": "8010", "LOG_LEVEL": "info",
		"MYSQL_HOST": "auth-mysql", "MYSQL_PORT": "3307", "MYSQL_DATABASE": "auth",
		"MYSQL_CONNECTION_LIMIT": "10", "MYSQL_MAX_IDLE": "2", "MYSQL_IDLE_TIMEOUT_MS": "60000", "MYSQL_CONNECT_TIMEOUT_MS": "10000",
		"REDIS_HOST": "auth-redis", "REDIS_PORT": "6380", "REDIS_DB": "0", "REDIS_CONNECT_TIMEOUT_MS": "5000",
	}, plain, "exactly the chart's ConfigMap for staging")
	sort.Strings(secret)
	require.Equal(t, []string{"JWT_ACCESS_PRIVATE_KEY", "JWT_ACCESS_PUBLIC_KEY", "JWT_REFRESH_PRIVATE_KEY", "JWT_REFRESH_PUBLIC_KEY",
		"MYSQL_PASSWORD", "MYSQL_USER", "REDIS_PASSWORD"}, secret, "exactly the Secrets' keys (credentials and JWT pairs), as secrets")

	bindings := calls(test, "withServiceBinding")
	require.Len(t, bindings, 2)
	stores := map[string][]fakesession.Call{}
	for _, b := range bindings {
		stores[fmt.Sprint(b.Args["alias"])] = chainOf(t, fmt.Sprint(b.Args["service"]))
	}
	mysql, redis := stores["auth-mysql"], stores["auth-redis"]
	require.NotNil(t, mysql, "MySQL bound under the chart's host name")
	require.NotNil(t, redis, "Redis bound under the chart's host name")

	require.Equal(t, []string{itest.MySQLImage}, argList(mysql, "from", "address"))
	require.Equal(t, []string{"3307"}, argList(mysql, "withExposedPort", "port"), "the chart's port")
	as := calls(mysql, "asService")
	require.Equal(t, []any{"mysqld", "--port=3307"}, as[0].Args["args"])
	require.Equal(t, true, as[0].Args["useEntrypoint"])
	require.Len(t, calls(mysql, "withDockerHealthcheck"), 1, "health-checked")
	// The engine runs health checks without the container's secret variables
	// (seen on the real engine): a check that needs a password never passes.
	for _, hc := range append(calls(mysql, "withDockerHealthcheck"), calls(redis, "withDockerHealthcheck")...) {
		require.NotContains(t, fmt.Sprint(hc.Args["args"]), "PASSWORD", "a health check must not need a secret")
	}
	mplain, msecret := envVars(mysql)
	require.Equal(t, map[string]string{"MYSQL_DATABASE": "auth"}, mplain)
	require.ElementsMatch(t, []string{"MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD"}, msecret)

	require.Equal(t, []string{itest.RedisImage}, argList(redis, "from", "address"))
	require.Equal(t, []string{"6380"}, argList(redis, "withExposedPort", "port"))
	require.Len(t, calls(redis, "withDockerHealthcheck"), 1)
	_, rsecret := envVars(redis)
	require.Equal(t, []string{"REDIS_PASSWORD"}, rsecret)
	require.Contains(t, fmt.Sprint(calls(redis, "asService")[0].Args["args"]), "port 6380")

	// The test's user and passwords are the same secret objects in the
	// stores and in the test container, and their values never appear
	// outside setSecret.
	var values []string
	for _, q := range qs {
		for _, c := range flat(q.Chain) {
			if c.Field == "setSecret" {
				values = append(values, fmt.Sprint(c.Args["plaintext"]))
			}
		}
	}
	require.GreaterOrEqual(t, len(values), 4)
	requireNoPlaintextOutsideSetSecret(t, values)
	secretID := func(chain []fakesession.Call, name string) any {
		for _, c := range calls(chain, "withSecretVariable") {
			if c.Args["name"] == name {
				return c.Args["secret"]
			}
		}
		return nil
	}
	require.Equal(t, secretID(mysql, "MYSQL_PASSWORD"), secretID(test, "MYSQL_PASSWORD"))
	require.Equal(t, secretID(redis, "REDIS_PASSWORD"), secretID(test, "REDIS_PASSWORD"))
}

func TestIntegrationTestNamedScriptAndMirrors(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	mirror := "127.0.0.1:5000/library/"
	_, err := module().IntegrationTest(ctx, "authz-server", dag.Directory(), "", nil, false, "development", "test:integration",
		mirror+"node:22.22.0-bookworm-slim", mirror+"mysql:8.4.6", mirror+"redis:7.4.11-alpine")
	require.NoError(t, err)
	qs := fake.Queries()
	test := qs[len(qs)-1].Chain
	require.Equal(t, "npm run test:integration", execs(test)[len(execs(test))-1])
	all := flat(test)
	require.ElementsMatch(t, []string{mirror + "node:22.22.0-bookworm-slim", mirror + "mysql:8.4.6", mirror + "redis:7.4.11-alpine"},
		argList(all, "from", "address"))
	aliases := argList(test, "withServiceBinding", "alias")
	require.Equal(t, []string{"authz-mysql", "authz-redis"}, aliases)
	plain, _ := envVars(test)
	require.Equal(t, "3308", plain["MYSQL_PORT"])
	require.Equal(t, "development", plain["NODE_ENV"])
}

func TestCheck(t *testing.T) {
	recordFrom(t)
	require.NoError(t, module().Check(context.Background(), "", nil))
	qs := fake.Queries()
	last := qs[len(qs)-1]
	require.Equal(t, "sync", last.Leaf().Field)
	for _, q := range qs[:len(qs)-1] {
		require.Equal(t, "id", q.Leaf().Field, "before the run, only IDs of its inputs are asked for")
	}
	chain := flat(last.Chain)
	require.Equal(t, build.GoImage, argList(chain, "from", "address")[0], "the pinned Go image")
	require.ElementsMatch(t, []string{"krgeobuk-go-mod", "krgeobuk-go-build", "krgeobuk-tools"}, argList(chain, "cacheVolume", "key"))
	ex := execs(chain)
	require.Equal(t, "make check-container", ex[len(ex)-1], "what any container can run, not .ci/run (whose e2e needs namespaces)")
	require.Contains(t, ex[len(ex)-2], "command -v shellcheck", "shellcheck is installed only when the image lacks it")
	require.Equal(t, []string{"/src"}, argList(chain, "withDirectory", "path"))
}

func TestCheckRunsTheGivenTargets(t *testing.T) {
	recordFrom(t)
	require.NoError(t, module().Check(context.Background(), "mirror.local/golang:1.26.8-bookworm", []string{"fmt-check", "shellcheck"}))
	qs := fake.Queries()
	chain := flat(qs[len(qs)-1].Chain)
	require.Equal(t, "mirror.local/golang:1.26.8-bookworm", argList(chain, "from", "address")[0])
	ex := execs(chain)
	require.Equal(t, "make fmt-check shellcheck", ex[len(ex)-1], "only the named targets, without .ci/run's installs")
}

// Every bad argument is refused before the function sends a single query.
func TestBadArgumentsFailBeforeAnyCall(t *testing.T) {
	ctx := context.Background()
	m := module()
	kubeconfig := dag.SetSecret("kubeconfig", "apiVersion: v1\nkind: Config\n")
	pw := dag.SetSecret("pw", "x")
	tests := []struct {
		name    string
		call    func() error
		wantErr string
	}{
		{"build: unknown service", func() error {
			_, err := m.Build(ctx, "billing-server", nil, "", nil, false, nil, "production", "", "", "", "")
			return err
		}, `unknown service "billing-server"`},
		{"build: unsupported platform", func() error {
			_, err := m.Build(ctx, "auth-server", nil, "", nil, false, []dagger.Platform{"windows/amd64"}, "production", "", "", "", "")
			return err
		}, `platform "windows/amd64" is not supported`},
		{"build: floating base image", func() error {
			_, err := m.Build(ctx, "auth-server", nil, "", nil, false, nil, "production", "", "", "node:latest", "")
			return err
		}, "the tag latest is not a pin"},
		{"build: unknown environment", func() error {
			_, err := m.Build(ctx, "auth-client", nil, "", nil, false, nil, "qa", "", "", "", "")
			return err
		}, `environment "qa": unknown`},
		{"build: unknown environment for an API too", func() error {
			_, err := m.Build(ctx, "auth-server", nil, "", nil, false, nil, "qa", "", "", "", "")
			return err
		}, `environment "qa": unknown`},
		{"publish: malformed registry", func() error {
			_, err := m.Publish(ctx, "https://ghcr.io/krgeobuk", "v1", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, "production", "", "", "", "", nil, nil)
			return err
		}, "without a scheme"},
		{"publish: registry without a host", func() error {
			_, err := m.Publish(ctx, "krgeobuk", "v1", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, "production", "", "", "", "", nil, nil)
			return err
		}, "the first part must be a registry host"},
		{"publish: user without password", func() error {
			_, err := m.Publish(ctx, "ghcr.io/krgeobuk", "v1", nil, nil, nil, nil, nil, nil, nil, nil, "ci-bot", nil, nil, nil, "production", "", "", "", "", nil, nil)
			return err
		}, "give both --username and --password"},

		{"integration-test: missing source", func() error {
			_, err := m.IntegrationTest(ctx, "auth-server", nil, "", nil, false, "staging", "", "", "", "")
			return err
		}, "integration-test auth-server: auth-server has no source: give its checkout (--source DIR) or a git ref (--git URL#REF)"},
		{"integration-test: an SPA", func() error {
			_, err := m.IntegrationTest(ctx, "auth-client", dag.Directory(), "", nil, false, "staging", "", "", "", "")
			return err
		}, "auth-client is an SPA"},
		{"integration-test: unknown service", func() error {
			_, err := m.IntegrationTest(ctx, "billing", dag.Directory(), "", nil, false, "staging", "", "", "", "")
			return err
		}, `unknown service "billing"`},
		{"integration-test: bad script", func() error {
			_, err := m.IntegrationTest(ctx, "auth-server", dag.Directory(), "", nil, false, "staging", "x; rm -rf /", "", "", "")
			return err
		}, "not a package.json script name"},
		{"check: floating go image", func() error { return m.Check(ctx, "golang:latest", nil) }, "the tag latest is not a pin"},
		{"check: target that is not a make target", func() error {
			return m.Check(ctx, "", []string{"test; rm -rf /"})
		}, `--target "test; rm -rf /" is not a make target name`},
		{"deploy: unknown environment", func() error {
			_, err := m.Deploy(ctx, "qa", kubeconfig, "apps", []string{"auth-server=ghcr.io/krgeobuk/auth-server:1"}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, `environment "qa": unknown`},
		{"deploy: no kubeconfig", func() error {
			_, err := m.Deploy(ctx, "staging", nil, "apps", []string{"auth-server=ghcr.io/krgeobuk/auth-server:1"}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, "--kubeconfig is required"},
		{"deploy: nothing to deploy", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "apps", nil, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, "nothing to deploy: give --image service=repository@sha256:..., or build and publish first: --registry and --tag with each service's source (--<service>-source DIR or --git service=URL#REF)"},
		{"deploy: malformed image pair", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "apps", []string{"auth-server"}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, `--image "auth-server": want service=repository@sha256`},
		{"deploy: malformed registry", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "apps", nil, "ghcr.io/Krgeobuk", "v1", nil, nil, nil, nil, nil, nil, nil, nil, "u", pw, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, `registry "ghcr.io/Krgeobuk"`},
		{"deploy: unknown format", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "apps", []string{"auth-server=x"}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "yaml", nil, nil)
			return err
		}, `--format "yaml"`},
		{"deploy: building the monitoring stack", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "monitoring", nil, "ghcr.io/krgeobuk", "v1", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, "--registry, --tag, --service and the services' sources build, publish and deploy the apps' images; the monitoring stack runs the images its chart names"},
		{"deploy: unknown stack", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "logging", nil, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "", "table", nil, nil)
			return err
		}, `--stack "logging": want one of apps, monitoring`},
		{"rollback: negative revision", func() error {
			_, err := m.Rollback(ctx, "production", kubeconfig, "apps", -1, false, nil, false, nil, "table")
			return err
		}, "--revision -1"},
		{"status: no kubeconfig", func() error {
			_, err := m.Status(ctx, "production", nil, "apps", nil, "table")
			return err
		}, "--kubeconfig is required"},
		{"history: unknown environment", func() error {
			_, err := m.History(ctx, "qa", kubeconfig, "apps", nil, "table")
			return err
		}, "history qa: refused\n"},
		{"history: unknown format", func() error {
			_, err := m.History(ctx, "staging", kubeconfig, "apps", nil, "yaml")
			return err
		}, `--format "yaml"`},
		{"promote: tag instead of digest", func() error {
			_, err := m.Promote(ctx, "staging", "production", []string{"auth-server=ghcr.io/krgeobuk/auth-server:1.4.2"}, nil, nil, nil, nil, false, "", "", nil, "", nil, nil, nil, "", "table")
			return err
		}, "is not pinned by digest"},
		{"promote: same environment", func() error {
			_, err := m.Promote(ctx, "staging", "staging", nil, kubeconfig, nil, kubeconfig, nil, false, "", "", nil, "", nil, nil, nil, "", "table")
			return err
		}, `--from and --to are both "staging"`},
		{"promote: malformed destination registry", func() error {
			_, err := m.Promote(ctx, "staging", "production", []string{"auth-server=ghcr.io/krgeobuk/auth-server@sha256:" + strings.Repeat("a", 64)},
				nil, nil, nil, nil, false, "ghcr.io/Krgeobuk", "", nil, "", nil, nil, nil, "", "table")
			return err
		}, `registry "ghcr.io/Krgeobuk"`},
		{"promote: nothing to check the images against", func() error {
			_, err := m.Promote(ctx, "staging", "production", []string{"auth-server=ghcr.io/krgeobuk/auth-server@sha256:" + strings.Repeat("a", 64)},
				nil, nil, kubeconfig, nil, false, "", "", nil, "", nil, nil, nil, "", "table")
			return err
		}, "promote: --kubeconfig is required: what is promoted must be what staging's current verified revision runs"},
		{"promote: nowhere to deploy", func() error {
			_, err := m.Promote(ctx, "staging", "production", nil, kubeconfig, nil, nil, nil, false, "", "", nil, "", nil, nil, nil, "", "table")
			return err
		}, "promote: --to-kubeconfig is required to deploy the promoted images to production (or --copy-only"},
		{"deploy: bad readiness URL", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "apps", []string{"auth-server=x"}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, []string{"auth-server"}, "", "table", nil, nil)
			return err
		}, `--readiness-url "auth-server": want service=URL`},
		{"deploy: prometheus URL with credentials", func() error {
			_, err := m.Deploy(ctx, "staging", kubeconfig, "apps", []string{"auth-server=x"}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, nil, false, nil, "http://ci:hunter2@prometheus:9090", "table", nil, nil)
			return err
		}, "--prometheus-url: credentials do not belong in a flag"},
		{"promote: prometheus URL without a scheme", func() error {
			_, err := m.Promote(ctx, "staging", "production", nil, kubeconfig, nil, kubeconfig, nil, false, "", "", nil, "", nil, nil, nil, "prometheus:9090", "table")
			return err
		}, "promote: --prometheus-url: want http://host:port or https://host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recordFrom(t)
			err := tt.call()
			require.ErrorContains(t, err, tt.wantErr)
			require.Empty(t, fake.Queries(), "no query may be sent for a bad argument")
		})
	}
}

// The kubeconfig reaches the deploy packages only through its secret: the
// function asks the session for the secret's plaintext and never passes the
// content anywhere else.
// A values file that is not a mapping of chart values is refused before the
// kubeconfig is even read.
func TestDeployRefusesValuesThatAreNotAMapping(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	kubeconfig := dag.SetSecret("kubeconfig", "apiVersion: v1\nkind: Config\n")
	values := dag.Directory().WithNewFile("bad.yaml", "- replicas: 3\n").File("bad.yaml")
	_, err := module().Deploy(ctx, "staging", kubeconfig, "apps", []string{"auth-server=ghcr.io/krgeobuk/auth-server:1"}, "", "", nil, nil, nil, nil, nil, nil, nil, nil, "", nil, nil, nil, nil, values, false, nil, "", "table", nil, nil)
	require.ErrorContains(t, err, "--values: not a YAML mapping of chart values")
	for _, q := range fake.Queries() {
		require.NotEqual(t, "plaintext", q.Leaf().Field, "the kubeconfig is not read for a refused call")
	}
}

func TestStatusReadsTheKubeconfigSecret(t *testing.T) {
	recordFrom(t)
	ctx := context.Background()
	const token = "deployer-token-7d2e"
	kubeconfig := dag.SetSecret("kubeconfig", fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: %s}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, token))
	tctx, cancel := context.WithTimeout(ctx, timeoutForUnreachable)
	defer cancel()
	out, err := module().Status(tctx, "staging", kubeconfig, "apps", nil, "table")
	require.Error(t, err, "nothing listens on 127.0.0.1:1")
	require.NotContains(t, err.Error()+out, token, "the report is redacted")
	var leaves []string
	for _, q := range fake.Queries() {
		leaves = append(leaves, q.Leaf().Field)
	}
	require.Equal(t, []string{"plaintext"}, leaves, "one query: the secret's plaintext")
	require.True(t, slices.ContainsFunc(fake.Queries()[0].Chain, func(c fakesession.Call) bool { return c.Field == "setSecret" }))
}
