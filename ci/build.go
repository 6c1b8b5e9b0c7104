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

// buildArgs are the checked arguments shared by build, publish and deploy.
type buildArgs struct {
	services  []catalog.Service
	platforms []string
	images    build.Images
	// labels are the ones the caller gave; each source adjusts them
	// (build.Source.Labels).
	labels  build.Labels
	env     string
	sources map[string]build.Source
}

// checkBuildArgs checks everything a build needs that takes no engine call,
// where each service's source comes from included (build.Sources decides).
func checkBuildArgs(services []string, sources build.SourceArgs, platform []dagger.Platform, env, revision, sourceURL, nodeImage, nginxImage string) (*buildArgs, error) {
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
	sources.Env, sources.Services = env, services
	srcs, err := build.Sources(sources)
	if err != nil {
		return nil, err
	}
	return &buildArgs{services: sel, platforms: plats, images: images, labels: labels, env: env, sources: srcs}, nil
}

// requests resolves, without the engine, everything each build needs but its
// source and labels: an SPA's nginx.conf from the chart.
func (a *buildArgs) requests(ctx context.Context) ([]build.Request, error) {
	var out []build.Request
	src, err := appenv.EmbeddedSource(a.env)
	if err != nil {
		return nil, err
	}
	for _, s := range a.services {
		req := build.Request{Service: s, Platforms: a.platforms, Images: a.images}
		if !s.IsAPI() {
			if req.NginxConf, err = appenv.NginxConf(ctx, src, s.Name); err != nil {
				return nil, err
			}
		}
		out = append(out, req)
	}
	return out, nil
}

// built builds one request from the source build.Sources decided for it,
// labels the images accordingly and returns its platform variants.
func (m *Krgeobuk) built(ctx context.Context, a *buildArgs, req build.Request, given sourceArgs) ([]*dagger.Container, *dagger.Directory, error) {
	src := a.sources[req.Service.Name]
	dir, commit, err := m.sourceDir(ctx, src, given, req.Service.Name)
	if err != nil {
		return nil, nil, err
	}
	labels, err := src.Labels(a.labels, commit).Map(req.Service.Name)
	if err != nil {
		return nil, nil, err
	}
	req.Labels = labels
	cs, err := graphs.Containers(ctx, dag, req, dir)
	return cs, dir, err
}

// sourceDir is the directory src names (the caller's checkout, the engine's
// git checkout, or the example), and for a git source the commit its ref
// resolved to.
func (m *Krgeobuk) sourceDir(ctx context.Context, src build.Source, given sourceArgs, service string) (*dagger.Directory, string, error) {
	switch src.Kind {
	case build.FromDirectory:
		return given.dirs[service], "", nil
	case build.FromExample:
		return m.Repo.Directory(src.Example), "", nil
	case build.FromGit:
		repo := dag.Git(src.URL, dagger.GitOpts{HTTPAuthToken: given.gitToken})
		commit, err := repo.Ref(src.Ref).Commit(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("git %s#%s: %w", src.URL, src.Ref, explained(err))
		}
		// The commit, not the ref: a branch that moves while this runs
		// must not change what the label says was built.
		return repo.Commit(commit).Tree(dagger.GitRefTreeOpts{DiscardGitDir: true}), commit, nil
	}
	return nil, "", fmt.Errorf("%s: no source", service)
}

// sourceArgs are the source arguments of one call, as the engine gave them.
type sourceArgs struct {
	dirs     map[string]*dagger.Directory
	git      []string
	gitToken *dagger.Secret
	examples []string
	// one: a function building a single service with its own flags
	// (--source, --git URL#REF, --example).
	one bool
}

// serviceDirectories names the per-service directory arguments of publish
// and deploy (--auth-server-source ...) by service; a test keeps the keys
// equal to the catalog's services.
func serviceDirectories(authServer, authzServer, authClient, portalClient *dagger.Directory) map[string]*dagger.Directory {
	return map[string]*dagger.Directory{
		"auth-server": authServer, "authz-server": authzServer, "auth-client": authClient, "portal-client": portalClient,
	}
}

