package moduletest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"dagger.io/dagger"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"

	"github.com/krgeobuk/krgeobuk-infra/e2e/daggercall"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// ownAPI is a small NestJS API of the test's own, not the example: one
// readiness route that names it, so the response proves which source ran.
const ownAPI = `import 'reflect-metadata';
import { createServer } from 'net';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';

@Controller('health')
class HealthController {
  @Get('ready')
  ready() {
    return { status: 'ok', app: 'e2e-own-api' };
  }
}

@Module({ controllers: [HealthController] })
class AppModule {}

// The image exposes the chart's http and tcp ports, and the engine waits
// for every exposed port before a service is up: listen on both.
NestFactory.create(AppModule, { logger: ['error', 'warn'] })
  .then(async (app) => {
    await app.listen(Number(process.env.PORT ?? 8000), '0.0.0.0');
    createServer((socket) => socket.end()).listen(Number(process.env.TCP_PORT ?? 8010), '0.0.0.0');
  })
  .catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
`

const ownTSConfig = `{"compilerOptions": {"target": "ES2021", "module": "commonjs", "strict": true, "experimentalDecorators": true,
  "emitDecoratorMetadata": true, "skipLibCheck": true, "outDir": "dist", "rootDir": "src", "types": ["node"]}, "include": ["src"]}
`

const ownSPAIndex = `<!doctype html>
<html><head><meta charset="utf-8" /><title>e2e own spa</title></head>
<body><p id="own"></p><script type="module" src="/src/app.js"></script></body></html>
`

const ownSPAScript = "document.querySelector('#own').textContent = 'built from a source that is not an example';\n"

