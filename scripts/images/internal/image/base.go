package image

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/krgeobuk/krgeobuk-infra/internal/emulation"
	"github.com/krgeobuk/krgeobuk-infra/internal/preflight"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/itest"
	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/rootfs"
)

// BaseRecipe versions how the base images are made; bump it when a recipe
// below changes.
const BaseRecipe = "base-r1"

// NPMCache is the node image's pre-filled npm cache: not /root/.npm, which
// ci/graphs hides under a cache volume.
const NPMCache = "/var/cache/krgeobuk-npm"

//go:embed files/mysql-entrypoint.sh
var mysqlEntrypoint []byte

const stdPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// nginxDefault serves /usr/share/nginx/html on 8080 as an unprivileged
// user; ci/graphs replaces it with the chart's nginx.conf.
const nginxDefault = `worker_processes auto;
pid /tmp/nginx.pid;
error_log /dev/stderr warn;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /dev/stdout;
  client_body_temp_path /tmp/client_body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  server {
    listen 8080;
    root /usr/share/nginx/html;
  }
}
`

// Base is one e2e base image: Debian packages and a few setup steps. The
// names say what each stands for; Stands says what really is inside.
type Base struct {
	Name   string // node, nginx, mysql, redis: the module's image arguments
	Stands string
	// Default is the module's pinned reference this image stands in for.
	Default  string
	Packages []string
	// Inputs are repository files whose content goes into the image.
	Inputs []string
	// Content is the recipe's own file content that goes into the image
	// (part of the cache key).
	Content string
	// Setup runs after the packages are installed; emu is the emulator a
	// foreign-architecture rootfs's programs run with (nil for amd64).
	Setup  func(ctx context.Context, repo, root string, emu *emulation.Emulator) error
	Config v1.Config
	// Arch is empty for the host's amd64; "arm64" is a variant bootstrapped
	// natively and configured under emulation (see Arm64Variants).
	Arch string
}

// Arm64Variants are the linux/arm64 images pushed beside the amd64 ones of
// the same name, as one image index: the runtime bases of a multi-platform
// publish. The module builds natively and copies the output into them, so
// the node variant carries Node.js only: no npm and no npm cache (npm runs
// 30x slower emulated), hence no npm_config_* in its environment.
// debootstrap resolves and fetches their packages natively (--include);
// only the packages' configuration and the setup steps run emulated.
func Arm64Variants() []Base {
	var out []Base
	for _, b := range BaseImages() {
		switch b.Name {
		case "node":
			b.Stands = "node:22 for linux/arm64 (Debian 12's nodejs 18, no npm: a runtime base)"
			b.Packages = []string{"nodejs", "ca-certificates"}
			b.Inputs, b.Setup = nil, nil
			b.Config.Env = []string{stdPath}
		case "nginx":
			b.Stands = "nginxinc/nginx-unprivileged for linux/arm64 (Debian 12's nginx as uid 101 on 8080)"
		default:
			continue
		}
		b.Arch = "arm64"
		out = append(out, b)
	}
	return out
}

// variants are b and its arm64 variant, if it has one.
func variants(b Base) []Base {
	out := []Base{b}
	for _, v := range Arm64Variants() {
		if v.Name == b.Name {
			out = append(out, v)
		}
	}
	return out
}

