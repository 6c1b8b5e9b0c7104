package main

import (
	"context"
	"fmt"

	"dagger/krgeobuk/internal/dagger"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
)

// GoImage is the pinned Go toolchain image of the pre-merge check (Debian
// bookworm, as the project's machines).
const GoImage = "docker.io/library/golang:1.26.8-bookworm"

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
) error {
	if goImage != "" {
		if err := build.CheckImage(goImage); err != nil {
			return fmt.Errorf("check: go image: %w", err)
		}
	}
	_, err := m.checkContainer(goImage).Sync(ctx)
	return err
}

func (m *Krgeobuk) checkContainer(goImage string) *dagger.Container {
	if goImage == "" {
		goImage = GoImage
	}
	return dag.Container().
		From(goImage).
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("krgeobuk-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("krgeobuk-go-build")).
		WithMountedCache("/root/.cache/krgeobuk", dag.CacheVolume("krgeobuk-tools")).
		WithEnvVariable("KRGEOBUK_CACHE", "/root/.cache/krgeobuk").
		WithEnvVariable("CI", "true").
		// The examples build with Node.js and npm, which the Go image lacks.
		WithExec([]string{"sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm"}).
		WithDirectory("/src", m.Repo).
		WithWorkdir("/src").
		WithExec([]string{"bash", ".ci/run"})
}
