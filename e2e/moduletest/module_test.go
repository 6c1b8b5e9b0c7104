// Package moduletest runs this repository's Dagger module (dagger.json at the root, source ci/)
// on a real engine through the CLI-free runner, function by function, in the order a release
// takes. It needs `make e2e`: an engine started with the builtin Go SDK image, the local base
// images in its registry (their references in the file $KRGEOBUK_E2E_IMAGES), and this process
// in the engine's network namespace.
package moduletest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"dagger.io/dagger"
	"github.com/google/go-containerregistry/pkg/name"
	ociv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/krgeobuk/krgeobuk-infra/e2e/daggercall"
	"github.com/krgeobuk/krgeobuk-infra/e2e/daggersession"
	"github.com/krgeobuk/krgeobuk-infra/internal/deploytest"
	"github.com/krgeobuk/krgeobuk-infra/internal/realnodetest"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv"
	"github.com/krgeobuk/krgeobuk-infra/internal/testenv/realnode"
	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/gate"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/itest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/report"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/stack"
)

// gatewayRegistry is the registry `engine up` serves inside the engine's network namespace, at
// the address module containers reach it by (the engine's CNI bridge): deploy resolves digests
// there, the engine pushes there, and this process (in that namespace) reads there.
const gatewayRegistry = gatewayIP + ":5000"

// gatewayIP is the engine's CNI bridge address in its network namespace, where this process runs.
const gatewayIP = "10.87.0.1"

// baseImages are references to the module's base images, one per image argument.
type baseImages struct {
	Node   string `json:"node"`
	Nginx  string `json:"nginx"`
	MySQL  string `json:"mysql"`
	Redis  string `json:"redis"`
	Golang string `json:"golang"`
}

func (b baseImages) byName() map[string]string {
	return map[string]string{"node": b.Node, "nginx": b.Nginx, "mysql": b.MySQL, "redis": b.Redis, "golang": b.Golang}
}

// pushedImages is what `images push` printed into $KRGEOBUK_E2E_IMAGES.
type pushedImages struct {
	// StandIns are the local stand-ins by their exact digest references.
	StandIns baseImages `json:"standins"`
	// Defaults are the module's default references less the digest, which the
	// engine's docker.io mirror resolves to the same stand-ins.
	Defaults baseImages `json:"defaults"`
}

func readPushedImages(t *testing.T) pushedImages {
	t.Helper()
	path := os.Getenv("KRGEOBUK_E2E_IMAGES")
	require.NotEmpty(t, path, "KRGEOBUK_E2E_IMAGES names the base images' JSON: run through `make e2e`")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var p pushedImages
	require.NoError(t, json.Unmarshal(data, &p))
	for what, ref := range p.StandIns.byName() {
		require.NotEmpty(t, ref, "%s: no %s image", path, what)
	}
	return p
}

// loadBaseImages returns the stand-ins by digest: what the module gets as an
// override (a mirror) pinned by digest.
func loadBaseImages(t *testing.T) baseImages {
	t.Helper()
	return readPushedImages(t).StandIns
}

// loadDefaultImages returns the module's own default references, less the
// digest a stand-in cannot have (TestDefaultImagesArePinned checks the pins):
// the calls given these resolve the defaults' names and tags through the
// engine's docker.io mirror, as the module would on a machine with a mirror.
func loadDefaultImages(t *testing.T) baseImages {
	t.Helper()
	got := readPushedImages(t).Defaults
	want := baseImages{Node: build.NodeImage, Nginx: build.NginxImage, MySQL: itest.MySQLImage, Redis: itest.RedisImage, Golang: build.GoImage}.byName()
	for what, ref := range got.byName() {
		tagged, _, _ := strings.Cut(want[what], "@")
		require.Equal(t, tagged, ref, "the %s image pushed under the module's default name and tag", what)
	}
	return got
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "dagger.json")); err == nil {
			return d
		}
	}
	t.Fatalf("no dagger.json above %s: run the test binary from inside the repository", wd)
	return ""
}

