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
test: lint testenv
	$(GO) test -count=1 ./...

## testenv: build (or reuse) the simulated cluster's binaries in $(KRGEOBUK_CACHE)/testenv
.PHONY: testenv
testenv:
	$(GO) run ./internal/testenv/cmd/testenv build

## unit: the Go suite only
unit:
	$(GO) test ./...

## lint: gofmt, go vet and shellcheck
lint: fmt-check vet shellcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v -E '(\.gen\.go$$|/internal/dagger/)')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

shellcheck:
	git ls-files -z '*.sh' .ci/run | xargs -0 -r shellcheck

help:
	@grep -E '^## ' Makefile | sed 's/^## //'
