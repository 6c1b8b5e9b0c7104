# krgeobuk-infra: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
# Heavy builds (control plane, engine, images) are cached here, keyed by version.
KRGEOBUK_CACHE ?= $(HOME)/.cache/krgeobuk
export KRGEOBUK_CACHE

.PHONY: all deps test unit lint vet fmt-check shellcheck

all: test

## deps: install the Debian packages the tests need (idempotent)
deps:
	scripts/install-deps.sh

## test: everything CI runs: static checks, then the whole Go suite
# The cold tool builds take minutes: they run before `go test`, outside its timeouts. deps is
# idempotent and takes a second once the packages are there, so a fresh clone needs no other step.
test: deps lint testenv monitoring-tools s3-server registry-server example-images dagger-module
	$(GO) test -count=1 -timeout 30m ./...

## testenv: build (or reuse) in $(KRGEOBUK_CACHE)/testenv the simulated cluster's binaries and the real node's (kubelet, kube-proxy, containerd, CoreDNS, kube-network-policies, pause)
.PHONY: testenv
testenv:
	$(GO) run ./internal/testenv/cmd/testenv build

## example-images: build (or reuse, cached in $KRGEOBUK_CACHE) the example API and SPA images the real-node tests run, the base images under them, and the Prometheus image (from monitoring-tools' binary) the monitoring stack runs there
.PHONY: example-images
example-images:
	$(GO) run ./internal/exampleimages/cmd/exampleimages

## unit: the Go suite only
unit:
	$(GO) test ./...

## check-container: what any container can run (`dagger call check`): lint, the module's contract tests and the container set of the Go suite
# No simulated cluster, database server, Prometheus or namespace: `make test` and `make e2e` run those.
.PHONY: check-container unit-container testsets
check-container: lint dagger-module unit-container

## unit-container: the Go tests that start no cluster, server or namespace (`make testsets` lists what is left out, and why)
unit-container:
	$(GO) run ./internal/testsets/cmd/testsets run -count=1

## testsets: list, per package, the tests the container set runs and the ones it leaves out (with the helper that needs the machine)
testsets:
	$(GO) run ./internal/testsets/cmd/testsets list

## lint: gofmt, go vet, shellcheck, actionlint and the generated-code check
lint: fmt-check vet shellcheck actionlint generate-check tidy-check

# The file list is its own step: a git that fails (no repository) must fail the check, not leave
# gofmt nothing to read.
fmt-check:
	@files=$$(git ls-files '*.go' | grep -v -E '(\.gen\.go$$|/internal/dagger/)'); \
	  out=$$(gofmt -l $$files); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

shellcheck:
	git ls-files -z '*.sh' .ci/run | xargs -0 -r shellcheck

## tidy-check: fail when a module that builds on the root module needs `go mod tidy` (a root dependency added without it breaks e2e's first go command)
.PHONY: tidy-check
tidy-check:
	@for m in . e2e scripts/images scripts/engine ci; do 	  $(GO) -C $$m mod tidy -diff >/dev/null || { echo "$$m: go.mod/go.sum need 'go -C $$m mod tidy'"; exit 1; }; 	done

## generate: regenerate the Dagger module's bindings (ci/) offline, from the Go module proxy only
.PHONY: generate generate-check dagger-module actionlint
generate:
	$(GO) -C scripts/codegen/tools run ./generate -repo ../../..

## generate-check: test the SDL converter; fail when committed bindings differ from a fresh generation
generate-check:
	$(GO) -C scripts/codegen/tools vet ./...
	$(GO) -C scripts/codegen/tools test -count=1 ./...
	$(GO) -C scripts/codegen/tools run ./generate -repo ../../.. -check

## dagger-module: build, vet and contract-test the Dagger module (ci/ is its own Go module)
dagger-module:
	$(GO) -C ci build ./...
	$(GO) -C ci vet ./...
	$(GO) -C ci test -count=1 ./...