// BaseImages are the images the e2e tests pass to the module.
func BaseImages() []Base {
	return []Base{
		{
			Name: "node", Stands: "node:22 (Debian 12's nodejs 18 and npm 9, with an npm cache pre-filled from the examples' lockfiles)",
			Default:  build.NodeImage,
			Packages: []string{"nodejs", "npm", "ca-certificates"},
			Inputs:   []string{"examples/auth-api/package-lock.json", "examples/auth-api/package.json", "examples/spa/package-lock.json", "examples/spa/package.json"},
			Setup:    setupNode,
			Config: v1.Config{
				Env: []string{stdPath, "npm_config_cache=" + NPMCache, "npm_config_offline=true",
					"npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false"},
				Cmd: []string{"node"}, WorkingDir: "/",
			},
		},
		{
			Name: "nginx", Stands: "nginxinc/nginx-unprivileged (Debian 12's nginx as uid 101 on 8080)",
			Default:  build.NginxImage,
			Packages: []string{"nginx"},
			Setup:    setupNginx,
			Content:  nginxDefault,
			Config: v1.Config{
				Env: []string{stdPath}, User: "101:101", WorkingDir: "/",
				Cmd:          []string{"nginx", "-g", "daemon off;"},
				ExposedPorts: map[string]struct{}{"8080/tcp": {}},
			},
		},
		{
			Name: "mysql", Stands: "mysql:8 (Debian 12's MariaDB 10.11 with a MySQL-image-like entrypoint)",
			Default:  itest.MySQLImage,
			Packages: []string{"mariadb-server", "mariadb-client"},
			Setup:    setupMySQL,
			Content:  string(mysqlEntrypoint),
			Config: v1.Config{
				Env: []string{stdPath}, WorkingDir: "/",
				Entrypoint:   []string{"/usr/local/bin/docker-entrypoint.sh"},
				Cmd:          []string{"mysqld"},
				ExposedPorts: map[string]struct{}{"3306/tcp": {}},
			},
		},
		{
			// check's Go image: the module installs Node.js only when the image lacks it, and
			// the engine has no network, so this one carries Node.js, npm and the lint tools.
			Name: "golang", Stands: "golang:1.26.8-bookworm (Debian 12 with the host's Go toolchain, git, make, shellcheck, nodejs and npm)",
			Default:  build.GoImage,
			Packages: []string{"git", "make", "shellcheck", "nodejs", "npm", "ca-certificates"},
			Content:  "go toolchain " + runtime.Version(),
			Setup:    setupGolang,
			Config: v1.Config{
				Env:        []string{"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOPATH=/go", "GOTOOLCHAIN=local"},
				Cmd:        []string{"bash"},
				WorkingDir: "/go",
			},
		},
		{
			Name: "redis", Stands: "redis:7 (Debian 12's redis-server 7.0)",
			Default:  itest.RedisImage,
			Packages: []string{"redis-server", "redis-tools"},
			Config: v1.Config{
				Env: []string{stdPath}, WorkingDir: "/",
				Cmd:          []string{"redis-server", "--protected-mode", "no"},
				ExposedPorts: map[string]struct{}{"6379/tcp": {}},
			},
		},
	}
}

// Bases builds and pushes the base images.
type Bases struct {
	Repo  string
	Cache string
	Log   io.Writer

	emu *emulation.Emulator // fetched when an arm64 variant is first built
}

// Key is b's cache key: the recipe version, name, architecture (for a
// variant only, so the amd64 keys and their warm layouts stay as they were),
// packages and inputs.
func (s *Bases) Key(b Base) (string, error) {
	parts := []string{BaseRecipe, b.Name}
	if b.Arch != "" {
		parts = append(parts, "arch="+b.Arch)
	}
	parts = append(parts, strings.Join(b.Packages, " "), fmt.Sprint(b.Config), b.Content)
	for _, in := range b.Inputs {
		h, err := HashFiles(filepath.Join(s.Repo, in))
		if err != nil {
			return "", fmt.Errorf("image %s: %w", b.Name, err)
		}
		parts = append(parts, in, h)
	}
	return Key(parts...), nil
}

// Tag is the exact tag an image is pushed under.
func (s *Bases) Tag(b Base) (string, error) {
	k, err := s.Key(b)
	if err != nil {
		return "", err
	}
	if b.Arch != "" {
		return "bookworm-" + b.Arch + "-" + BaseRecipe + "-" + k, nil
	}
	return "bookworm-" + BaseRecipe + "-" + k, nil
}

// PushTag is the tag b is pushed under: its own Tag, or, for an image with
// an arm64 variant, one whose key covers both, so the tag names the index.
func (s *Bases) PushTag(b Base) (string, error) {
	vs := variants(b)
	if len(vs) == 1 {
		return s.Tag(b)
	}
	var keys []string
	for _, v := range vs {
		k, err := s.Key(v)
		if err != nil {
			return "", err
		}
		keys = append(keys, k)
	}
	return "bookworm-" + BaseRecipe + "-" + Key(keys...), nil
}

// LayoutPath is where b's layout lives in the cache.
func (s *Bases) LayoutPath(b Base) (string, error) {
	t, err := s.Tag(b)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.Cache, "dagger-images", b.Name, t, "layout"), nil
}

