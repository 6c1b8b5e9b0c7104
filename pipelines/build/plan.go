// Package build plans the images of the services: which base images, which
// platforms, which labels, where to publish, as plain functions that need no
// engine. The container graphs that carry a plan out live with the Dagger
// module (ci/graphs).
package build

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
)

// Pinned base images: exact tag and manifest-list digest, so a build is the
// same build tomorrow. Overridable (local mirrors), see Images.
const (
	// NodeImage is the Node.js LTS image both kinds build with and the APIs run on
	// (Debian bookworm; its user "node" is uid 1000).
	NodeImage = "docker.io/library/node:22.22.0-bookworm-slim@sha256:dd9d21971ec4395903fa6143c2b9267d048ae01ca6d3ea96f16cb30df6187d94"
	// NginxImage serves the SPAs: nginx as uid 101 on 8080, pid under /tmp.
	NginxImage = "docker.io/nginxinc/nginx-unprivileged:1.28.0@sha256:cafbd84f76d7ccb0a2346f4c5209c3e494533d82ba3821f552c2e08a99111476"
	// GoImage is the Go toolchain the pre-merge check runs the Makefile's
	// container targets in (Debian bookworm, as the project's machines).
	GoImage = "docker.io/library/golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d"
)

// Runtime users the chart's securityContext expects (runAsUser).
const (
	APIUser = "1000:1000"
	SPAUser = "101:101"
)

// NPMCacheVolume is the cache volume key of npm's download cache, shared by
// every build and integration test so `npm ci` downloads each package once.
const NPMCacheVolume = "krgeobuk-npm-cache"

// Platforms a build may target.
var Platforms = []string{"linux/amd64", "linux/arm64"}

// Images are the base images of a build.
type Images struct {
	Node  string
	Nginx string
}

// DefaultImages returns the pinned images.
func DefaultImages() Images { return Images{Node: NodeImage, Nginx: NginxImage} }

// WithOverrides returns the images with every non-empty override applied,
// each checked by CheckImage.
func (i Images) WithOverrides(node, nginx string) (Images, error) {
	out := i
	if node != "" {
		out.Node = node
	}
	if nginx != "" {
		out.Nginx = nginx
	}
	for what, ref := range map[string]string{"node image": out.Node, "nginx image": out.Nginx} {
		if err := CheckImage(ref); err != nil {
			return Images{}, fmt.Errorf("%s: %w", what, err)
		}
	}
	return out, nil
}

// CheckImage accepts an image reference with a digest or an exact tag; a
// floating "latest" (or no tag at all) is refused: a build must be repeatable.
func CheckImage(ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("image %q: %w", ref, err)
	}
	if t, ok := r.(name.Tag); ok {
		last := ref[strings.LastIndex(ref, "/")+1:]
		if !strings.Contains(last, ":") {
			return fmt.Errorf("image %q has no tag or digest; pin it", ref)
		}
		if t.TagStr() == "latest" {
			return fmt.Errorf("image %q: the tag latest is not a pin", ref)
		}
	}
	return nil
}