## actionlint: check .github/workflows (actionlint built once from the module proxy into the cache)
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := $(KRGEOBUK_CACHE)/actionlint/$(ACTIONLINT_VERSION)/actionlint
actionlint: $(ACTIONLINT)
	$(ACTIONLINT) -shellcheck "$$(command -v shellcheck)" .github/workflows/*.yml .github/workflow-templates/*.yml

$(ACTIONLINT):
	GOBIN=$(dir $@) GOFLAGS=-mod=mod $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

help:
	@grep -E '^## ' Makefile | sed 's/^## //'

## monitoring-tools: build (once, cached in $KRGEOBUK_CACHE/monitoring) Prometheus, promtool, Alertmanager and the exporters the monitoring tests run
.PHONY: monitoring-tools
monitoring-tools:
	$(GO) run ./internal/promtest/cmd/promtools

## s3-server: build (once, cached in $KRGEOBUK_CACHE/versitygw/<version>) versitygw, the S3 server the off-host backup tests run
.PHONY: s3-server
s3-server:
	$(GO) run ./internal/offhosttest/cmd/s3server

## registry-server: build (once, cached in $KRGEOBUK_CACHE/registry/<version>) the CNCF distribution registry the registry tests run (TLS, htpasswd)
.PHONY: registry-server
registry-server:
	$(GO) run ./internal/registrytest/cmd/registryserver

## demo: a gated deploy on a simulated cluster: a healthy release, then a crash-looping one rolled back
.PHONY: demo bench-deploy
demo:
	$(GO) run ./internal/demo

## bench-deploy: our gated deploy vs Helm's --atomic/--wait on the simulated cluster (about 7 min)
bench-deploy:
	$(GO) test -count=1 -run '^$$' -bench BenchmarkDeploy -benchtime=1x -timeout 30m ./pipelines/deploy/

## backup-tool: build bin/krgeobuk-backup and bin/krgeobuk-dataserver, which the data server's scripts run
.PHONY: backup-tool
backup-tool:
	$(GO) build -o bin/krgeobuk-backup ./infrastructure/backup/cmd/krgeobuk-backup
	$(GO) build -o bin/krgeobuk-dataserver ./infrastructure/dataserver/cmd/krgeobuk-dataserver

## bench-backup: krgeobuk-backup vs plain mysqldump|gzip on a 500k-row database (time and archive size)
.PHONY: bench-backup
bench-backup:
	$(GO) test -count=1 -run '^$$' -bench BenchmarkMySQLBackupRestore -benchtime=1x -timeout 30m ./infrastructure/backup/

## images: build (or reuse, cached in $KRGEOBUK_CACHE/dagger-images) the Dagger Go SDK image and the e2e base images
.PHONY: images images-test
images:
	$(GO) -C scripts/images run . go-sdk
	$(GO) -C scripts/images run . base

## images-test: the images' tests: layers, configs and real offline runs of every image (slow cold; part of e2e)
images-test: images
	$(GO) -C scripts/images vet ./...
	$(GO) -C scripts/images test -count=1 -timeout 60m ./...

## engine-build: build (once, cached in $KRGEOBUK_CACHE/dagger-engine) the Dagger engine v0.21.8 from the Go module proxy, patched
.PHONY: engine-build engine-up engine-down e2e dagger-call
ENGINE := $(GO) -C scripts/engine run .
engine-build:
	$(ENGINE) build

## engine-up: start the engine in its own namespaces with the builtin Go SDK image and the local base images in its registry
engine-up:
	scripts/e2e.sh up

## engine-down: stop the engine and check it left nothing behind
engine-down:
	$(ENGINE) down

## e2e: build and start the engine, run the end-to-end tests (every module function) on it, stop it
e2e:
	scripts/e2e.sh

## dagger: run the dagger CLI (built with the engine) on the running engine: make dagger ARGS='call check --help'
.PHONY: dagger
dagger:
	$(ENGINE) exec --dir $(CURDIR) -- sh -c '_EXPERIMENTAL_DAGGER_RUNNER_HOST=$$KRGEOBUK_ENGINE_HOST exec "$$KRGEOBUK_DAGGER_CLI" "$$@"' dagger $(ARGS)

## dagger-call: run a module function on the running engine without the dagger CLI: make dagger-call ARGS='check'
dagger-call:
	$(GO) -C e2e build -o $(KRGEOBUK_CACHE)/bin/krgeobuk-call ./cmd/krgeobuk-call
	$(ENGINE) exec --dir $(CURDIR) -- $(KRGEOBUK_CACHE)/bin/krgeobuk-call --module $(CURDIR) $(ARGS)

## demo-real: `make demo`'s story on a real node (pods really run): TestDemoOnRealPods, verbose
.PHONY: demo-real bench-realnode bench-canary
demo-real: testenv
	$(GO) test -count=1 -v -run '^TestDemoOnRealPods$$' -timeout 20m ./internal/realnodetest/

## bench-realnode: our gated deploy vs Helm --wait/--atomic on the real node (healthy upgrade, crash loop), side by side
bench-realnode: testenv
	$(GO) test -count=1 -run '^$$' -bench BenchmarkRealNodeDeploy -benchtime=1x -timeout 40m ./internal/realnodetest/

## bench-canary: a release failing half its requests shipped as a canary vs rolled out at once, on the real node: the share of requests that failed, side by side
bench-canary: testenv example-images
	$(GO) test -count=1 -run '^$$' -bench BenchmarkBadReleaseCanaryVsFullRollout -benchtime=1x -timeout 40m ./internal/realnodetest/
