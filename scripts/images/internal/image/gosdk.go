package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/krgeobuk/krgeobuk-infra/internal/preflight"
	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/layer"
	"github.com/krgeobuk/krgeobuk-infra/scripts/images/internal/rootfs"
)

// Facts of dagger v0.21.8's Go SDK (core/sdk/go_sdk.go): the engine runs
// `codegen generate-module ... --lib-version <LibCommit>` in /src/<source>,
// which runs `go get dagger.io/dagger@<LibCommit>` and `go mod tidy`; the
// typedefs step runs `go get dagger.io/dagger@<LibCommit>
// github.com/dagger/querybuilder`; then `go build -ldflags "-s -w" -o
// /runtime .`. It mounts cache volumes at /go/pkg/mod and
// /root/.cache/go-build (seeded from the image's directories the first time
// only), so the module download cache lives elsewhere, served as a file
// GOPROXY.
const (
	GoSDKRecipe    = "gosdk-r2"
	CodegenVersion = "v0.21.8"
	LibCommit      = "56bb30426a8462af6f95cfdae6461d0cc796ff50"
	LibVersion     = "v0.21.8"
	ProxyDir       = "/usr/local/share/krgeobuk/goproxy"
	ModuleName     = "krgeobuk"
)

// GoSDKEnv is the Go SDK image's environment.
var GoSDKEnv = []string{
	"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"GOPATH=/go",
	"GOPROXY=file://" + ProxyDir,
	"GOSUMDB=off",
	"GOTOOLCHAIN=local",
	"CGO_ENABLED=0",
}

// GoSDK builds the builtin Go SDK image for the module described by the
// repository's dagger.json.
type GoSDK struct {
	Repo    string    // repository root (holds dagger.json)
	Cache   string    // $KRGEOBUK_CACHE
	Log     io.Writer // progress
	Codegen string    // codegen binary; default $Cache/codegen/<CodegenVersion>/codegen
	GoRoot  string    // default `go env GOROOT`
}

func (g *GoSDK) defaults() error {
	if g.Log == nil {
		g.Log = io.Discard
	}
	if g.Codegen == "" {
		g.Codegen = filepath.Join(g.Cache, "codegen", CodegenVersion, "codegen")
	}
	if _, err := os.Stat(g.Codegen); err != nil {
		return fmt.Errorf("codegen %s not built: run `make generate` first (%w)", CodegenVersion, err)
	}
	if g.GoRoot == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			return fmt.Errorf("go env GOROOT: %w", err)
		}
		g.GoRoot = strings.TrimSpace(string(out))
	}
	return nil
}

// GoVersion reads the first line of GOROOT/VERSION (e.g. go1.26.8).
func GoVersion(goroot string) (string, error) {
	b, err := os.ReadFile(filepath.Join(goroot, "VERSION"))
	if err != nil {
		return "", fmt.Errorf("go version of %s: %w", goroot, err)
	}
	return strings.SplitN(string(b), "\n", 2)[0], nil
}

// Key is the cache key: recipe, Go version, codegen version and binary, and
// the files that decide what goes into the module cache.
func (g *GoSDK) Key() (string, error) {
	if err := g.defaults(); err != nil {
		return "", err
	}
	gv, err := GoVersion(g.GoRoot)
	if err != nil {
		return "", err
	}
	cg, err := HashFiles(g.Codegen)
	if err != nil {
		return "", err
	}
	src, err := g.source()
	if err != nil {
		return "", err
	}
	mods, err := HashFiles(filepath.Join(g.Repo, "dagger.json"), filepath.Join(g.Repo, "go.mod"), filepath.Join(g.Repo, "go.sum"),
		filepath.Join(g.Repo, src, "go.mod"), filepath.Join(g.Repo, src, "go.sum"))
	if err != nil {
		return "", err
	}
	return Key(GoSDKRecipe, gv, CodegenVersion, cg, mods), nil
}

// LayoutPath is where the layout for the current inputs lives.
func (g *GoSDK) LayoutPath() (string, error) {
	k, err := g.Key()
	if err != nil {
		return "", err
	}
	gv, _ := GoVersion(g.GoRoot)
	return filepath.Join(g.Cache, "dagger-images", "go-sdk", fmt.Sprintf("%s-%s-codegen-%s-%s", GoSDKRecipe, gv, CodegenVersion, k), "layout"), nil
}

