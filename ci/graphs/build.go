// Package graphs holds the Dagger container graphs of the module: building
// an image, publishing it, and an integration test's stores. What to build,
// with which arguments, is decided without an engine in pipelines/build and
// pipelines/itest; these functions only carry a plan out against the
// module's client.
package graphs

import (
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
// image. Nothing runs until the caller evaluates a result.
func Containers(c *dagger.Client, req build.Request, source *dagger.Directory) ([]*dagger.Container, error) {
	if source == nil {
		return nil, fmt.Errorf("build %s: no source directory", req.Service.Name)
	}
	platforms, err := req.Variants()
	if err != nil {
		return nil, err
	}
	var out []*dagger.Container
	for _, p := range platforms {
		var ctr *dagger.Container
		if req.Service.IsAPI() {
			ctr = api(c, req, source, dagger.Platform(p))
		} else {
			ctr = spa(c, req, source, dagger.Platform(p))
		}
		for _, k := range req.SortedLabels() {
			ctr = ctr.WithLabel(k, req.Labels[k])
		}
		out = append(out, ctr)
	}
	return out, nil
}

// NodeDeps is the first stage of every Node pipeline: dependencies from the
// lockfile only (so the layer caches until package*.json change), then the
// sources. npm's download cache is a shared cache volume.
func NodeDeps(c *dagger.Client, nodeImage string, source *dagger.Directory, platform dagger.Platform) *dagger.Container {
	return c.Container(dagger.ContainerOpts{Platform: platform}).
		From(nodeImage).
		WithMountedCache("/root/.npm", c.CacheVolume(build.NPMCacheVolume)).
		WithWorkdir(workdir).
		WithFile(workdir+"/package.json", source.File("package.json")).
		WithFile(workdir+"/package-lock.json", source.File("package-lock.json")).
		WithExec([]string{"npm", "ci", "--no-audit", "--no-fund"}).
		WithDirectory(workdir, source, dagger.ContainerWithDirectoryOpts{Exclude: sourceExcludes})
}

// nodeBuild is NodeDeps followed by `npm run build`.
func nodeBuild(c *dagger.Client, nodeImage string, source *dagger.Directory, platform dagger.Platform) *dagger.Container {
	return NodeDeps(c, nodeImage, source, platform).WithExec([]string{"npm", "run", "build"})
}

// api: build, prune to production dependencies, and copy dist, node_modules
// and package.json into a fresh Node image running as uid 1000. The chart's
// wait-for-database init container runs `node` from the same image.
func api(c *dagger.Client, req build.Request, source *dagger.Directory, platform dagger.Platform) *dagger.Container {
	built := nodeBuild(c, req.Images.Node, source, platform).
		WithExec([]string{"npm", "prune", "--omit=dev", "--no-audit", "--no-fund"})
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
func spa(c *dagger.Client, req build.Request, source *dagger.Directory, platform dagger.Platform) *dagger.Container {
	built := nodeBuild(c, req.Images.Node, source, platform)
	return c.Container(dagger.ContainerOpts{Platform: platform}).
		From(req.Images.Nginx).
		WithNewFile("/etc/nginx/nginx.conf", req.NginxConf, dagger.ContainerWithNewFileOpts{Permissions: 0o644}).
		WithDirectory("/usr/share/nginx/html", built.Directory(workdir+"/dist")).
		WithUser(build.SPAUser).
		WithExposedPort(req.Service.HTTPPort)
}