// TestModuleOnARealEngine loads the module once (every load in a new session runs codegen, which
// type-checks the module and its Helm and client-go dependencies) and runs every function on the
// real engine in the order a release takes: check, build (and run what was built; the examples by
// name, then an API and an SPA the test writes itself), publish,
// integration-test, deploy, a bad deploy rolled back automatically, a manual rollback, status,
// history, promote, and the monitoring stack's deploy (a bad one rolled back too), status and
// history.
func TestModuleOnARealEngine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	host, err := daggersession.RunnerHost()
	require.NoError(t, err, "run through `make e2e`")
	s, err := daggersession.Start(ctx, host)
	require.NoError(t, err, "run through `make e2e`")
	defer s.Close()
	images := loadBaseImages(t)
	defaults := loadDefaultImages(t)
	sec := loadSecureRegistry(t)
	key := newSigningKey(t)
	root := teamCheckout(t, repoRoot(t), key)

	start := time.Now()
	m, err := daggercall.LoadModule(ctx, s, root)
	require.NoError(t, err, "load the module (the engine needs its builtin Go SDK image: engine up --go-sdk-layout)")
	timed("first module load", start)

	// Every function runs through the real dagger CLI but build: its test runs the containers
	// build returns in this session, and an object `dagger call` returns ends with its session.
	cli := openCLI(ctx, t, root)
	t.Run("functions and their types", func(t *testing.T) { testSignatures(t, m) })
	t.Run("bad arguments", func(t *testing.T) { testBadArguments(ctx, t, cli) })
	t.Run("check", func(t *testing.T) { testCheck(ctx, t, cli, images) })
	t.Run("build and run", func(t *testing.T) { testBuild(ctx, t, s.Dagger(), m, images) })
	t.Run("build, run and publish sources that are not the examples", func(t *testing.T) { testOwnSources(ctx, t, s.Dagger(), m, images, root, sec, key) })
	var v1, v2 map[string]string
	t.Run("publish", func(t *testing.T) {
		// the first release is built on the defaults' names through the mirror and published,
		// signed with its SBOMs, to the registry that checks credentials and TLS, as one image
		// index per service holding linux/amd64 and linux/arm64; the second on the stand-ins by
		// digest (an override), unsigned, to the plain one
		signed := target{registry: sec.Host + "/krgeobuk", flags: append(sec.login(), "--signing-key", "file:"+key.private), opts: sec.options(t),
			platforms: []string{"linux/amd64", "linux/arm64"}}
		v1 = publish(ctx, t, cli, defaults, "e2e-1", "0e2e001", signed)
		requireSigned(ctx, t, key, sec.options(t), v1)
		testBothPlatformsStart(ctx, t, s.Dagger(), sec, v1)
		v2 = publish(ctx, t, cli, images, "e2e-2", "0e2e002", target{registry: gatewayRegistry + "/krgeobuk"})
		for _, svc := range catalog.Names() {
			require.NotEqual(t, v1[svc], v2[svc], "another revision label is another image")
		}
		testRegistryRefusals(ctx, t, cli, sec, key)
	})
	t.Run("integration-test", func(t *testing.T) {
		start := time.Now()
		out, err := cli.Call(ctx, "integration-test", []string{"--service", "auth-server", "--source", filepath.Join(root, "examples/auth-api"),
			"--env", "development", "--node-image", defaults.Node, "--mysql-image", defaults.MySQL, "--redis-image", defaults.Redis})
		timed("integration-test", start)
		require.NoError(t, err)
		require.Contains(t, out, "# fail 0")
		require.Regexp(t, `# pass [1-9]`, out)
	})
	t.Run("deploy, automatic and manual rollback, status, history, promote, the monitoring stack", func(t *testing.T) {
		require.NotEmpty(t, v1, "publish must pass first")
		testDeploy(ctx, t, cli, v1, v2, sec, key)
	})
}

func testSignatures(t *testing.T, m *daggercall.Module) {
	require.Equal(t, "krgeobuk", m.Name)
	var names []string
	for n := range m.Functions {
		names = append(names, n)
	}
	require.ElementsMatch(t, []string{"build", "check", "deploy", "history", "integrationTest", "promote", "publish", "rollback", "status"}, names)
	types := map[string]daggercall.TypeRef{}
	for _, a := range m.Functions["deploy"].Args {
		types[a.Name] = a.Type
	}
	require.Equal(t, daggercall.TypeRef{Kind: daggercall.KindObject, Name: "Secret"}, types["kubeconfig"], "deploy --kubeconfig is a Secret")
	require.Equal(t, daggercall.KindObject, types["password"].Kind, "a registry password is a Secret too")
	require.Equal(t, "Secret", types["password"].Name)
	for _, fn := range []string{"publish", "deploy"} {
		args := map[string]daggercall.TypeRef{}
		for _, a := range m.Functions[fn].Args {
			args[daggercall.Kebab(a.Name)] = a.Type
		}
		for _, svc := range catalog.Names() {
			require.Equal(t, "Directory", args[svc+"-source"].Name, "%s --%s-source is a directory", fn, svc)
		}
		require.Equal(t, daggercall.KindList, args["git"].Kind, "%s --git service=URL#REF, repeatable", fn)
		require.Equal(t, "Secret", args["git-token"].Name, "%s --git-token is a Secret", fn)
		require.Equal(t, daggercall.KindList, args["example"].Kind, "%s --example names services", fn)
	}
	for _, fn := range []string{"deploy", "rollback", "status", "history"} {
		var stack *daggercall.Arg
		for _, a := range m.Functions[fn].Args {
			if a.Name == "stack" {
				stack = &a
			}
		}
		require.NotNil(t, stack, "%s --stack", fn)
		require.Equal(t, `"apps"`, stack.Default, "%s acts on the apps unless --stack monitoring", fn)
	}
}