// Build returns the image layout, building it when the cache lacks it.
func (g *GoSDK) Build(ctx context.Context) (string, error) {
	out, err := g.LayoutPath()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(out, "index.json")); err == nil {
		return out, nil
	}
	if err := g.Preflight(filepath.Dir(out)).Check(); err != nil {
		return "", err
	}
	work := filepath.Join(filepath.Dir(out), "work")
	_ = os.RemoveAll(work)
	defer func() { _ = os.RemoveAll(work) }()
	root := filepath.Join(work, "rootfs")

	fmt.Fprintln(g.Log, "go-sdk: Debian rootfs")
	base, err := rootfs.BaseTarball(ctx, filepath.Join(g.Cache, "dagger-images"), "bookworm")
	if err != nil {
		return "", err
	}
	if err := rootfs.Extract(ctx, base, root); err != nil {
		return "", err
	}
	if err := rootfs.AptInstall(ctx, root, "git", "ca-certificates", "openssh-client"); err != nil {
		return "", fmt.Errorf("go-sdk: %w", err)
	}
	fmt.Fprintln(g.Log, "go-sdk: Go, codegen")
	if err := copyTree(ctx, g.GoRoot, filepath.Join(root, "usr/local/go")); err != nil {
		return "", err
	}
	if err := copyFile(g.Codegen, filepath.Join(root, "usr/local/bin/codegen"), 0o755); err != nil {
		return "", err
	}
	for _, d := range []string{"go/pkg/mod", "go/bin", "root/.cache/go-build", "src"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	fmt.Fprintln(g.Log, "go-sdk: module cache (codegen + go build of a copy of the module, on the host)")
	proxy, err := g.FillModuleProxy(ctx, work)
	if err != nil {
		return "", err
	}
	if err := copyTree(ctx, proxy, filepath.Join(root, strings.TrimPrefix(ProxyDir, "/"))); err != nil {
		return "", err
	}
	// Build the module offline in a copy of the finished rootfs, exactly as
	// the engine will: it proves the image, and its Go build cache becomes
	// the top layer, which seeds the engine's go-build cache volume so a
	// fresh engine does not compile Kubernetes and Helm again.
	fmt.Fprintln(g.Log, "go-sdk: offline build of the module in a copy of the image (warms the Go build cache)")
	warm := filepath.Join(work, "warm")
	if err := copyTree(ctx, root, warm); err != nil {
		return "", err
	}
	if err := g.buildModuleIn(ctx, warm, GoSDKEnv, g.Log); err != nil {
		return "", fmt.Errorf("go-sdk: the module does not build offline in the image: %w", err)
	}
	fmt.Fprintln(g.Log, "go-sdk: layers")
	sys, gol, mods := filepath.Join(work, "system.tar"), filepath.Join(work, "go.tar"), filepath.Join(work, "modules.tar")
	gocache := filepath.Join(work, "gocache.tar")
	if err := Layer(gocache, warm, only("root/.cache/go-build")); err != nil {
		return "", err
	}
	goDir, proxyDir := "usr/local/go", strings.TrimPrefix(ProxyDir, "/")
	if err := Layer(sys, root, func(rel string) bool { return !layer.Under(rel, goDir) && !layer.Under(rel, proxyDir) }); err != nil {
		return "", err
	}
	if err := Layer(gol, root, only(goDir)); err != nil {
		return "", err
	}
	if err := Layer(mods, root, only(proxyDir)); err != nil {
		return "", err
	}
	img, err := Assemble([]string{sys, gol, mods, gocache}, v1.Config{Env: GoSDKEnv, WorkingDir: "/", Cmd: []string{"/bin/sh"}})
	if err != nil {
		return "", err
	}
	if err := WriteLayout(out, img); err != nil {
		return "", err
	}
	return out, nil
}

// RootfsTools are the host programs a rootfs build runs, with their Debian
// packages: debootstrap and tar make and unpack it, unshare, chroot and mount
// run commands in it (rootfs.Command), ip brings loopback up offline.
var RootfsTools = map[string]string{
	"debootstrap": "debootstrap", "tar": "tar", "unshare": "util-linux", "chroot": "coreutils",
	"mount": "mount", "ip": "iproute2", "cp": "coreutils",
}

// Preflight is what building the Go SDK image into dir needs: the rootfs
// tools, go and git (the module is copied with git ls-files and built on the
// host first), and room for the work tree (a Debian rootfs, Go, the module
// cache, a second copy built offline, the layer tarballs and the layout;
// an estimate) and the Go build cache.
func (g *GoSDK) Preflight(dir string) preflight.Step {
	tools := map[string]string{"go": "", "git": "git", "chmod": "coreutils"}
	for k, v := range RootfsTools {
		tools[k] = v
	}
	return preflight.Step{
		Name:  "images go-sdk",
		Rerun: "make images (or: go -C scripts/images run . go-sdk)",
		Tools: tools,
		Dirs: append([]preflight.Dir{{Path: dir, Need: 10 * preflight.GiB, What: "the Go SDK image's work tree, layers and layout"}},
			preflight.GoCacheDir(2*preflight.GiB)...),
	}
}

// only keeps prefix, its ancestors and everything below it.
func only(prefix string) func(string) bool {
	return func(rel string) bool {
		return layer.Under(rel, prefix) || strings.HasPrefix(prefix, rel+"/")
	}
}

// source is dagger.json's source folder.
func (g *GoSDK) source() (string, error) {
	cfg, err := readDaggerJSON(g.Repo)
	if err != nil {
		return "", err
	}
	return cfg.Source, nil
}

