package main

import (
	"context"
	"fmt"

	"dagger/krgeobuk/graphs"
	"dagger/krgeobuk/internal/dagger"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/attest"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/registry"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/request"
)

// Publish builds services and pushes them to a registry, returning one
// repository@sha256:... per service in deploy order. Several platforms are
// pushed as one multi-platform image.
//
// Every service built names its source: its checkout
// (--auth-server-source ../auth-server), a git remote and ref
// (--git auth-server=https://github.com/krgeobuk/auth-server#main), or, for
// development only, this repository's example (--example auth-server). A
// service without one, or with two, is refused before anything is built.
func (m *Krgeobuk) Publish(
	ctx context.Context,
	// Registry host and path; each service goes to <registry>/<service>,
	// e.g. ghcr.io/krgeobuk.
	registry string,
	// Tag to push (e.g. the commit id); deploys use the returned digests.
	tag string,
	// Services to publish. Default: all four. Each needs a source: its
	// --<service>-source, a --git ref or (development only) --example.
	// +optional
	service []string,
	// auth-server's checkout (package.json and package-lock.json at its root).
	// +optional
	// +ignore=["**/node_modules", "**/dist", "**/coverage"]
	authServerSource *dagger.Directory,
	// authz-server's checkout.
	// +optional
	// +ignore=["**/node_modules", "**/dist", "**/coverage"]
	authzServerSource *dagger.Directory,
	// auth-client's checkout.
	// +optional
	// +ignore=["**/node_modules", "**/dist", "**/coverage"]
	authClientSource *dagger.Directory,
	// portal-client's checkout.
	// +optional
	// +ignore=["**/node_modules", "**/dist", "**/coverage"]
	portalClientSource *dagger.Directory,
	// Services to build from a git remote and ref the engine fetches, as
	// service=URL#REF (a branch, tag or commit), e.g.
	// auth-server=https://github.com/krgeobuk/auth-server#main. Each image is
	// labelled with its remote and the commit the ref resolved to.
	// +optional
	git []string,
	// Token for https --git remotes that need one, e.g. env:GIT_TOKEN.
	// +optional
	gitToken *dagger.Secret,
	// Services to build from this repository's examples instead of their own
	// source: only with --env development, never for staging or production.
	// +optional
	example []string,
	// Registry user name.
	// +optional
	username string,
	// Registry password or token, e.g. env:GHCR_TOKEN.
	// +optional
	password *dagger.Secret,
	// PEM file of the CA(s) that signed the registry's TLS certificate,
	// trusted besides the system's when the signature and SBOM are attached
	// (the engine's own push trusts what the engine is configured to trust).
	// +optional
	registryCa *dagger.File,
	// Platforms to build (linux/amd64, linux/arm64), published as one image
	// index. Default: the engine's. npm runs once, on the engine's platform;
	// each platform's image is its base image with that build's output, so an
	// API whose production dependencies are built for one CPU is refused for
	// another. The engine must run the other platform's binaries (the
	// project's engine-up registers an arm64 emulator in the engine's own
	// namespace).
	// +optional
	platform []dagger.Platform,
	// Environment whose chart values give the SPAs their nginx.conf.
	// +default="production"
	env string,
	// Commit the images are built from (org.opencontainers.image.revision).
	// +optional
	revision string,
	// Repository URL of the --<service>-source checkouts
	// (org.opencontainers.image.source); --git and --example set their own.
	// +optional
	sourceURL string,
	// Node.js image override (a mirror), pinned by tag or digest.
	// +optional
	nodeImage string,
	// nginx image override (a mirror), pinned by tag or digest.
	// +optional
	nginxImage string,
	// Private key (PEM, or cosign's key file) that signs each pushed image,
	// e.g. env:COSIGN_KEY: a cosign signature and a CycloneDX SBOM (from the
	// source's package-lock.json) are attached as OCI referrers of its
	// digest. Required for environments that require signatures (staging,
	// production).
	// +optional
	signingKey *dagger.Secret,
	// Password of an encrypted cosign key file, e.g. env:COSIGN_PASSWORD.
	// +optional
	signingKeyPassword *dagger.Secret,
) ([]string, error) {
	refs, err := m.publish(ctx, publishArgs{
		registry: registry, tag: tag, services: service, username: username, password: password, registryCa: registryCa,
		sources: sourceArgs{
			dirs: serviceDirectories(authServerSource, authzServerSource, authClientSource, portalClientSource),
			git:  git, gitToken: gitToken, examples: example,
		},
		platform: platform, env: env, revision: revision, sourceURL: sourceURL, nodeImage: nodeImage, nginxImage: nginxImage,
		signingKey: signingKey, signingKeyPassword: signingKeyPassword,
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.ref)
	}
	return out, nil
}