// writeOwnSources writes an API and an SPA of the test's own into a temp dir,
// outside the repository. The engine has no network: the node image's npm
// cache holds the examples' dependencies, so the packages declare the same
// dependencies and their lockfiles are the examples' with the package renamed
// (npm ci checks the dependencies, not the name).
func writeOwnSources(t *testing.T, root string) (api, spa string) {
	t.Helper()
	dir := t.TempDir()
	api, spa = filepath.Join(dir, "own-api"), filepath.Join(dir, "own-spa")
	example := func(kind catalog.Kind) string { return filepath.Join(root, build.Examples[kind]) }

	var apiPkg struct {
		Dependencies    map[string]string `json:"dependencies"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	readJSON(t, filepath.Join(example(catalog.KindAPI), "package.json"), &apiPkg)
	writeFiles(t, api, map[string]string{
		"package.json": mustJSON(t, map[string]any{"name": "e2e-own-api", "version": "0.1.0", "private": true,
			"scripts": map[string]string{"build": "tsc -p tsconfig.build.json"}, "dependencies": apiPkg.Dependencies,
			"devDependencies": apiPkg.DevDependencies}),
		"package-lock.json":   renamedLock(t, filepath.Join(example(catalog.KindAPI), "package-lock.json"), "e2e-own-api"),
		"tsconfig.json":       ownTSConfig,
		"tsconfig.build.json": ownTSConfig,
		"src/main.ts":         ownAPI,
	})

	var spaPkg struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	readJSON(t, filepath.Join(example(catalog.KindSPA), "package.json"), &spaPkg)
	writeFiles(t, spa, map[string]string{
		"package.json": mustJSON(t, map[string]any{"name": "e2e-own-spa", "version": "0.1.0", "private": true, "type": "module",
			"scripts": map[string]string{"build": "vite build"}, "devDependencies": spaPkg.DevDependencies}),
		"package-lock.json": renamedLock(t, filepath.Join(example(catalog.KindSPA), "package-lock.json"), "e2e-own-spa"),
		"index.html":        ownSPAIndex,
		"src/app.js":        ownSPAScript,
	})
	return api, spa
}

func renamedLock(t *testing.T, path, pkg string) string {
	t.Helper()
	var lock map[string]any
	readJSON(t, path, &lock)
	lock["name"], lock["version"] = pkg, "0.1.0"
	packages, ok := lock["packages"].(map[string]any)
	require.True(t, ok, "%s: a lockfile v2+ with packages", path)
	rootPkg, ok := packages[""].(map[string]any)
	require.True(t, ok, "%s: the root package", path)
	rootPkg["name"], rootPkg["version"] = pkg, "0.1.0"
	return mustJSON(t, lock)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, v), path)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	require.NoError(t, err)
	return string(b) + "\n"
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
}

// testOwnSources builds an API and an SPA the test wrote itself (no example
// anywhere) through build and publish, runs what was built, and reads the
// published images' labels: the module builds what it is given.
func testOwnSources(ctx context.Context, t *testing.T, dag *dagger.Client, m *daggercall.Module, images baseImages, root string, reg secureRegistry, key signingKey) {
	api, spa := writeOwnSources(t, root)
	const apiURL = "https://github.com/krgeobuk/e2e-own-api"
	svcs := map[string]catalog.Service{}
	for _, name := range []string{"auth-server", "portal-client"} {
		s, err := catalog.Lookup(name)
		require.NoError(t, err)
		svcs[name] = s
	}

	start := time.Now()
	out, err := m.Call(ctx, "build", []string{"--service", "auth-server", "--source", api, "--env", "development",
		"--revision", "0e2e0aa", "--source-url", apiURL, "--node-image", images.Node})
	require.NoError(t, err)
	built := loadOne(t, dag, out)
	timed("build own API", start)
	body := get(ctx, t, dag, images, built, svcs["auth-server"], "/health/ready")
	require.JSONEq(t, `{"status":"ok","app":"e2e-own-api"}`, body, "the image runs the given source, not the example")
	source, err := built.Label(ctx, "org.opencontainers.image.source")
	require.NoError(t, err)
	require.Equal(t, apiURL, source)
	ex, err := built.Label(ctx, build.ExampleLabel)
	require.NoError(t, err)
	require.Empty(t, ex, "not marked as an example")

	start = time.Now()
	out, err = m.Call(ctx, "build", []string{"--service", "portal-client", "--source", spa, "--env", "development",
		"--node-image", images.Node, "--nginx-image", images.Nginx})
	require.NoError(t, err)
	built = loadOne(t, dag, out)
	timed("build own SPA", start)
	body = get(ctx, t, dag, images, built, svcs["portal-client"], "/")
	require.Contains(t, body, "<title>e2e own spa</title>")
	require.Regexp(t, `<script type="module"[^>]* src="/assets/[^"]+\.js"`, body, "the built bundle of the given source")

	// publish for staging from the two checkouts: real sources are what
	// staging builds (the examples are refused there: testBadArguments), signed
	// (staging requires it) to the registry that checks credentials and TLS.
	start = time.Now()
	out, err = m.Call(ctx, "publish", append([]string{"--registry", reg.Host + "/own", "--tag", "own-1", "--env", "staging",
		"--service", "auth-server", "--service", "portal-client", "--auth-server-source", api, "--portal-client-source", spa,
		"--revision", "0e2e0bb", "--source-url", apiURL, "--node-image", images.Node, "--nginx-image", images.Nginx,
		"--signing-key", "file:" + key.private}, reg.login()...))
	timed("publish own sources", start)
	require.NoError(t, err)
	var refs []string
	require.NoError(t, json.Unmarshal([]byte(out), &refs), out)
	require.Len(t, refs, 2)
	signed := map[string]string{}
	for _, ref := range refs {
		d, err := name.NewDigest(ref)
		require.NoError(t, err, ref)
		signed[ref] = ref
		img, err := remote.Image(d, reg.options(t)...)
		require.NoError(t, err, "%s resolves in the registry", ref)
		cfg, err := img.ConfigFile()
		require.NoError(t, err)
		require.Equal(t, "0e2e0bb", cfg.Config.Labels["org.opencontainers.image.revision"], ref)
		require.NotContains(t, cfg.Config.Labels, build.ExampleLabel, ref)
	}
	requireSigned(ctx, t, key, reg.options(t), signed)
}

func loadOne(t *testing.T, dag *dagger.Client, out string) *dagger.Container {
	t.Helper()
	var ids []struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(out), &ids), "build returns a list of containers: %s", out)
	require.Len(t, ids, 1, "one container for the engine's platform")
	return dag.LoadContainerFromID(dagger.ContainerID(ids[0].ID))
}