// FillModuleProxy runs on the host, against a copy of the module, what the
// engine will run (codegen generate-module with the pinned library commit,
// then go build) with a fresh GOMODCACHE, and returns a directory usable as a
// file GOPROXY holding every module that needed, plus the entry resolving
// dagger.io/dagger@LibCommit to LibVersion (the public proxy refuses that
// query).
func (g *GoSDK) FillModuleProxy(ctx context.Context, work string) (string, error) {
	src := filepath.Join(work, "src")
	cfg, err := CopyModule(g.Repo, src)
	if err != nil {
		return "", err
	}
	schema := filepath.Join(work, "schema.json")
	if err := Introspection(ctx, g.Repo, schema); err != nil {
		return "", err
	}
	overlay := filepath.Join(work, "overlay")
	if err := commitEntry(ctx, overlay); err != nil {
		return "", err
	}
	modcache := filepath.Join(work, "modcache")
	hostProxy, err := exec.Command("go", "env", "GOPROXY").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOPROXY: %w", err)
	}
	env := append(os.Environ(), "GOMODCACHE="+modcache, "GOFLAGS=", "GOTOOLCHAIN=local", "CGO_ENABLED=0",
		"GOPROXY=file://"+overlay+","+strings.TrimSpace(string(hostProxy)))
	dir := filepath.Join(src, cfg.Source)
	steps := [][]string{
		{g.Codegen, "generate-module", "--output", src, "--module-source-path", dir, "--module-name", cfg.Name,
			"--introspection-json-path", schema, "--lib-version", LibCommit},
		{"go", "build", "-ldflags", "-s -w", "-o", filepath.Join(work, "runtime"), "."},
	}
	for _, s := range steps {
		if err := runIn(ctx, dir, env, s...); err != nil {
			return "", fmt.Errorf("fill module cache: %w", err)
		}
	}
	proxy := filepath.Join(work, "proxy")
	if err := copyTree(ctx, filepath.Join(modcache, "cache", "download"), proxy); err != nil {
		return "", err
	}
	_ = os.RemoveAll(filepath.Join(proxy, "sumdb"))
	_ = filepath.Walk(proxy, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.HasSuffix(p, ".lock") {
			_ = os.Remove(p)
		}
		return nil
	})
	if err := copyTree(ctx, overlay, proxy); err != nil {
		return "", err
	}
	// the module cache is read-only on disk; let the work dir be removed
	_ = exec.Command("chmod", "-R", "u+w", modcache).Run()
	return proxy, nil
}

// commitEntry writes dagger.io/dagger/@v/<LibCommit>.info saying LibVersion,
// with the release's own timestamp.
func commitEntry(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "dagger.io/dagger@"+LibVersion)
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go mod download dagger.io/dagger@%s: %w", LibVersion, err)
	}
	var dl struct{ Info string }
	if err := json.Unmarshal(out, &dl); err != nil || dl.Info == "" {
		return fmt.Errorf("go mod download dagger.io/dagger@%s: no info file in %s", LibVersion, out)
	}
	b, err := os.ReadFile(dl.Info)
	if err != nil {
		return err
	}
	var info struct{ Time string }
	if err := json.Unmarshal(b, &info); err != nil {
		return fmt.Errorf("%s: %w", dl.Info, err)
	}
	entry, _ := json.Marshal(map[string]string{"Version": LibVersion, "Time": info.Time})
	p := filepath.Join(dir, "dagger.io", "dagger", "@v", LibCommit+".info")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, entry, 0o644)
}

// Introspection writes the module view of the engine's schema (the
// repository's SDL converter, the same one `make generate` uses) to out.
func Introspection(ctx context.Context, repo, out string) error {
	tools := filepath.Join(repo, "scripts", "codegen", "tools")
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/dagger/dagger@"+CodegenVersion)
	cmd.Dir = tools
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go mod download github.com/dagger/dagger@%s: %w", CodegenVersion, err)
	}
	var dl struct{ Dir string }
	if err := json.Unmarshal(b, &dl); err != nil || dl.Dir == "" {
		return fmt.Errorf("go mod download: no directory in %s", b)
	}
	sdl := filepath.Join(dl.Dir, "docs", "docs-graphql", "schema.graphqls")
	return runIn(ctx, tools, os.Environ(), "go", "run", "./sdl2introspection", "-sdl", sdl, "-o", out, "-view", "module", "-schema-version", CodegenVersion)
}

func runIn(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir, cmd.Env = dir, env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		s := buf.String()
		if len(s) > 4000 {
			s = "…" + s[len(s)-4000:]
		}
		return fmt.Errorf("%s: %w\n%s", strings.Join(args[:min(len(args), 2)], " "), err, s)
	}
	return nil
}

func copyTree(ctx context.Context, from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	if err := runIn(ctx, "/", nil, "cp", "-a", from+"/.", to); err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		return err
	}
	return os.Chmod(to, mode)
}