// CheckPlatforms returns the platforms to build: the given ones, checked and
// deduplicated, or none (meaning the engine's own platform).
func CheckPlatforms(platforms []string) ([]string, error) {
	var out []string
	for _, p := range platforms {
		p = strings.TrimSpace(p)
		if !slices.Contains(Platforms, p) {
			return nil, fmt.Errorf("platform %q is not supported (supported: %s)", p, strings.Join(Platforms, ", "))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Request is one service to build: everything but its source.
type Request struct {
	Service catalog.Service
	// Platforms to build; empty means the engine's platform. Checked with
	// CheckPlatforms.
	Platforms []string
	Images    Images
	// Labels are added to every image (see Labels.Map).
	Labels map[string]string
	// NginxConf is the chart's nginx.conf; required for SPAs.
	NginxConf string
}

// Variants checks the request and returns the platforms to build, one image
// each, in order; "" stands for the engine's own platform.
func (r Request) Variants() ([]string, error) {
	platforms, err := CheckPlatforms(r.Platforms)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", r.Service.Name, err)
	}
	if !r.Service.IsAPI() && r.NginxConf == "" {
		return nil, fmt.Errorf("build %s: an SPA needs the chart's nginx.conf", r.Service.Name)
	}
	if len(platforms) == 0 {
		platforms = []string{""}
	}
	return platforms, nil
}

// SortedLabels are the label names in a fixed order, so the same inputs give
// the same graph and the same cache keys.
func (r Request) SortedLabels() []string { return slices.Sorted(maps.Keys(r.Labels)) }

// Labels are the OCI annotations every image carries.
type Labels struct {
	// Source is the repository URL the image was built from.
	Source string
	// Revision is the VCS commit (hex), "" when unknown.
	Revision string
	// Created is the build time.
	Created time.Time
	// Example is the repository path of the example the image was built
	// from, "" for a service's own source (see ExampleLabel).
	Example string
}

var revisionPattern = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

// Map returns the labels as org.opencontainers.image.* keys, leaving out the
// unknown ones. An invalid revision is an error (it would mislead whoever
// traces an image back to its commit).
func (l Labels) Map(service string) (map[string]string, error) {
	out := map[string]string{
		"org.opencontainers.image.title": service,
	}
	if l.Source != "" {
		if !strings.HasPrefix(l.Source, "https://") {
			return nil, fmt.Errorf("label source %q: want an https:// repository URL", l.Source)
		}
		out["org.opencontainers.image.source"] = l.Source
	}
	if l.Revision != "" {
		if !revisionPattern.MatchString(l.Revision) {
			return nil, fmt.Errorf("label revision %q: want a hex commit id", l.Revision)
		}
		out["org.opencontainers.image.revision"] = l.Revision
	}
	if !l.Created.IsZero() {
		out["org.opencontainers.image.created"] = l.Created.UTC().Format(time.RFC3339)
	}
	if l.Example != "" {
		out[ExampleLabel] = l.Example
	}
	return out, nil
}

// DefaultSource is this repository: the source label of images built from
// its examples.
const DefaultSource = "https://github.com/krgeobuk/krgeobuk-infra"

// Target is where one service's image is published.
type Target struct {
	Service string
	// Repository is registry/path/service, e.g. ghcr.io/krgeobuk/auth-server.
	Repository string
	// Address is Repository:tag, what the engine publishes to.
	Address string
}

// Targets resolves services to their publish addresses under registry (a
// registry host with an optional path, e.g. ghcr.io/krgeobuk) and tag. Any
// bad name, registry or tag fails the whole list before anything is pushed.
func Targets(registry, tag string, services []string) ([]Target, error) {
	registry = strings.TrimSuffix(strings.TrimSpace(registry), "/")
	if registry == "" {
		return nil, fmt.Errorf("registry is empty; give a host and path such as ghcr.io/krgeobuk")
	}
	if strings.Contains(registry, "://") {
		return nil, fmt.Errorf("registry %q: give host and path without a scheme", registry)
	}
	if tag == "" || tag == "latest" {
		return nil, fmt.Errorf("tag %q: give an exact tag such as the commit id", tag)
	}
	if host := strings.SplitN(registry, "/", 2)[0]; !strings.ContainsAny(host, ".:") && host != "localhost" {
		return nil, fmt.Errorf("registry %q: the first part must be a registry host (ghcr.io, 127.0.0.1:5000, localhost:5000)", registry)
	}
	sel, err := catalog.Select(services)
	if err != nil {
		return nil, err
	}
	var out []Target
	for _, s := range sel {
		repo, err := name.NewRepository(registry+"/"+s.Name, name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("registry %q: %w", registry, err)
		}
		t, err := name.NewTag(repo.Name()+":"+tag, name.StrictValidation)
		if err != nil {
			return nil, fmt.Errorf("tag %q: %w", tag, err)
		}
		out = append(out, Target{Service: s.Name, Repository: repo.Name(), Address: t.Name()})
	}
	return out, nil
}

// Registry is the registry host of the target, the one a login is for.
func (t Target) Registry() (string, error) {
	repo, err := name.NewRepository(t.Repository)
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", t.Service, err)
	}
	return repo.RegistryStr(), nil
}

// Pinned turns the digest the engine answers after a publish (the address
// with @sha256:...) into repository@digest, refusing anything else.
func (t Target) Pinned(published string) (string, error) {
	ref, err := name.NewDigest(published)
	if err != nil {
		return "", fmt.Errorf("service %s: publish answered %q, not a digest reference: %w", t.Service, published, err)
	}
	if ref.Context().Name() != t.Repository {
		return "", fmt.Errorf("service %s: publish answered %q, outside %s", t.Service, published, t.Repository)
	}
	return t.Repository + "@" + ref.DigestStr(), nil
}