func testBadArguments(ctx context.Context, t *testing.T, m caller) {
	tests := []struct {
		name, function string
		argv           []string
		wantErr        string
	}{
		{name: "an unpinned Go image, refused by the module's own code", function: "check",
			argv: []string{"--go-image", "golang"}, wantErr: `check: go image: image "golang" has no tag or digest; pin it`},
		{name: "an unknown service", function: "build",
			argv: []string{"--service", "billing-server"}, wantErr: `unknown service "billing-server"`},
		{name: "a build without a source", function: "build",
			argv:    []string{"--service", "auth-server", "--env", "development"},
			wantErr: "build: auth-server has no source: give its checkout (--source DIR) or a git ref (--git URL#REF), or --example to build this repository's example"},
		{name: "the examples for staging", function: "publish",
			argv:    []string{"--registry", gatewayRegistry + "/krgeobuk", "--tag", "refused", "--env", "staging", "--example", "auth-server", "--service", "auth-server"},
			wantErr: "--example auth-server: the examples are never built for staging (only for development)"},
		{name: "a deploy without images and without sources", function: "deploy",
			argv:    []string{"--env", "production", "--kubeconfig", "env:HOME", "--registry", gatewayRegistry + "/krgeobuk", "--tag", "refused"},
			wantErr: "sources: auth-server has no source: give its checkout (--auth-server-source DIR) or a git ref (--git auth-server=URL#REF)"},
		{name: "a missing required flag, refused before the engine is asked", function: "deploy",
			argv: []string{"--env", "staging"}, wantErr: `required flag(s) "kubeconfig" not set`},
		{name: "an unknown stack, refused by the module's own code", function: "status",
			argv: []string{"--env", "staging", "--kubeconfig", "env:HOME", "--stack", "logging"}, wantErr: `--stack "logging": want one of apps, monitoring`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Call(ctx, tt.function, tt.argv)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// timed prints one line of the timing report `make e2e` shows.
func timed(step string, start time.Time) {
	fmt.Printf("e2e timing: %-34s %7.1fs\n", step, time.Since(start).Seconds())
}

func testCheck(ctx context.Context, t *testing.T, m caller, images baseImages) {
	start := time.Now()
	_, err := m.Call(ctx, "check", []string{"--go-image", images.Golang, "--target", "fmt-check", "--target", "shellcheck"})
	timed("check (fmt-check, shellcheck)", start)
	require.NoError(t, err, "gofmt and shellcheck pass on this tree, so they must pass in the engine")

	_, err = m.Call(ctx, "check", []string{"--go-image", images.Golang, "--target", "no-such-target"})
	require.ErrorContains(t, err, "make no-such-target exited with code 2")
	require.ErrorContains(t, err, "No rule to make target 'no-such-target'", "make's own words reach the caller")
}

// testBuild builds every service from the examples (asked for by name) and runs what was built:
// each API with throwaway MySQL and Redis wired as the chart wires them (and
// throwaway JWT key pairs) must answer /health/ready; each SPA must serve its
// index.html.
func testBuild(ctx context.Context, t *testing.T, dag *dagger.Client, m *daggercall.Module, images baseImages) {
	for _, svc := range catalog.All() {
		t.Run(svc.Name, func(t *testing.T) {
			start := time.Now()
			out, err := m.Call(ctx, "build", []string{"--service", svc.Name, "--example", "--env", "development", "--revision", "0e2e000",
				"--node-image", images.Node, "--nginx-image", images.Nginx})
			require.NoError(t, err)
			var ids []struct{ ID string }
			require.NoError(t, json.Unmarshal([]byte(out), &ids), "build returns a list of containers: %s", out)
			require.Len(t, ids, 1, "one container for the engine's platform")
			built := dag.LoadContainerFromID(dagger.ContainerID(ids[0].ID))
			timed("build "+svc.Name, start)

			start = time.Now()
			var body string
			if svc.IsAPI() {
				body = get(ctx, t, dag, images, withStores(ctx, t, dag, built, images, svc.Name), svc, svc.ReadinessPath)
				require.JSONEq(t, `{"status":"ok","checks":{"mysql":"up","redis":"up","jwt":"up"}}`, body)
			} else {
				body = get(ctx, t, dag, images, built, svc, "/")
				require.Contains(t, body, "<title>krgeobuk</title>")
				require.Regexp(t, `<script type="module"[^>]* src="/assets/[^"]+\.js"`, body, "the built bundle, not the source page")
			}
			timed("run "+svc.Name, start)
		})
	}
}

// withStores binds an API image to throwaway MySQL and Redis under the
// chart's host names and gives it the chart's environment, as a pod gets it.
func withStores(ctx context.Context, t *testing.T, dag *dagger.Client, api *dagger.Container, images baseImages, service string) *dagger.Container {
	src, err := appenv.EmbeddedSource("development")
	require.NoError(t, err)
	senv, err := appenv.ForService(ctx, src, service, nil)
	require.NoError(t, err)
	stores, err := itest.Stores(senv)
	require.NoError(t, err)
	creds, err := secrets(dag, senv)
	require.NoError(t, err)
	for _, st := range stores {
		if st.Engine == "mysql" {
			api = api.WithServiceBinding(st.Alias, mysqlStore(dag, images.MySQL, st.Port, senv.Config["MYSQL_DATABASE"], creds))
		} else {
			api = api.WithServiceBinding(st.Alias, redisStore(dag, images.Redis, st.Port, creds[itest.KeyRedisPassword]))
		}
	}
	for _, k := range senv.Keys() {
		if v, ok := senv.Config[k]; ok {
			api = api.WithEnvVariable(k, v)
		} else {
			api = api.WithSecretVariable(k, creds[k])
		}
	}
	return api
}

// probe polls a URL from Node.js (the node base image is the client): at
// most 30 attempts a second apart, printing the body of the first 2xx answer.
const probe = `const url = process.argv[1];
(async () => {
  for (let i = 0; i < 30; i++) {
    try {
      const r = await fetch(url);
      const body = await r.text();
      if (r.ok) { process.stdout.write(body); return; }
      console.error(r.status + " " + body);
    } catch (e) { console.error(String(e.cause || e)); }
    await new Promise((done) => setTimeout(done, 1000));
  }
  process.exit(1);
})();`

// get starts ctr as a service with its own entrypoint and fetches path from
// a client container, the way a probe would, polling as the API may answer
// 503 until its stores connect.
func get(ctx context.Context, t *testing.T, dag *dagger.Client, images baseImages, ctr *dagger.Container, svc catalog.Service, path string) string {
	srv := ctr.AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true})
	url := fmt.Sprintf("http://%s:%d%s", svc.Name, svc.HTTPPort, path)
	out, err := dag.Container().From(images.Node).
		WithServiceBinding(svc.Name, srv).
		WithEnvVariable("CACHE_BUST", time.Now().String()).
		WithExec([]string{"node", "-e", probe, url}).
		Stdout(ctx)
	var ee *dagger.ExecError
	if errors.As(err, &ee) {
		require.NoError(t, err, "GET %s:\n%s\n%s", url, ee.Stdout, ee.Stderr)
	}
	require.NoError(t, err, "GET %s", url)
	return out
}

// target is where a publish goes: the registry path, the module's flags for it (login, key)
// and this process's login to read it back.
type target struct {
	registry string
	flags    []string
	opts     []remote.Option
	// platforms are given with --platform; none: the engine's own.
	platforms []string
}

// publish pushes all four services to the target registry and checks that
// each returned reference resolves there, by digest, to an image carrying
// the revision it was built from.
func publish(ctx context.Context, t *testing.T, m caller, images baseImages, tag, revision string, to target) map[string]string {
	t.Helper()
	start := time.Now()
	args := append([]string{"--registry", to.registry, "--tag", tag, "--env", "development",
		"--revision", revision, "--node-image", images.Node, "--nginx-image", images.Nginx}, to.flags...)
	for _, svc := range catalog.Names() {
		args = append(args, "--example", svc)
	}
	if len(to.platforms) > 0 {
		// one flag, comma-separated, as the README writes it (the CLI splits it)
		args = append(args, "--platform", strings.Join(to.platforms, ","))
	}
	out, err := m.Call(ctx, "publish", args)
	timed("publish "+tag, start)
	require.NoError(t, err)
	var refs []string
	require.NoError(t, json.Unmarshal([]byte(out), &refs), "publish returns the references: %s", out)
	byService := map[string]string{}
	for _, ref := range refs {
		d, err := name.NewDigest(ref)
		require.NoError(t, err, "publish returns repository@sha256:…, got %q", ref)
		svc := d.Context().RepositoryStr()[strings.LastIndex(d.Context().RepositoryStr(), "/")+1:]
		byService[svc] = ref
		for _, img := range resolvePublished(t, d, to) {
			cfg, err := img.ConfigFile()
			require.NoError(t, err)
			require.Equal(t, revision, cfg.Config.Labels["org.opencontainers.image.revision"])
		}
		tagged, err := remote.Head(d.Context().Tag(tag), to.opts...)
		require.NoError(t, err)
		require.Equal(t, d.DigestStr(), tagged.Digest.String(), "the tag points at the returned digest")
	}
	require.ElementsMatch(t, catalog.Names(), keys(byService))
	return byService
}

// resolvePublished resolves d in the registry: one image, pinned by that digest, or, for several
// platforms, one image index whose manifests are exactly those platforms' images, in order.
func resolvePublished(t *testing.T, d name.Digest, to target) []ociv1.Image {
	t.Helper()
	if len(to.platforms) < 2 {
		img, err := remote.Image(d, to.opts...)
		require.NoError(t, err, "%s resolves in the registry", d)
		got, err := img.Digest()
		require.NoError(t, err)
		require.Equal(t, d.DigestStr(), got.String())
		return []ociv1.Image{img}
	}
	idx, err := remote.Index(d, to.opts...)
	require.NoError(t, err, "%s is an image index in the registry", d)
	got, err := idx.Digest()
	require.NoError(t, err)
	require.Equal(t, d.DigestStr(), got.String())
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	var platforms []string
	var out []ociv1.Image
	for _, m := range im.Manifests {
		require.NotNil(t, m.Platform, "%s: every manifest of the index names its platform", d)
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
		img, err := idx.Image(m.Digest)
		require.NoError(t, err)
		cfg, err := img.ConfigFile()
		require.NoError(t, err)
		require.Equal(t, m.Platform.Architecture, cfg.Architecture, "%s: the image of %s says so in its config too", d, m.Platform)
		out = append(out, img)
	}
	require.Equal(t, to.platforms, platforms, "%s: one index, one image per platform asked for", d)
	return out
}

// testBothPlatformsStart pulls each published index back as linux/arm64 and as linux/amd64
// from the authenticating registry and runs it: on arm64 (under the engine's emulator) each API
// image's Node.js and each SPA image's nginx, checking the chart's nginx.conf, start; each reports
// its own platform's machine (qemu answers uname for the emulated one).
func testBothPlatformsStart(ctx context.Context, t *testing.T, dag *dagger.Client, sec secureRegistry, published map[string]string) {
	password := dag.SetSecret("e2e-registry-password", sec.password)
	for _, svc := range catalog.All() {
		for _, tc := range []struct{ platform, machine, nodeArch string }{{"linux/arm64", "aarch64", "arm64"}, {"linux/amd64", "x86_64", "x64"}} {
			t.Run(svc.Name+" on "+tc.platform, func(t *testing.T) {
				start := time.Now()
				cmd := "uname -m && node --version && node -p process.arch"
				if !svc.IsAPI() {
					cmd = "uname -m && nginx -t 2>&1"
				}
				out, err := dag.Container(dagger.ContainerOpts{Platform: dagger.Platform(tc.platform)}).
					WithRegistryAuth(sec.Host, sec.Username, password).
					From(published[svc.Name]).
					WithExec([]string{"sh", "-c", cmd}).
					Stdout(ctx)
				timed("start "+svc.Name+" "+tc.platform, start)
				require.NoError(t, err)
				lines := strings.Split(strings.TrimSpace(out), "\n")
				require.Equal(t, tc.machine, lines[0], "the %s image reports a %s machine", tc.platform, tc.machine)
				if svc.IsAPI() {
					require.Regexp(t, `^v\d+\.\d+\.\d+$`, lines[1], "node --version")
					require.Equal(t, tc.nodeArch, lines[2], "node's own process.arch")
				} else {
					require.Contains(t, out, "syntax is ok")
					require.Contains(t, out, "test is successful", "nginx -t with the chart's nginx.conf")
				}
			})
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// testDeploy deploys the published digests to a real node (pods that run the images the engine
// built, pulled from the engine's registry; real MariaDB and Redis on the data-server address)
// through the module (kubeconfig as a Secret, the API server reached through a host service),
// then a release whose auth-server image exits 1, rolled back by itself, then a manual rollback to
// the first release, then status and history, then a promotion of what was verified and a partial
// deploy; then the monitoring stack (testMonitoring).
func testDeploy(ctx context.Context, t *testing.T, m caller, v1, v2 map[string]string, sec secureRegistry, key signingKey) {
	cluster, err := realnode.Start(ctx, realnode.Options{Name: "e2e", Log: os.Stderr})
	require.NoError(t, err)
	t.Cleanup(func() {
		// Inside the engine's pid namespace a process of the node can outlive Stop's bounded wait
		// (it is reaped by the engine's init later; engine down checks nothing is left). That the
		// node leaves nothing on a host is internal/testenv/realnode's TestStopLeavesNothing.
		if err := cluster.Stop(); err != nil {
			t.Logf("e2e: %v", err)
		}
	})
	// The node pulls what the engine published, under the same references; from the
	// authenticating registry with its CA and account, as a node-level pull credential.
	require.NoError(t, cluster.MirrorRegistry(gatewayRegistry))
	require.NoError(t, cluster.MirrorRegistry(sec.Host, realnode.MirrorTLS(sec.CAFile), realnode.MirrorBasicAuth(sec.Username, sec.password)))
	cs, err := kubernetes.NewForConfig(cluster.RESTConfig())
	require.NoError(t, err)
	env, err := environment.Load(k8s.Environments, "development")
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: env.Namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	stores := realnodetest.StartDataServer(t, cluster, cs, "development", env.Namespace)
	valuesYAML, err := yaml.Marshal(stores.Values)
	require.NoError(t, err)
	storeValues := filepath.Join(t.TempDir(), "data-server.yaml")
	require.NoError(t, os.WriteFile(storeValues, valuesYAML, 0o600))

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, cluster.Kubeconfig(), 0o600))
	cluster0 := cluster.RESTConfig().Host
	apiPort := cluster0[strings.LastIndex(cluster0, ":")+1:]
	common := []string{"--env", "development", "--kubeconfig", "file:" + kubeconfig, "--kube-api", "tcp://127.0.0.1:" + apiPort, "--format", "json"}
	deployArgs := func(images map[string]string, extra ...string) []string {
		args := append([]string{}, common...)
		for _, svc := range catalog.Names() {
			args = append(args, "--image", svc+"="+images[svc])
		}
		return append(append(append(args, "--values", storeValues), sec.login()...), extra...)
	}

	// development requires no signatures; --signed-by makes this deploy require the test key's
	first := call(ctx, t, m, "deploy", deployArgs(v1, "--signed-by", key.public), true)
	require.Equal(t, 1, first.Revision)
	require.Contains(t, stepDetail(first, "preflight/signatures"), "4 images signed for their digests")
	requireImages(ctx, t, cs, env.Namespace, v1)
	for _, s := range first.Services {
		if svc, _ := catalog.Lookup(s.Name); svc.IsAPI() {
			require.Equal(t, "ready", s.Readiness, "%s answered /health/ready through a port-forward, both stores up", s.Name)
		}
	}

	// the unsigned release is refused at preflight, before anything changes
	unsigned := call(ctx, t, m, "deploy", deployArgs(v2, "--signed-by", key.public), false)
	require.Equal(t, report.Refused, unsigned.Verdict)
	require.Contains(t, unsigned.Error, "not signed: no signature referrer")
	requireImages(ctx, t, cs, env.Namespace, v1)

	second := call(ctx, t, m, "deploy", deployArgs(v2), true)
	require.Equal(t, 2, second.Revision)
	requireImages(ctx, t, cs, env.Namespace, v2)

	// A release whose auth-server image exits 1 (the published image, its entrypoint changed).
	crash := crashImage(t, v2["auth-server"])
	failed := call(ctx, t, m, "deploy", deployArgs(withImage(v2, "auth-server", crash)), false)
	require.Equal(t, report.RolledBack, failed.Verdict)
	require.Equal(t, 2, failed.RolledBackTo, "back to the newest verified revision")
	require.NotEmpty(t, failed.Problems)
	require.Equal(t, "auth-server", failed.Problems[0].Service)
	require.Contains(t, []gate.Class{gate.CrashLoop, gate.ExitError}, failed.Problems[0].Class, "the report says why: %+v", failed.Problems[0])
	require.Contains(t, strings.Join(failed.Problems[0].Logs, "\n"), crashLine, "and quotes the container's last line")
	requireImages(ctx, t, cs, env.Namespace, v2)

	back := call(ctx, t, m, "rollback", append(append([]string{}, common...), "--revision", "1"), true)
	require.Equal(t, 1, back.RolledBackTo)
	requireImages(ctx, t, cs, env.Namespace, v1)

	status := call(ctx, t, m, "status", common, true)
	require.Equal(t, back.Revision, status.Revision)
	require.Len(t, status.Services, len(catalog.Names()))
	for _, s := range status.Services {
		require.Equal(t, v1[s.Name], s.Image, "status shows what runs")
	}

	history := call(ctx, t, m, "history", common, true)
	require.Len(t, history.History, back.Revision, "every revision: two deploys, the bad one, its rollback, the manual rollback")
	var verified []bool
	for _, r := range history.History {
		verified = append(verified, r.Verified)
	}
	require.Equal(t, []bool{true, true, false, true, true}, verified, "only the bad release is unverified")
	require.Equal(t, v1, history.History[0].Images)
	require.Equal(t, v1, history.History[4].Images)

	// promote copies what development runs verified (revision 5: the first release's images)
	// to another environment's repositories, by digest, without a rebuild. --copy-only: staging
	// would share development's namespace on this one cluster, so nothing is deployed there.
	start := time.Now()
	// staging requires signatures by the key this checkout commits: v1's verify at the source,
	// and their signatures and SBOMs travel with them.
	sourceLogin := []string{"--source-username", sec.Username, "--source-password", "file:" + sec.PasswordFile, "--registry-ca", sec.CAFile}
	out, err := m.Call(ctx, "promote", append([]string{"--from", "development", "--to", "staging", "--kubeconfig", "file:" + kubeconfig,
		"--kube-api", "tcp://127.0.0.1:" + apiPort, "--to-registry", gatewayRegistry + "/promoted", "--copy-only"}, sourceLogin...))
	timed("promote", start)
	require.NoError(t, err)
	require.Contains(t, out, "promote development -> staging: the images of development's verified revision 5")
	require.Equal(t, len(catalog.Names()), strings.Count(out, "(copied, with 2 referrers (signatures, SBOMs))"), out)
	promoted := map[string]string{}
	for svc, ref := range v1 {
		from, err := name.NewDigest(ref)
		require.NoError(t, err)
		to, err := name.NewDigest(gatewayRegistry + "/promoted/" + svc + "@" + from.DigestStr())
		require.NoError(t, err)
		_, err = remote.Head(to)
		require.NoError(t, err, "%s was promoted by digest", svc)
		promoted[svc] = to.String()
	}
	requireSigned(ctx, t, key, nil, promoted)

	// promote refuses an image development does not run verified (v2 was rolled back from and
	// revision 5 runs v1), naming both digests, and copies nothing.
	_, err = m.Call(ctx, "promote", append([]string{"--from", "development", "--to", "staging", "--kubeconfig", "file:" + kubeconfig,
		"--kube-api", "tcp://127.0.0.1:" + apiPort, "--to-registry", gatewayRegistry + "/refused", "--copy-only", "--image", "auth-server=" + v2["auth-server"]}, sourceLogin...))
	require.ErrorContains(t, err, "is not verified in development: its verified revision 5 runs")
	v2auth, err := name.NewDigest(v2["auth-server"])
	require.NoError(t, err)
	refused, err := name.NewDigest(gatewayRegistry + "/refused/auth-server@" + v2auth.DigestStr())
	require.NoError(t, err)
	_, err = remote.Head(refused)
	require.Error(t, err, "nothing copied")

	// a partial deploy through the module: authz-server alone moves to v2, the other three keep
	// revision 5's digests and their rollout revisions. (authz-server's v2 ReplicaSet exists from
	// revision 2: the Deployment controller scales it up again rather than making a new one.)
	before := rolloutRevisions(ctx, t, cs, env.Namespace)
	partial := call(ctx, t, m, "deploy", append(append(append([]string{}, common...), "--service", "authz-server", "--image", "authz-server="+v2["authz-server"], "--values", storeValues), sec.login()...), true)
	require.Len(t, partial.Kept, len(catalog.Names())-1)
	after := rolloutRevisions(ctx, t, cs, env.Namespace)
	for _, svc := range catalog.Names() {
		if svc == "authz-server" {
			require.NotEqual(t, before[svc], after[svc], "authz-server rolled")
			continue
		}
		require.Equal(t, before[svc], after[svc], "%s did not roll", svc)
	}
	requireImages(ctx, t, cs, env.Namespace, map[string]string{"authz-server": v2["authz-server"], "auth-server": v1["auth-server"]})

	testMonitoring(ctx, t, m)
}

// crashLine is what the crashing image prints before it exits 1.
const crashLine = "auth-server: settings unreadable, exiting"

// crashImage pushes ref's image with an entrypoint that prints crashLine and exits 1, and
// returns its reference by digest.
func crashImage(t *testing.T, ref string) string {
	t.Helper()
	src, err := name.NewDigest(ref)
	require.NoError(t, err)
	img, err := remote.Image(src)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cfg := cf.Config.DeepCopy()
	cfg.Entrypoint, cfg.Cmd = []string{"node", "-e", "console.error(" + strconv.Quote(crashLine) + "); process.exit(1)"}, nil
	img, err = mutate.Config(img, *cfg)
	require.NoError(t, err)
	tag := src.Context().Tag("crash")
	require.NoError(t, remote.Write(tag, img))
	d, err := img.Digest()
	require.NoError(t, err)
	return src.Context().Digest(d.String()).String()
}

func withImage(images map[string]string, service, ref string) map[string]string {
	out := map[string]string{}
	for k, v := range images {
		out[k] = v
	}
	out[service] = ref
	return out
}

// testMonitoring deploys the monitoring stack through the module (deploy --stack monitoring) to
// the same cluster: stand-in images of Prometheus, Alertmanager and Grafana pushed to the gateway
// registry by exact tag, pinned by digest at preflight; the rollout gate watches the two
// StatefulSets and the Deployment and the readiness gate asks each where --readiness-url sends it
// (internal/deploytest's stand-ins: kwok's pods run nothing). A Prometheus that crash-loops is rolled back by itself, the report naming the
// StatefulSet and the reason; status and history read the monitoring release.
func testMonitoring(ctx context.Context, t *testing.T, m caller) {
	// Stand-in images of Prometheus, Alertmanager and Grafana cannot run: the monitoring stack
	// goes to a simulated cluster (kwok), whose pods run nothing. Its readiness is answered by
	// internal/deploytest's stand-ins (named so), which answer as each workload's pod template
	// says, on an address the module's containers reach; the checks go there by --readiness-url.
	cluster, err := testenv.Start(ctx, testenv.Options{Name: "e2e-mon"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cluster.Stop()) })
	cs, err := kubernetes.NewForConfig(cluster.RESTConfig())
	require.NoError(t, err)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, cluster.Kubeconfig(), 0o600))
	host := cluster.RESTConfig().Host
	common := []string{"--env", "development", "--kubeconfig", "file:" + kubeconfig, "--kube-api", "tcp://127.0.0.1:" + host[strings.LastIndex(host, ":")+1:], "--format", "json"}
	env, err := environment.Load(k8s.Environments, "development")
	require.NoError(t, err)
	ns := env.Monitoring.Namespace
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	apps := deploytest.NewApps(cs)
	apps.Listen = gatewayIP + ":0"
	t.Cleanup(apps.Close)
	var readiness []string
	for component, p := range stack.MonitoringProbes() {
		ep, err := apps.Readiness(ctx, ns, gate.Check{Name: component, Service: env.Monitoring.Release + "-" + component, Port: p.PortName, Path: p.Path})
		require.NoError(t, err)
		readiness = append(readiness, "--readiness-url", component+"="+ep.URL)
	}
	versions := map[string]string{"prometheus": "v3.15.1", "alertmanager": "v0.35.0", "grafana": "12.2.0"}
	tags, digests := map[string]string{}, map[string]string{}
	for component, version := range versions {
		img, err := random.Image(1024, 1)
		require.NoError(t, err)
		ref, err := name.NewTag(gatewayRegistry + "/monitoring/" + component + ":" + version)
		require.NoError(t, err)
		require.NoError(t, remote.Write(ref, img), "push the %s stand-in", component)
		d, err := img.Digest()
		require.NoError(t, err)
		tags[component], digests[component] = ref.String(), ref.Context().Name()+"@"+d.String()
	}
	args := append(append([]string{}, common...), "--stack", "monitoring")
	deployArgs := func(extra ...string) []string {
		extra = append(append([]string{}, readiness...), extra...)
		out := append([]string{}, args...)
		for component, tag := range tags {
			out = append(out, "--image", component+"="+tag)
		}
		return append(out, extra...)
	}

	first := call(ctx, t, m, "deploy", deployArgs(), true)
	require.Equal(t, report.Verified, first.Verdict)
	require.Equal(t, "monitoring", first.Stack)
	require.Equal(t, ns, first.Namespace)
	require.Equal(t, 1, first.Revision)
	require.Len(t, first.Services, len(versions))
	for _, s := range first.Services {
		require.Equal(t, digests[s.Name], s.Image, "%s runs its image by digest", s.Name)
		require.Equal(t, "ready", s.Readiness, s.Name)
	}
	require.Positive(t, apps.Requests(), "the readiness gate asked the stand-ins")
	sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, env.Monitoring.Release+"-prometheus", metav1.GetOptions{})
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(sts.Spec.Template.Spec.Containers[0].Image, "@"+strings.SplitN(digests["prometheus"], "@", 2)[1]))

	bad := filepath.Join(t.TempDir(), "prometheus-crashloop.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("prometheus:\n  podLabels:\n    "+testenv.FaultLabel+": "+testenv.FaultCrashLoop+"\n"), 0o644))
	failed := call(ctx, t, m, "deploy", deployArgs("--values", bad), false)
	require.Equal(t, report.RolledBack, failed.Verdict)
	require.Equal(t, 1, failed.RolledBackTo)
	require.NotEmpty(t, failed.Problems)
	require.Equal(t, "prometheus", failed.Problems[0].Service)
	require.Equal(t, "StatefulSet/"+env.Monitoring.Release+"-prometheus", failed.Problems[0].Workload, "the report names the workload")
	require.Equal(t, "CrashLoopBackOff", failed.Problems[0].Reason, "and why")
	sts, err = cs.AppsV1().StatefulSets(ns).Get(ctx, env.Monitoring.Release+"-prometheus", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotContains(t, sts.Spec.Template.Labels, testenv.FaultLabel, "the bad pod template is gone")
	require.Equal(t, sts.Status.UpdateRevision, sts.Status.CurrentRevision, "the StatefulSet finished its rollback")

	status := call(ctx, t, m, "status", args, true)
	require.Equal(t, failed.RollbackRevision, status.Revision)
	require.Len(t, status.Services, len(versions))
	history := call(ctx, t, m, "history", args, true)
	var verified []bool
	for _, r := range history.History {
		verified = append(verified, r.Verified)
	}
	require.Equal(t, []bool{true, false, true}, verified, "only the bad release is unverified")
}

// call runs a cluster function with --format json and returns its report;
// a failing call's report is read from the error, where the module puts it.
func call(ctx context.Context, t *testing.T, m caller, function string, args []string, wantOK bool) report.Result {
	t.Helper()
	start := time.Now()
	out, err := m.Call(ctx, function, args)
	timed(function, start)
	if wantOK {
		require.NoError(t, err)
	} else {
		require.Error(t, err)
		out = err.Error()
	}
	i := strings.Index(out, "{")
	require.GreaterOrEqual(t, i, 0, "a JSON report in %q", out)
	var res report.Result
	require.NoError(t, json.NewDecoder(strings.NewReader(out[i:])).Decode(&res), out)
	require.Equal(t, wantOK, res.OK, out)
	return res
}

// replicaSets lists each Deployment's ReplicaSets by name (the name carries the pod-template hash).
// rolloutRevisions returns each Deployment's rollout revision (the Deployment controller's
// deployment.kubernetes.io/revision), which changes exactly when the Deployment rolls.
func rolloutRevisions(ctx context.Context, t *testing.T, cs kubernetes.Interface, namespace string) map[string]string {
	t.Helper()
	list, err := cs.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	out := map[string]string{}
	for _, d := range list.Items {
		out[d.Name] = d.Annotations["deployment.kubernetes.io/revision"]
	}
	return out
}

func requireImages(ctx context.Context, t *testing.T, cs kubernetes.Interface, namespace string, want map[string]string) {
	t.Helper()
	for svc, ref := range want {
		d, err := cs.AppsV1().Deployments(namespace).Get(ctx, svc, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, ref, d.Spec.Template.Spec.Containers[0].Image, "%s runs the published digest", svc)
	}
}
