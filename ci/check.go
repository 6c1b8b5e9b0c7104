package main

import (
	"context"
	"fmt"
	"regexp"

	"dagger/krgeobuk/internal/dagger"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
)

// GoImage is the pinned Go toolchain image of the pre-merge check (Debian
// bookworm, as the project's machines): exact tag and digest, like every
// default image of the module (TestDefaultImagesArePinned).
const GoImage = "docker.io/library/golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d"

// makeTarget is a Makefile target name as the project writes them.
var makeTarget = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Run the pre-merge checks exactly as CI does (`.ci/run`: install the Debian
// packages, then `make test`: lint, generated-code check, chart suite, unit
// and integration tests) in a pinned Go container, with Go's module and build
// caches and the project's tool cache on cache volumes.
//
// +check
func (m *Krgeobuk) Check(
	ctx context.Context,
	// Go image override (a mirror), pinned by tag or digest.
	// +optional
	goImage string,
	// Make targets to run instead of the whole of `.ci/run`, e.g. lint or
	// fmt-check (no Debian packages are installed then).
	// +optional
	target []string,
) error {
	if goImage != "" {
		if err := build.CheckImage(goImage); err != nil {
			return fmt.Errorf("check: go image: %w", err)
		}
	}
	for _, t := range target {
		if !makeTarget.MatchString(t) {
			return fmt.Errorf("check: --target %q is not a make target name", t)
		}
	}
	if _, err := m.checkContainer(goImage, target).Sync(ctx); err != nil {
		return fmt.Errorf("check: %w", explained(err))
	}
	return nil
}

// nodeInstall adds Node.js and npm, which the examples build with, unless
// the Go image already carries them (a mirror prepared for offline runs).
const nodeInstall = "command -v npm >/dev/null 2>&1 || { apt-get update -qq && " +
	"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; }"

func (m *Krgeobuk) checkContainer(goImage string, targets []string) *dagger.Container {
	if goImage == "" {
		goImage = GoImage
	}
	run := []string{"bash", ".ci/run"}
	if len(targets) > 0 {
		run = append([]string{"make"}, targets...)
	}
	return dag.Container().
		From(goImage).
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("krgeobuk-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("krgeobuk-go-build")).
		WithMountedCache("/root/.cache/krgeobuk", dag.CacheVolume("krgeobuk-tools")).
		WithEnvVariable("KRGEOBUK_CACHE", "/root/.cache/krgeobuk").
		WithEnvVariable("CI", "true").
		WithExec([]string{"sh", "-c", nodeInstall}).
		WithDirectory("/src", m.Repo).
		WithWorkdir("/src").
		WithExec(run)
}
