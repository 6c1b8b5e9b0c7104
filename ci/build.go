package main

import (
	"context"
	"fmt"
	"time"

	"dagger/krgeobuk/internal/dagger"

	"dagger/krgeobuk/graphs"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
)

// Example sources in this repository, by kind: the default when no --source
// is given.
var exampleSource = map[catalog.Kind]string{
	catalog.KindAPI: "examples/auth-api",
	catalog.KindSPA: "examples/spa",
}

// buildArgs are the checked arguments shared by build, publish and deploy.
type buildArgs struct {
	services  []catalog.Service
	platforms []string
	images    build.Images
	labels    build.Labels
	env       string
}

func checkBuildArgs(services []string, platform []dagger.Platform, env, revision, sourceURL, nodeImage, nginxImage string) (*buildArgs, error) {
	sel, err := catalog.Select(services)
	if err != nil {
		return nil, err
	}
	if _, err := environment.Load(k8s.Environments, env); err != nil {
		return nil, err
	}
	plats, err := build.CheckPlatforms(platforms(platform))
	if err != nil {
		return nil, err
	}
	images, err := build.DefaultImages().WithOverrides(nodeImage, nginxImage)
	if err != nil {
		return nil, err
	}
	labels := build.Labels{Source: sourceURL, Revision: revision, Created: time.Now()}
	if _, err := labels.Map(sel[0].Name); err != nil {
		return nil, err
	}
	return &buildArgs{services: sel, platforms: plats, images: images, labels: labels, env: env}, nil
}

// requests resolves, without the engine, everything each build needs: the
// labels and an SPA's nginx.conf from the chart.
func (a *buildArgs) requests(ctx context.Context) ([]build.Request, error) {
	var out []build.Request
	src, err := appenv.EmbeddedSource(a.env)
	if err != nil {
		return nil, err
	}
	for _, s := range a.services {
		labels, err := a.labels.Map(s.Name)
		if err != nil {
			return nil, err
		}
		req := build.Request{Service: s, Platforms: a.platforms, Images: a.images, Labels: labels}
		if !s.IsAPI() {
			if req.NginxConf, err = appenv.NginxConf(ctx, src, s.Name); err != nil {
				return nil, err
			}
		}
		out = append(out, req)
	}
	return out, nil
}

// built builds one request with its source (or the example of its kind) and
// returns its platform variants.
func (m *Krgeobuk) built(req build.Request, source *dagger.Directory) ([]*dagger.Container, error) {
	if source == nil {
		source = m.Repo.Directory(exampleSource[req.Service.Kind])
	}
	return graphs.Containers(dag, req, source)
}

// Build a service's runtime image: one container per platform, ready to
// export or publish.
//
// APIs are built in a multi-stage Node LTS build (`npm ci` on a cache volume,
// `npm run build`, production dependencies only) and run as uid 1000 with
// `node dist/main.js`. SPAs are built with Node and served by unprivileged
// nginx (uid 101, port 8080) with the chart's own nginx.conf. Images carry
// the OCI labels source, revision and created.
func (m *Krgeobuk) Build(
	ctx context.Context,
	// Service to build: auth-server, authz-server, auth-client or portal-client.
	service string,
	// The service's source: package.json and package-lock.json at its root.
	// Default: this repository's example of the service's kind
	// (examples/auth-api or examples/spa).
	// +optional
	source *dagger.Directory,
	// Platforms to build (linux/amd64, linux/arm64). Default: the engine's.
	// +optional
	platform []dagger.Platform,
	// Environment whose chart values give an SPA its nginx.conf.
	// +default="production"
	env string,
	// Commit the image is built from (org.opencontainers.image.revision).
	// +optional
	revision string,
	// Repository URL (org.opencontainers.image.source).
	// +default="https://github.com/krgeobuk/krgeobuk-infra"
	sourceURL string,
	// Node.js image for the build stage and the APIs' runtime, pinned by tag
	// and digest. Default: the pinned Node LTS. Override to use a mirror.
	// +optional
	nodeImage string,
	// nginx image of the SPAs. Default: the pinned unprivileged nginx.
	// +optional
	nginxImage string,
) ([]*dagger.Container, error) {
	args, err := checkBuildArgs([]string{service}, platform, env, revision, sourceURL, nodeImage, nginxImage)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	reqs, err := args.requests(ctx)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	built, err := m.built(reqs[0], source)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", service, err)
	}
	return built, nil
}

// platforms converts the module's platform scalars.
func platforms(in []dagger.Platform) []string {
	out := make([]string, 0, len(in))
	for _, p := range in {
		out = append(out, string(p))
	}
	return out
}
