package main

import (
	"context"
	"fmt"

	"dagger/krgeobuk/graphs"
	"dagger/krgeobuk/internal/dagger"

	"github.com/krgeobuk/krgeobuk-infra/k8s"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/appenv"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/build"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/catalog"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/environment"
	"github.com/krgeobuk/krgeobuk-infra/pipelines/itest"
)

// Run an API's own tests (`npm test`, or a named package.json script) against
// throwaway MySQL 8 and Redis 7 services, bound under the host names and
// ports the chart gives the service (auth-mysql:3307 and auth-redis:6380 for
// auth-server), with exactly the variables of the chart's ConfigMap and
// Secret for the environment. Secret values are random per run and reach the
// test only as secrets. Returns the test output; a failing test fails the call.
func (m *Krgeobuk) IntegrationTest(
	ctx context.Context,
	// API to test: auth-server or authz-server.
	service string,
	// The service's checkout: package.json, package-lock.json and its tests.
	// Give exactly one of --source, --git or --example.
	// +optional
	// +ignore=["**/node_modules", "**/dist", "**/coverage"]
	source *dagger.Directory,
	// The service's git remote and ref, URL#REF, fetched by the engine.
	// +optional
	git string,
	// Token for an https --git remote that needs one, e.g. env:GIT_TOKEN.
	// +optional
	gitToken *dagger.Secret,
	// Test this repository's example API instead (examples/auth-api): only
	// with --env development.
	// +optional
	example bool,
	// Environment whose chart values give the variables.
	// +default="staging"
	env string,
	// package.json script to run instead of `npm test`.
	// +optional
	script string,
	// Node.js image override (a mirror), pinned by tag or digest.
	// +optional
	nodeImage string,
	// MySQL image override (a mirror), pinned by tag or digest.
	// +optional
	mysqlImage string,
	// Redis image override (a mirror), pinned by tag or digest.
	// +optional
	redisImage string,
) (string, error) {
	s, err := catalog.Lookup(service)
	if err != nil {
		return "", fmt.Errorf("integration-test: %w", err)
	}
	if !s.IsAPI() {
		return "", fmt.Errorf("integration-test: %s is an SPA; integration tests run for the APIs (%s)", service, apiNames())
	}
	given := oneService(service, source, git, gitToken, example)
	if _, err := environment.Load(k8s.Environments, env); err != nil {
		return "", fmt.Errorf("integration-test: %w", err)
	}
	decide := given.decide()
	decide.Env, decide.Services = env, []string{service}
	srcs, err := build.Sources(decide)
	if err != nil {
		return "", fmt.Errorf("integration-test %s: %w", service, err)
	}
	if _, err := itest.Command(script); err != nil {
		return "", fmt.Errorf("integration-test %s: %w", service, err)
	}
	images, err := itest.DefaultImages().WithOverrides(nodeImage, mysqlImage, redisImage)
	if err != nil {
		return "", fmt.Errorf("integration-test %s: %w", service, err)
	}
	chartSrc, err := appenv.EmbeddedSource(env)
	if err != nil {
		return "", fmt.Errorf("integration-test: %w", err)
	}
	senv, err := appenv.ForService(ctx, chartSrc, service, nil)
	if err != nil {
		return "", fmt.Errorf("integration-test: %w", err)
	}
	if _, err := itest.Stores(senv); err != nil {
		return "", fmt.Errorf("integration-test: %w", err)
	}

	source, _, err = m.sourceDir(ctx, srcs[service], given, service)
	if err != nil {
		return "", fmt.Errorf("integration-test %s: %w", service, err)
	}
	creds, err := graphs.NewCredentials(dag, senv)
	if err != nil {
		return "", fmt.Errorf("integration-test: %w", err)
	}
	ctr, err := graphs.TestContainer(dag, graphs.TestRequest{Env: senv, Source: source, Images: images, Script: script, Credentials: creds})
	if err != nil {
		return "", fmt.Errorf("integration-test: %w", err)
	}
	out, err := ctr.Stdout(ctx)
	if err != nil {
		return "", fmt.Errorf("integration-test %s: %w", service, explained(err))
	}
	return out, nil
}

func apiNames() string {
	var out string
	for _, s := range catalog.All() {
		if s.IsAPI() {
			if out != "" {
				out += ", "
			}
			out += s.Name
		}
	}
	return out
}