type publishArgs struct {
	registry, tag         string
	services              []string
	sources               sourceArgs
	username              string
	password              *dagger.Secret
	registryCa            *dagger.File
	platform              []dagger.Platform
	env, revision         string
	sourceURL             string
	nodeImage, nginxImage string
	// signingKey signs what is pushed; nil signs nothing.
	signingKey, signingKeyPassword *dagger.Secret
}

type published struct{ service, ref string }

// publishing is deploy's way to make its images when none are given: build
// and publish, then deploy service -> repository@digest.
func (m *Krgeobuk) publishing(a publishArgs) func(context.Context) (map[string]string, error) {
	return func(ctx context.Context) (map[string]string, error) {
		refs, err := m.publish(ctx, a)
		images := map[string]string{}
		for _, r := range refs {
			images[r.service] = r.ref
		}
		return images, err
	}
}

func (m *Krgeobuk) publish(ctx context.Context, a publishArgs) ([]published, error) {
	targets, err := build.Targets(a.registry, a.tag, a.services)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if (a.username == "") != (a.password == nil) {
		return nil, fmt.Errorf("publish: give both --username and --password, or neither")
	}
	names := make([]string, 0, len(targets))
	for _, t := range targets {
		names = append(names, t.Service)
	}
	args, err := checkBuildArgs(names, a.sources.decide(), a.platform, a.env, a.revision, a.sourceURL, a.nodeImage, a.nginxImage)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	env, err := environment.Load(k8s.Environments, a.env)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := attest.CheckPublish(env, a.signingKey != nil); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	reqs, err := args.requests(ctx)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	signer, err := a.signer(ctx)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	login, err := a.login(ctx, targets)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	var auth *graphs.RegistryAuth
	if a.password != nil {
		auth = &graphs.RegistryAuth{Username: a.username, Password: a.password}
	}
	var out []published
	for i, req := range reqs {
		variants, dir, err := m.built(ctx, args, req, a.sources)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", req.Service.Name, err)
		}
		ref, err := graphs.Publish(ctx, targets[i], variants, auth)
		if err != nil {
			return nil, explained(err)
		}
		if signer != nil {
			if err := attestPublished(ctx, req.Service.Name, ref, dir, signer, login); err != nil {
				return nil, fmt.Errorf("publish: %w", err)
			}
		}
		out = append(out, published{service: req.Service.Name, ref: ref})
	}
	return out, nil
}

// signer reads the signing key; nil without one. Its errors never carry the
// key (attest.NewSigner).
func (a publishArgs) signer(ctx context.Context) (*attest.Signer, error) {
	if a.signingKey == nil {
		return nil, nil
	}
	key, err := a.signingKey.Plaintext(ctx)
	if err != nil {
		return nil, fmt.Errorf("--signing-key: %w", err)
	}
	var password []byte
	if a.signingKeyPassword != nil {
		pw, err := a.signingKeyPassword.Plaintext(ctx)
		if err != nil {
			return nil, fmt.Errorf("--signing-key-password: %w", err)
		}
		password = []byte(pw)
	}
	return attest.NewSigner([]byte(key), password)
}

// attestPublished attaches the SBOM of dir's package-lock.json and the
// signature to the image just pushed, with the push's login.
func attestPublished(ctx context.Context, service, ref string, dir *dagger.Directory, signer *attest.Signer, opts []remote.Option) error {
	var lock []byte
	ok, err := dir.Exists(ctx, attest.LockfileName)
	if err != nil {
		return fmt.Errorf("service %s: %w", service, err)
	}
	if ok {
		data, err := dir.File(attest.LockfileName).Contents(ctx)
		if err != nil {
			return fmt.Errorf("service %s: %w", service, err)
		}
		lock = []byte(data)
	}
	_, err = attest.Published(ctx, service, ref, lock, signer, opts...)
	return err
}

// login is the registry login as go-containerregistry takes it. With
// credentials given it is checked first, so a wrong password or an
// untrusted certificate is refused, naming which, before anything is built.
func (a publishArgs) login(ctx context.Context, targets []build.Target) ([]remote.Option, error) {
	creds := request.Credentials{Username: a.username, Password: secretSource(a.password), CA: fileSource(a.registryCa)}
	opts, _, err := creds.Options(ctx)
	if err != nil || a.password == nil || len(targets) == 0 {
		return opts, err
	}
	return opts, registry.CheckLogin(ctx, targets[0].Repository, creds.Access(), opts...)
}
