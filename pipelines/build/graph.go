package build

import (
	"fmt"

	"dagger.io/dagger"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// Request is one service to build.
type Request struct {
	Service catalog.Service
	// Source is the service's repository checkout (package.json at its root).
	Source *dagger.Directory
	// Platforms to build; empty means the engine's platform. Checked with
	// CheckPlatforms.
	Platforms []string
	Images    Images
	// Labels are added to every image (see Labels.Map).
	Labels map[string]string
	// NginxConf is the chart's nginx.conf; required for SPAs.
	NginxConf string
}

// Work directory of the build stage.
const workdir = "/app"

// sourceExcludes keep local artefacts out of the build context: a developer's
// node_modules or dist must never leak into an image.
var sourceExcludes = []string{"node_modules", "dist", ".git", "coverage"}

// Containers returns one runtime image per platform (in the order given),
// ready to export or publish as a multi-platform image. Nothing runs until
// the caller evaluates a result.
func Containers(c *dagger.Client, req Request) ([]*dagger.Container, error) {
	if req.Source == nil {
		return nil, fmt.Errorf("build %s: no source directory", req.Service.Name)
	}
	platforms, err := CheckPlatforms(req.Platforms)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", req.Service.Name, err)
	}
	if !req.Service.IsAPI() && req.NginxConf == "" {
		return nil, fmt.Errorf("build %s: an SPA needs the chart's nginx.conf", req.Service.Name)
	}
	if len(platforms) == 0 {
		platforms = []string{""}
	}
	var out []*dagger.Container
	for _, p := range platforms {
		var ctr *dagger.Container
		if req.Service.IsAPI() {
			ctr = api(c, req, dagger.Platform(p))
		} else {
			ctr = spa(c, req, dagger.Platform(p))
		}
		out = append(out, withLabels(ctr, req.Labels))
	}
	return out, nil
}

// NodeDeps is the first stage of every Node pipeline: dependencies from the
// lockfile only (so the layer caches until package*.json change), then the
// sources. npm's download cache is a shared cache volume.
func NodeDeps(c *dagger.Client, nodeImage string, source *dagger.Directory, platform dagger.Platform) *dagger.Container {
	return c.Container(dagger.ContainerOpts{Platform: platform}).
		From(nodeImage).
		WithMountedCache("/root/.npm", c.CacheVolume(NPMCacheVolume)).
		WithWorkdir(workdir).
		WithFile(workdir+"/package.json", source.File("package.json")).
		WithFile(workdir+"/package-lock.json", source.File("package-lock.json")).
		WithExec([]string{"npm", "ci", "--no-audit", "--no-fund"}).
		WithDirectory(workdir, source, dagger.ContainerWithDirectoryOpts{Exclude: sourceExcludes})
}

// NodeBuild is NodeDeps followed by `npm run build`.
func NodeBuild(c *dagger.Client, nodeImage string, source *dagger.Directory, platform dagger.Platform) *dagger.Container {
	return NodeDeps(c, nodeImage, source, platform).WithExec([]string{"npm", "run", "build"})
}

// api: build, prune to production dependencies, and copy dist, node_modules
// and package.json into a fresh Node image running as uid 1000. The chart's
// wait-for-database init container runs `node` from the same image.
func api(c *dagger.Client, req Request, platform dagger.Platform) *dagger.Container {
	built := NodeBuild(c, req.Images.Node, req.Source, platform).
		WithExec([]string{"npm", "prune", "--omit=dev", "--no-audit", "--no-fund"})
	owner := dagger.ContainerWithDirectoryOpts{Owner: APIUser}
	return c.Container(dagger.ContainerOpts{Platform: platform}).
		From(req.Images.Node).
		WithWorkdir(workdir).
		WithEnvVariable("NODE_ENV", "production").
		WithFile(workdir+"/package.json", built.File(workdir+"/package.json"), dagger.ContainerWithFileOpts{Owner: APIUser}).
		WithDirectory(workdir+"/node_modules", built.Directory(workdir+"/node_modules"), owner).
		WithDirectory(workdir+"/dist", built.Directory(workdir+"/dist"), owner).
		WithUser(APIUser).
		WithExposedPort(req.Service.HTTPPort).
		WithExposedPort(req.Service.TCPPort).
		WithEntrypoint([]string{"node", "dist/main.js"})
}

// spa: the static build served by unprivileged nginx with the chart's own
// nginx.conf, so the image and the cluster never disagree about it.
func spa(c *dagger.Client, req Request, platform dagger.Platform) *dagger.Container {
	built := NodeBuild(c, req.Images.Node, req.Source, platform)
	return c.Container(dagger.ContainerOpts{Platform: platform}).
		From(req.Images.Nginx).
		WithNewFile("/etc/nginx/nginx.conf", req.NginxConf, dagger.ContainerWithNewFileOpts{Permissions: 0o644}).
		WithDirectory("/usr/share/nginx/html", built.Directory(workdir+"/dist")).
		WithUser(SPAUser).
		WithExposedPort(req.Service.HTTPPort)
}

func withLabels(ctr *dagger.Container, labels map[string]string) *dagger.Container {
	for _, k := range sortedKeys(labels) {
		ctr = ctr.WithLabel(k, labels[k])
	}
	return ctr
}