// Build returns b's layout, building it when the cache lacks it.
func (s *Bases) Build(ctx context.Context, b Base) (string, error) {
	log := s.Log
	if log == nil {
		log = io.Discard
	}
	out, err := s.LayoutPath(b)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(out, "index.json")); err == nil {
		return out, nil
	}
	if err := BasePreflight(b, filepath.Dir(out)).Check(); err != nil {
		return "", err
	}
	fmt.Fprintf(log, "image %s: building (%s)\n", b.Name, b.Stands)
	work := filepath.Join(filepath.Dir(out), "work")
	_ = os.RemoveAll(work)
	defer func() { _ = os.RemoveAll(work) }()
	root := filepath.Join(work, "rootfs")
	if b.Arch != "" {
		if err := s.buildForeign(ctx, b, root, out, log); err != nil {
			return "", err
		}
		return out, nil
	}
	base, err := rootfs.BaseTarball(ctx, filepath.Join(s.Cache, "dagger-images"), "bookworm")
	if err != nil {
		return "", err
	}
	if err := rootfs.Extract(ctx, base, root); err != nil {
		return "", err
	}
	if err := rootfs.AptInstall(ctx, root, b.Packages...); err != nil {
		return "", fmt.Errorf("image %s: %w", b.Name, err)
	}
	if b.Setup != nil {
		if err := b.Setup(ctx, s.Repo, root, nil); err != nil {
			return "", fmt.Errorf("image %s: %w", b.Name, err)
		}
		if err := rootfs.Tidy(root); err != nil {
			return "", err
		}
	}
	if err := writeImage(b, root, out); err != nil {
		return "", err
	}
	return out, nil
}

// buildForeign bootstraps b's rootfs for b.Arch at root (first stage natively,
// second stage emulated), runs its setup emulated and writes its layout to
// out, logging each phase's time.
func (s *Bases) buildForeign(ctx context.Context, b Base, root, out string, log io.Writer) error {
	emu, err := s.emulator(ctx, log)
	if err != nil {
		return fmt.Errorf("image %s (%s): %w", b.Name, b.Arch, err)
	}
	phase := func(what string, f func() error) error {
		start := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("image %s (%s): %s: %w", b.Name, b.Arch, what, err)
		}
		fmt.Fprintf(log, "image %s (%s): %s in %s\n", b.Name, b.Arch, what, time.Since(start).Round(time.Millisecond))
		return nil
	}
	if err := phase("debootstrap first stage (native)", func() error {
		return rootfs.FirstStage(ctx, root, "bookworm", b.Arch, b.Packages)
	}); err != nil {
		return err
	}
	if err := phase("debootstrap second stage (emulated)", func() error { return rootfs.SecondStage(ctx, root, emu) }); err != nil {
		return err
	}
	if err := phase("setup (emulated)", func() error {
		if b.Setup != nil {
			if err := b.Setup(ctx, s.Repo, root, emu); err != nil {
				return err
			}
		}
		return rootfs.Tidy(root)
	}); err != nil {
		return err
	}
	return phase("layer and layout", func() error { return writeImage(b, root, out) })
}

// writeImage writes the layout at out of root as b's one layer, for b's
// architecture.
func writeImage(b Base, root, out string) error {
	tar := filepath.Join(filepath.Dir(root), "layer.tar")
	if err := Layer(tar, root, nil); err != nil {
		return err
	}
	arch := b.Arch
	if arch == "" {
		arch = "amd64"
	}
	img, err := AssembleFor(arch, []string{tar}, b.Config)
	if err != nil {
		return err
	}
	return WriteLayout(out, img)
}

// emulator is the cached qemu-aarch64-static, fetched on first use.
func (s *Bases) emulator(ctx context.Context, log io.Writer) (*emulation.Emulator, error) {
	if s.emu != nil {
		return s.emu, nil
	}
	e, err := emulation.Fetch(ctx, s.Cache, func(f string, a ...any) { fmt.Fprintf(log, f+"\n", a...) })
	if err != nil {
		return nil, err
	}
	s.emu = &e
	return s.emu, nil
}

// BasePreflight is what building b into dir needs: the rootfs tools and room
// for its rootfs, layer tarball and layout (an estimate; the golang image
// carries a Go toolchain, the node image an npm cache).
func BasePreflight(b Base, dir string) preflight.Step {
	tools := map[string]string{}
	for k, v := range RootfsTools {
		tools[k] = v
	}
	if b.Name == "golang" {
		tools["go"] = ""
	}
	if b.Arch != "" {
		// the emulator is fetched with apt and unpacked from its .deb
		tools["apt-get"], tools["apt-cache"], tools["dpkg-deb"] = "apt", "apt", "dpkg"
	}
	return preflight.Step{
		Name:  "images base (" + b.Name + archSuffix(b) + ")",
		Rerun: "make images (or: go -C scripts/images run . base)",
		Tools: tools,
		Dirs:  []preflight.Dir{{Path: dir, Need: 3 * preflight.GiB, What: "the " + b.Name + " image's rootfs, layer and layout"}},
	}
}

func archSuffix(b Base) string {
	if b.Arch == "" {
		return ""
	}
	return ", " + b.Arch
}

