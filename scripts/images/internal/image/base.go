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

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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
	Setup   func(ctx context.Context, repo, root string) error
	Config  v1.Config
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
}

// Key is b's cache key: the recipe version, name, packages and inputs.
func (s *Bases) Key(b Base) (string, error) {
	parts := []string{BaseRecipe, b.Name, strings.Join(b.Packages, " "), fmt.Sprint(b.Config), b.Content}
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
	return "bookworm-" + BaseRecipe + "-" + k, nil
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
		if err := b.Setup(ctx, s.Repo, root); err != nil {
			return "", fmt.Errorf("image %s: %w", b.Name, err)
		}
		if err := rootfs.Tidy(root); err != nil {
			return "", err
		}
	}
	tar := filepath.Join(work, "layer.tar")
	if err := Layer(tar, root, nil); err != nil {
		return "", err
	}
	img, err := Assemble([]string{tar}, b.Config)
	if err != nil {
		return "", err
	}
	if err := WriteLayout(out, img); err != nil {
		return "", err
	}
	return out, nil
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
	return preflight.Step{
		Name:  "images base (" + b.Name + ")",
		Rerun: "make images (or: go -C scripts/images run . base)",
		Tools: tools,
		Dirs:  []preflight.Dir{{Path: dir, Need: 3 * preflight.GiB, What: "the " + b.Name + " image's rootfs, layer and layout"}},
	}
}

// BuildAll builds every base image and returns name → layout path.
func (s *Bases) BuildAll(ctx context.Context) (map[string]string, error) {
	outs := map[string]string{}
	for _, b := range BaseImages() {
		out, err := s.Build(ctx, b)
		if err != nil {
			return nil, err
		}
		outs[b.Name] = out
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
		built, err := s.Build(ctx, b)
		if err != nil {
			return Pushed{}, err
		}
		img, err := ReadLayout(built)
		if err != nil {
			return Pushed{}, err
		}
		tag, err := s.Tag(b)
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
		for _, to := range []name.Tag{ref, mirrored} {
			if err := remote.Write(to, img, remote.WithContext(ctx)); err != nil {
				return Pushed{}, fmt.Errorf("push %s: %w", to, err)
			}
		}
		d, err := img.Digest()
		if err != nil {
			return Pushed{}, err
		}
		out.StandIns[b.Name] = ref.String() + "@" + d.String()
		out.Defaults[b.Name] = def
	}
	return out, nil
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
func setupNode(ctx context.Context, repo, root string) error {
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
func setupGolang(ctx context.Context, _, root string) error {
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
func setupNginx(ctx context.Context, _, root string) error {
	steps := [][]string{
		{"groupadd", "--system", "--gid", "101", "nginx"},
		{"useradd", "--system", "--uid", "101", "--gid", "101", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "nginx"},
		{"mkdir", "-p", "/usr/share/nginx/html", "/var/lib/nginx", "/var/log/nginx", "/var/cache/nginx"},
		{"rm", "-f", "/etc/nginx/sites-enabled/default"},
		{"chown", "-R", "101:101", "/var/lib/nginx", "/var/log/nginx", "/var/cache/nginx", "/usr/share/nginx/html"},
	}
	for _, s := range steps {
		if err := rootfs.Run(ctx, root, rootfs.Opts{}, s...); err != nil {
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
func setupMySQL(ctx context.Context, _, root string) error {
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