// oneService is the sources of a function building one service.
func oneService(service string, source *dagger.Directory, git string, gitToken *dagger.Secret, example bool) sourceArgs {
	out := sourceArgs{dirs: map[string]*dagger.Directory{service: source}, gitToken: gitToken, one: true}
	if git != "" {
		out.git = []string{service + "=" + git}
	}
	if example {
		out.examples = []string{service}
	}
	return out
}

// decide is what build.Sources needs to know of the arguments: which
// services have a directory, not the directories.
func (s sourceArgs) decide() build.SourceArgs {
	out := build.SourceArgs{Git: s.git, Examples: s.examples, One: s.one}
	for _, name := range catalog.Names() {
		if s.dirs[name] != nil {
			out.Directories = append(out.Directories, name)
		}
	}
	return out
}

// Build a service's runtime image: one container per platform, ready to
// export or publish.
//
// APIs are built in a multi-stage Node LTS build (`npm ci` on a cache volume,
// `npm run build`, production dependencies only) and run as uid 1000 with
// `node dist/main.js`. SPAs are built with Node and served by unprivileged
// nginx (uid 101, port 8080) with the chart's own nginx.conf. Images carry
// the OCI labels source, revision and created.
//
// The source is always named: the service's checkout (--source), a git
// remote and ref the engine fetches (--git), or, for development only, this
// repository's example (--example). Anything else is refused before the
// engine is asked for anything.
func (m *Krgeobuk) Build(
	ctx context.Context,
	// Service to build: auth-server, authz-server, auth-client or portal-client.
	service string,
	// The service's checkout: package.json and package-lock.json at its
	// root. Give exactly one of --source, --git or --example.
	// +optional
	// +ignore=["**/node_modules", "**/dist", "**/coverage"]
	source *dagger.Directory,
	// The service's git remote and ref, URL#REF (a branch, tag or commit),
	// fetched by the engine, e.g.
	// https://github.com/krgeobuk/auth-server#main. The image is labelled with
	// the remote and the commit the ref resolved to.
	// +optional
	git string,
	// Token for an https --git remote that needs one, e.g. env:GIT_TOKEN.
	// +optional
	gitToken *dagger.Secret,
	// Build this repository's example of the service's kind
	// (examples/auth-api, examples/spa) instead of its own source: only with
	// --env development, never for staging or production.
	// +optional
	example bool,
	// Platforms to build (linux/amd64, linux/arm64), published as one image
	// index. Default: the engine's. npm runs once, on the engine's platform;
	// each platform's image is its base image with that build's output, so an
	// API whose production dependencies are built for one CPU is refused for
	// another. The engine must run the other platform's binaries (the
	// project's engine-up registers an arm64 emulator in the engine's own
	// namespace).
	// +optional
	platform []dagger.Platform,
	// Environment whose chart values give an SPA its nginx.conf.
	// +default="production"
	env string,
	// Commit the image is built from (org.opencontainers.image.revision).
	// +optional
	revision string,
	// Repository URL of --source (org.opencontainers.image.source); --git
	// and --example set their own.
	// +optional
	sourceURL string,
	// Node.js image for the build stage and the APIs' runtime, pinned by tag
	// and digest. Default: the pinned Node LTS. Override to use a mirror.
	// +optional
	nodeImage string,
	// nginx image of the SPAs. Default: the pinned unprivileged nginx.
	// +optional
	nginxImage string,
) ([]*dagger.Container, error) {
	given := oneService(service, source, git, gitToken, example)
	args, err := checkBuildArgs([]string{service}, given.decide(), platform, env, revision, sourceURL, nodeImage, nginxImage)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	reqs, err := args.requests(ctx)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	built, _, err := m.built(ctx, args, reqs[0], given)
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