// BuildAll builds every base image and its arm64 variant, and returns name
// (name-arm64 for a variant) → layout path.
func (s *Bases) BuildAll(ctx context.Context) (map[string]string, error) {
	outs := map[string]string{}
	for _, b := range BaseImages() {
		for _, v := range variants(b) {
			out, err := s.Build(ctx, v)
			if err != nil {
				return nil, err
			}
			key := v.Name
			if v.Arch != "" {
				key += "-" + v.Arch
			}
			outs[key] = out
		}
	}
	return outs, nil
}

// Pushed is what Push pushed, by image name: each stand-in by its exact
// reference, and the module's default reference it stands in for, less the
// digest (a stand-in cannot have the real image's digest), which the engine's
// docker.io mirror resolves to that stand-in.
type Pushed struct {
	StandIns map[string]string `json:"standins"`
	Defaults map[string]string `json:"defaults"`
}

// Push builds (if needed) and pushes every base image to registry (plain
// HTTP allowed) as <registry>/krgeobuk-e2e/<name>:<tag>, and again under the
// repository and tag of its Default as the docker.io mirror at registry
// serves them (docker.io/library/node:22 is <registry>/library/node:22).
func (s *Bases) Push(ctx context.Context, registry string) (Pushed, error) {
	if _, err := name.NewRegistry(registry, name.StrictValidation); err != nil || strings.ContainsAny(registry, "/@") {
		return Pushed{}, fmt.Errorf("push: registry %q is not a host[:port] address", registry)
	}
	out := Pushed{StandIns: map[string]string{}, Defaults: map[string]string{}}
	for _, b := range BaseImages() {
		tag, err := s.PushTag(b)
		if err != nil {
			return Pushed{}, err
		}
		ref, err := name.NewTag(fmt.Sprintf("%s/krgeobuk-e2e/%s:%s", registry, b.Name, tag), name.Insecure, name.StrictValidation)
		if err != nil {
			return Pushed{}, fmt.Errorf("image %s: registry %q: %w", b.Name, registry, err)
		}
		def, mirrored, err := mirroredDefault(b, registry)
		if err != nil {
			return Pushed{}, err
		}
		w, err := s.pushable(ctx, b)
		if err != nil {
			return Pushed{}, err
		}
		for _, to := range []name.Tag{ref, mirrored} {
			if err := remote.Push(to, w, remote.WithContext(ctx)); err != nil {
				return Pushed{}, fmt.Errorf("push %s: %w", to, err)
			}
		}
		d, err := w.Digest()
		if err != nil {
			return Pushed{}, err
		}
		out.StandIns[b.Name] = ref.String() + "@" + d.String()
		out.Defaults[b.Name] = def
	}
	return out, nil
}

// taggable is an image or an index: what remote.Push pushes, with its digest.
type taggable interface {
	remote.Taggable
	Digest() (v1.Hash, error)
}

