// Package graphs holds the Dagger container graphs of the module: building
// an image, publishing it, and an integration test's stores. What to build,
// with which arguments, is decided without an engine in pipelines/build and
// pipelines/itest; these functions only carry a plan out against the
// module's client.
package graphs

import (
	"context"
	"fmt"

	"dagger/krgeobuk/internal/dagger"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
)

// Work directory of the build stage.
const workdir = "/app"

// sourceExcludes keep local artefacts out of the build context: a developer's
// node_modules or dist must never leak into an image.
var sourceExcludes = []string{"node_modules", "dist", ".git", "coverage"}

// Containers returns one runtime image per platform of req (in the order
// given), built from source, ready to export or publish as a multi-platform
// image. The build stage (npm ci, npm run build) runs once, on the engine's
// own platform; each platform's image is that platform's base image with the
// build's output copied in, so an arm64 variant runs nothing but its own
// checks under emulation. An API whose production dependencies are tied to
// the engine's platform is refused for any other (build.CheckLockfilePortable,
// build.CheckAddonsPortable) before anything is published.
func Containers(ctx context.Context, c *dagger.Client, req build.Request, source *dagger.Directory) ([]*dagger.Container, error) {
	if source == nil {
		return nil, fmt.Errorf("build %s: no source directory", req.Service.Name)
	}
	platforms, err := req.Variants()
	if err != nil {
		return nil, err
	}
	built := nodeBuild(c, req.Images.Node, source)
	if req.Service.IsAPI() {
		built = built.WithExec([]string{"npm", "prune", "--omit=dev", "--no-audit", "--no-fund"})
		if err := checkPortable(ctx, c, req.Service.Name, platforms, source, built); err != nil {
			return nil, err
		}
	}
	var out []*dagger.Container
	for _, p := range platforms {
		var ctr *dagger.Container
		if req.Service.IsAPI() {
			ctr = api(c, req, built, dagger.Platform(p))
		} else {
			ctr = spa(c, req, built, dagger.Platform(p))
		}
		for _, k := range req.SortedLabels() {
			ctr = ctr.WithLabel(k, req.Labels[k])
		}
		out = append(out, ctr)
	}
	return out, nil
}

// checkPortable asks the engine only when a platform other than its own is
// requested: its platform, the lockfile, and the built node_modules' addons.
func checkPortable(ctx context.Context, c *dagger.Client, service string, platforms []string, source *dagger.Directory, built *dagger.Container) error {
	if len(build.ForeignPlatforms(platforms, "")) == 0 {
		return nil
	}
	native, err := c.DefaultPlatform(ctx)
	if err != nil {
		return fmt.Errorf("build %s: the engine's platform: %w", service, err)
	}
	foreign := build.ForeignPlatforms(platforms, string(native))
	if len(foreign) == 0 {
		return nil
	}
	lock, err := source.File("package-lock.json").Contents(ctx)
	if err != nil {
		return fmt.Errorf("build %s: package-lock.json: %w", service, err)
	}
	if err := build.CheckLockfilePortable(service, foreign, []byte(lock)); err != nil {
		return err
	}
	addons, err := built.WithExec([]string{"find", "node_modules", "-name", "*.node", "-type", "f"}).Stdout(ctx)
	if err != nil {
		return fmt.Errorf("build %s: list native addons: %w", service, err)
	}
	return build.CheckAddonsPortable(service, foreign, addons)
}

// NodeDeps is the first stage of every Node pipeline, on the engine's own
// platform: dependencies from the lockfile only (so the layer caches until
// package*.json change), then the sources. npm's download cache is a shared
// cache volume.
func NodeDeps(c *dagger.Client, nodeImage string, source *dagger.Directory) *dagger.Container {
	return c.Container().
		From(nodeImage).
		WithMountedCache("/root/.npm", c.CacheVolume(build.NPMCacheVolume)).
		WithWorkdir(workdir).
		WithFile(workdir+"/package.json", source.File("package.json")).
		WithFile(workdir+"/package-lock.json", source.File("package-lock.json")).
		WithExec([]string{"npm", "ci", "--no-audit", "--no-fund"}).
		WithDirectory(workdir, source, dagger.ContainerWithDirectoryOpts{Exclude: sourceExcludes})
}

// nodeBuild is NodeDeps followed by `npm run build`.
func nodeBuild(c *dagger.Client, nodeImage string, source *dagger.Directory) *dagger.Container {
	return NodeDeps(c, nodeImage, source).WithExec([]string{"npm", "run", "build"})
}

// api copies dist, production node_modules and package.json from the
// build into platform's Node image, running as uid 1000. The chart's
// wait-for-database init container runs `node` from the same image.
func api(c *dagger.Client, req build.Request, built *dagger.Container, platform dagger.Platform) *dagger.Container {
	owner := dagger.ContainerWithDirectoryOpts{Owner: build.APIUser}
	return c.Container(dagger.ContainerOpts{Platform: platform}).
		From(req.Images.Node).
		WithWorkdir(workdir).
		WithEnvVariable("NODE_ENV", "production").
		WithFile(workdir+"/package.json", built.File(workdir+"/package.json"), dagger.ContainerWithFileOpts{Owner: build.APIUser}).
		WithDirectory(workdir+"/node_modules", built.Directory(workdir+"/node_modules"), owner).
		WithDirectory(workdir+"/dist", built.Directory(workdir+"/dist"), owner).
		WithUser(build.APIUser).
		WithExposedPort(req.Service.HTTPPort).
		WithExposedPort(req.Service.TCPPort).
		WithEntrypoint([]string{"node", "dist/main.js"})
}

// spa: the static build served by unprivileged nginx with the chart's own
// nginx.conf, so the image and the cluster never disagree about it.
func spa(c *dagger.Client, req build.Request, built *dagger.Container, platform dagger.Platform) *dagger.Container {
	return c.Container(dagger.ContainerOpts{Platform: platform}).
		From(req.Images.Nginx).
		WithNewFile("/etc/nginx/nginx.conf", req.NginxConf, dagger.ContainerWithNewFileOpts{Permissions: 0o644}).
		WithDirectory("/usr/share/nginx/html", built.Directory(workdir+"/dist")).
		WithUser(build.SPAUser).
		WithExposedPort(req.Service.HTTPPort)
}
