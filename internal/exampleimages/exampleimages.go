// Package exampleimages builds the example API and SPA (examples/) into OCI
// images without a container engine, for clusters whose node really pulls
// and runs them (the real-node tests and `make demo-real`). It follows the
// module's recipe (ci/graphs/build.go): npm ci, npm run build and, for the
// API, npm prune --omit=dev, then the runtime files on the same base images
// the end-to-end suite gives the module (scripts/images: Debian 12's
// nodejs and nginx as stand-ins for node:22 and nginx-unprivileged), with
// the same users, working directory, entrypoint and ports.
//
// The npm steps run on this machine's Node.js; their result is cached in
// $KRGEOBUK_CACHE/example-images keyed by the example's files, the Node.js
// version and the base image's digest, so a warm run runs no npm.
package exampleimages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
)

// Kind says which example an image is built from.
type Kind string

const (
	// API is examples/auth-api, the image of auth-server and authz-server.
	API Kind = "api"
	// SPA is examples/spa, the image of auth-client and portal-client.
	SPA Kind = "spa"
)

// Options says where the repository, the cache and the base images are.
type Options struct {
	Repo  string // repository root
	Cache string // $KRGEOBUK_CACHE
	// Bases maps "node" and "nginx" to OCI layouts of the base images;
	// empty: built (or found) with `go -C scripts/images run . base`.
	Bases map[string]string
	Log   io.Writer
}

// Build returns the API and SPA images, building what the cache lacks.
func Build(ctx context.Context, opts Options) (map[Kind]v1.Image, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Bases == nil {
		bases, err := BaseLayouts(ctx, opts.Repo)
		if err != nil {
			return nil, err
		}
		opts.Bases = bases
	}
	out := map[Kind]v1.Image{}
	for _, k := range []Kind{API, SPA} {
		img, err := buildOne(ctx, opts, k)
		if err != nil {
			return nil, fmt.Errorf("example image %s: %w", k, err)
		}
		out[k] = img
	}
	return out, nil
}

// BaseLayouts builds (or finds, cached) the local base images with the
// images tool and returns their OCI layouts by name.
func BaseLayouts(ctx context.Context, repo string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 45*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "-C", filepath.Join(repo, "scripts", "images"), "run", ".", "base")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("base images (go -C scripts/images run . base): %w: %s", err, lastLines(stderr.String(), 5))
	}
	var layouts map[string]string
	if err := json.Unmarshal(out, &layouts); err != nil {
		return nil, fmt.Errorf("base images: %w", err)
	}
	for _, n := range []string{"node", "nginx"} {
		if layouts[n] == "" {
			return nil, fmt.Errorf("base images: no %s image", n)
		}
	}
	return layouts, nil
}

type recipe struct {
	example string // folder under examples/
	base    string // base image name
	npm     [][]string
	// files are the build results that go into the image: path in the
	// build folder → path in the image.
	files map[string]string
	owner string
	cfg   func(*v1.Config)
}

func recipeOf(k Kind) recipe {
	switch k {
	case API:
		return recipe{
			example: "auth-api", base: "node",
			npm:   [][]string{{"ci"}, {"run", "build"}, {"prune", "--omit=dev"}},
			files: map[string]string{"package.json": "/app/package.json", "node_modules": "/app/node_modules", "dist": "/app/dist"},
			owner: build.APIUser,
			cfg: func(c *v1.Config) {
				c.WorkingDir = "/app"
				c.Env = append(c.Env, "NODE_ENV=production")
				c.User = build.APIUser
				c.Entrypoint, c.Cmd = []string{"node", "dist/main.js"}, nil
			},
		}
	default:
		return recipe{
			example: "spa", base: "nginx",
			npm:   [][]string{{"ci"}, {"run", "build"}},
			files: map[string]string{"dist": "/usr/share/nginx/html"},
			owner: "0:0",
			cfg:   func(c *v1.Config) { c.User = build.SPAUser },
		}
	}
}

func buildOne(ctx context.Context, opts Options, k Kind) (v1.Image, error) {
	r := recipeOf(k)
	base, err := layoutImage(opts.Bases[r.base])
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", r.base, err)
	}
	src := filepath.Join(opts.Repo, "examples", r.example)
	key, err := cacheKey(ctx, src, base)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(opts.Cache, "example-images", string(k)+"-"+key)
	if img, err := layoutImage(dir); err == nil {
		fmt.Fprintf(opts.Log, "example image %s: cached (%s)\n", k, dir)
		return img, nil
	}
	fmt.Fprintf(opts.Log, "example image %s: building from examples/%s (npm ci and build, about a minute)\n", k, r.example)
	work, err := os.MkdirTemp(filepath.Join(opts.Cache), ".example-build-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := copySources(src, work); err != nil {
		return nil, err
	}
	for _, args := range r.npm {
		if err := npm(ctx, opts.Cache, work, args...); err != nil {
			return nil, err
		}
	}
	layer, err := filesLayer(work, r.files, r.owner)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg := cf.Config.DeepCopy()
	r.cfg(cfg)
	if img, err = mutate.Config(img, *cfg); err != nil {
		return nil, err
	}
	if err := writeLayout(dir, img); err != nil {
		return nil, err
	}
	return layoutImage(dir)
}

// cacheKey hashes what the image depends on: the example's own files (not
// its build outputs), the Node.js that builds it and the base image.
func cacheKey(ctx context.Context, src string, base v1.Image) (string, error) {
	h := sha256.New()
	err := walkSources(src, func(rel string, b []byte) error {
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	ver, err := exec.CommandContext(ctx, "node", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("node --version: %w (the examples build with Node.js 18+ and npm: make deps)", err)
	}
	d, err := base.Digest()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "node %s base %s", strings.TrimSpace(string(ver)), d)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// walkSources visits the example's files, skipping what a build writes.
func walkSources(src string, fn func(rel string, b []byte) error) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && slices.Contains([]string{"node_modules", "dist", "test-build"}, d.Name()) {
			return fs.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel), b)
	})
}

func copySources(src, dst string) error {
	return walkSources(src, func(rel string, b []byte) error {
		p := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o644)
	})
}

func npm(ctx context.Context, cache, dir string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", append(args, "--no-audit", "--no-fund")...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"npm_config_cache=" + filepath.Join(cache, "npm"), "npm_config_update_notifier=false",
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm %s: %w: %s", strings.Join(args, " "), err, lastLines(string(out), 10))
	}
	return nil
}

func layoutImage(dir string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("%s: want one image, found %d", dir, len(m.Manifests))
	}
	return idx.Image(m.Manifests[0].Digest)
}

// writeLayout writes the image to a fresh layout beside dir and renames it
// into place, so a killed build never leaves a half layout that looks cached.
func writeLayout(dir string, img v1.Image) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".layout-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
		if _, statErr := os.Stat(dir); statErr != nil {
			return err
		}
	}
	return nil
}

// Push writes the images to repositories of registry (host:port, plain
// HTTP) and returns each one's reference pinned by digest.
func Push(ctx context.Context, registry string, images map[string]v1.Image) (map[string]string, error) {
	refs := map[string]string{}
	for repo, img := range images {
		tag, err := name.NewTag(registry+"/"+repo+":example", name.Insecure)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
			return nil, fmt.Errorf("push %s: %w", tag, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		refs[repo] = tag.Context().String() + "@" + d.String()
	}
	return refs, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