// pushable is b's image, or, when b has an arm64 variant, an OCI image index
// of both whose descriptors carry each one's platform (a client asking for
// linux/amd64 gets the amd64 image).
func (s *Bases) pushable(ctx context.Context, b Base) (taggable, error) {
	vs := variants(b)
	var adds []mutate.IndexAddendum
	for _, v := range vs {
		built, err := s.Build(ctx, v)
		if err != nil {
			return nil, err
		}
		img, err := ReadLayout(built)
		if err != nil {
			return nil, err
		}
		if len(vs) == 1 {
			return img, nil
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: cf.Platform()}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// mirroredDefault returns b's default reference less its digest, and where a
// docker.io mirror at registry serves it.
func mirroredDefault(b Base, registry string) (string, name.Tag, error) {
	def, _, _ := strings.Cut(b.Default, "@")
	tag, err := name.NewTag(def, name.StrictValidation)
	if err != nil {
		return "", name.Tag{}, fmt.Errorf("image %s: default %q: %w", b.Name, b.Default, err)
	}
	if tag.RegistryStr() != name.DefaultRegistry {
		return "", name.Tag{}, fmt.Errorf("image %s: default %q is not on docker.io, the only registry the engine mirrors", b.Name, b.Default)
	}
	mirrored, err := name.NewTag(fmt.Sprintf("%s/%s:%s", registry, tag.RepositoryStr(), tag.TagStr()), name.Insecure, name.StrictValidation)
	if err != nil {
		return "", name.Tag{}, fmt.Errorf("image %s: registry %q: %w", b.Name, registry, err)
	}
	return def, mirrored, nil
}

// setupNode fills the npm cache from the examples' lockfiles (npm ci with
// network, at build time) and leaves it writable for any user.
func setupNode(ctx context.Context, repo, root string, _ *emulation.Emulator) error {
	env := []string{stdPath, "HOME=/root", "npm_config_cache=" + NPMCache, "npm_config_update_notifier=false"}
	// The host may reach the npm registry through a TLS-inspecting proxy:
	// trust what the host trusts, for this build step only (the file is
	// removed with /tmp/fill and never enters the image).
	if extra := os.Getenv("NODE_EXTRA_CA_CERTS"); extra != "" {
		if err := copyFile(extra, filepath.Join(root, "tmp", "fill", "host-ca.crt"), 0o644); err != nil {
			return fmt.Errorf("NODE_EXTRA_CA_CERTS: %w", err)
		}
		env = append(env, "NODE_EXTRA_CA_CERTS=/tmp/fill/host-ca.crt")
	}
	for _, ex := range []string{"auth-api", "spa"} {
		dir := filepath.Join(root, "tmp", "fill", ex)
		for _, f := range []string{"package.json", "package-lock.json"} {
			if err := copyFile(filepath.Join(repo, "examples", ex, f), filepath.Join(dir, f), 0o644); err != nil {
				return err
			}
		}
		if err := withResolv(root, func() error {
			return rootfs.Run(ctx, root, rootfs.Opts{Env: env, Dir: "/tmp/fill/" + ex}, "npm", "ci", "--no-audit", "--no-fund")
		}); err != nil {
			return fmt.Errorf("fill the npm cache from examples/%s: %w", ex, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(root, "tmp", "fill")); err != nil {
		return err
	}
	_ = os.RemoveAll(filepath.Join(root, strings.TrimPrefix(NPMCache, "/"), "_logs"))
	return rootfs.Run(ctx, root, rootfs.Opts{}, "chmod", "-R", "a+rwX", NPMCache)
}

// setupGolang copies the host's Go toolchain (the one running this tool, whose
// version is in the cache key) to /usr/local/go, as the golang image has it.
func setupGolang(ctx context.Context, _, root string, _ *emulation.Emulator) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	goroot := strings.TrimSpace(string(out))
	if v, err := GoVersion(goroot); err != nil || v != runtime.Version() {
		return fmt.Errorf("GOROOT %s holds %s, not %s (the version in the cache key)", goroot, v, runtime.Version())
	}
	return copyTree(ctx, goroot, filepath.Join(root, "usr/local/go"))
}

// withResolv gives the rootfs the host's resolver for f (network at build
// time only); Tidy empties it again.
func withResolv(root string, f func() error) error {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/resolv.conf"), b, 0o644); err != nil {
		return err
	}
	return f()
}

// setupNginx makes the unprivileged layout: user 101, everything nginx
// writes owned by it, a default config on 8080.
func setupNginx(ctx context.Context, _, root string, emu *emulation.Emulator) error {
	steps := [][]string{
		{"groupadd", "--system", "--gid", "101", "nginx"},
		{"useradd", "--system", "--uid", "101", "--gid", "101", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "nginx"},
		{"mkdir", "-p", "/usr/share/nginx/html", "/var/lib/nginx", "/var/log/nginx", "/var/cache/nginx"},
		{"rm", "-f", "/etc/nginx/sites-enabled/default"},
		{"chown", "-R", "101:101", "/var/lib/nginx", "/var/log/nginx", "/var/cache/nginx", "/usr/share/nginx/html"},
	}
	for _, s := range steps {
		if err := rootfs.Run(ctx, root, rootfs.Opts{Emulator: emu}, s...); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/nginx/nginx.conf"), []byte(nginxDefault), 0o644); err != nil {
		return err
	}
	index := "<!doctype html><title>krgeobuk nginx</title><p>krgeobuk local nginx image</p>\n"
	p := filepath.Join(root, "usr/share/nginx/html/index.html")
	if err := os.WriteFile(p, []byte(index), 0o644); err != nil {
		return err
	}
	return os.Chown(p, 101, 101)
}

// setupMySQL installs the entrypoint and empties the data directory, which
// the entrypoint initialises on first start.
func setupMySQL(ctx context.Context, _, root string, _ *emulation.Emulator) error {
	if err := copyBytes(mysqlEntrypoint, filepath.Join(root, "usr/local/bin/docker-entrypoint.sh"), 0o755); err != nil {
		return err
	}
	return rootfs.Run(ctx, root, rootfs.Opts{}, "sh", "-c", "rm -rf /var/lib/mysql/* && chown mysql:mysql /var/lib/mysql")
}

func copyBytes(b []byte, to string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		return err
	}
	return os.Chmod(to, mode)
}
