// The krgeobuk platform's CI/CD front door: build, publish, integration-test,
// check, deploy, rollback, status and promote its four services, and deploy
// its monitoring stack (Prometheus, Alertmanager, Grafana) through the same
// gated flow.
//
// Every function is a thin adapter: it converts its arguments and calls the
// engine-independent packages under pipelines/ of the krgeobuk-infra
// repository, where every decision lives and is unit-tested. Credentials are
// only ever accepted as secrets (env:NAME, file:PATH, cmd:...), never as plain
// flags.
package main

import (
	"dagger/krgeobuk/internal/dagger"
)

// Krgeobuk builds, tests, publishes and deploys auth-server, authz-server,
// auth-client and portal-client, and deploys the monitoring stack.
type Krgeobuk struct {
	// The krgeobuk-infra checkout: the example services the builds default to
	// and the tree `check` tests.
	Repo *dagger.Directory
}

// New sets the module up on a checkout of krgeobuk-infra (by default the one
// `dagger` runs in).
func New(
	// The krgeobuk-infra checkout; defaults to the directory holding dagger.json.
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", "bin"]
	repo *dagger.Directory,
) *Krgeobuk {
	return &Krgeobuk{Repo: repo}
}
