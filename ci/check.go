package main

import (
	"context"
	"fmt"
	"regexp"

	"dagger/krgeobuk/internal/dagger"

	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
)

// makeTarget is a Makefile target name as the project writes them.
var makeTarget = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Run the pre-merge checks any container can run: `make check-container`,
// that is fmt-check, vet, shellcheck, actionlint, generate-check (lint),
// dagger-module (the module's contract tests) and unit-container (every Go
// test that starts no simulated cluster, database server, Prometheus or
// network namespace: unit, chart and policy checks; `make testsets` lists
// what is left out and why). They run in a pinned Go container with Go's
// module and build caches and the project's tool cache on cache volumes.
// The rest of the suite (make test, make e2e on a real engine) is a
// host-level CI job.
//
// +check
func (m *Krgeobuk) Check(
	ctx context.Context,
	// Go image override (a mirror), pinned by tag or digest.
	// +optional
	goImage string,
	// Make targets to run instead of check-container, e.g. lint or
	// fmt-check.
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

// CheckTarget is what check runs unless told otherwise: the container set.
const CheckTarget = "check-container"

// shellcheckInstall adds shellcheck, the one Debian package check-container
// needs (lint of the shell scripts), unless the Go image already carries it
// (a mirror prepared for offline runs).
const shellcheckInstall = "command -v shellcheck >/dev/null 2>&1 || { apt-get update -qq && " +
	"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck; }"

func (m *Krgeobuk) checkContainer(goImage string, targets []string) *dagger.Container {
	if goImage == "" {
		goImage = build.GoImage
	}
	if len(targets) == 0 {
		targets = []string{CheckTarget}
	}
	run := append([]string{"make"}, targets...)
	return dag.Container().
		From(goImage).
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("krgeobuk-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("krgeobuk-go-build")).
		WithMountedCache("/root/.cache/krgeobuk", dag.CacheVolume("krgeobuk-tools")).
		WithEnvVariable("KRGEOBUK_CACHE", "/root/.cache/krgeobuk").
		WithEnvVariable("CI", "true").
		WithExec([]string{"sh", "-c", shellcheckInstall}).
		WithDirectory("/src", m.Repo).
		WithWorkdir("/src").
		WithExec(run)
}
