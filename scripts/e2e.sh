#!/usr/bin/env bash
# make e2e: build (or reuse) the Dagger engine and the local images, start the engine with the
# builtin Go SDK image and push the base images to its registry, run the end-to-end tests in its
# network namespace, stop it. `scripts/e2e.sh up` only starts it (make engine-up).
# Every step's time is printed: a report, not an assertion.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=${KRGEOBUK_CACHE:-$HOME/.cache/krgeobuk}
pushed=$cache/dagger-images/pushed.json
engine() { go -C scripts/engine run . "$@"; }
report=$(mktemp)
step() { printf 'e2e: %-30s %5ds\n' "$1" "$((SECONDS - $2))" | tee -a "$report"; }

start_engine() {
  local t=$SECONDS
  engine build; step "engine build" "$t"
  t=$SECONDS
  # the authenticating registry `engine up` runs beside the engine (cached; make test builds it too)
  go run ./internal/registrytest/cmd/registryserver; step "registry build" "$t"
  t=$SECONDS
  # the Go SDK image carries codegen v0.21.8; this builds it (cached) and checks the bindings
  go -C scripts/codegen/tools run ./generate -repo ../../.. -check
  local sdk
  sdk=$(go -C scripts/images run . go-sdk)
  go -C scripts/images run . base >/dev/null
  step "images (Go SDK, base)" "$t"
  if [ "${1:-}" = check-empty-cache ]; then
    # the engine's verbs on an empty cache root, with the binaries just built; before the real
    # engine starts, so only one runs at a time
    t=$SECONDS
    go -C scripts/engine test -tags emptycache -count=1 -run TestEngineStepsOnAnEmptyCache .
    step "engine verbs on an empty cache" "$t"
  fi
  t=$SECONDS; engine up --go-sdk-layout "$sdk"; step "engine start" "$t"
  t=$SECONDS
  mkdir -p "$cache/bin" "${pushed%/*}"
  go -C scripts/images build -o "$cache/bin/krgeobuk-images" .
  engine exec -- "$cache/bin/krgeobuk-images" push --registry 127.0.0.1:5000 >"$pushed"
  step "push base images" "$t"
  echo "e2e: base images in the engine's registry: $pushed"
}

if [ "${1:-}" = up ]; then
  start_engine
  rm -f "$report"
  exit 0
fi

bin=$(mktemp -d)
trap 'rm -rf "$bin" "$report"' EXIT
t=$SECONDS
go -C scripts/engine vet ./...
go -C scripts/engine vet -tags emptycache ./...
go -C scripts/engine test -count=1 ./...
go -C e2e vet ./...
go -C e2e test -count=1 ./daggercall/... ./daggercli/...
step "unit tests" "$t"
trap 'engine down; rm -rf "$bin"; cat "$report"; rm -f "$report"' EXIT
start_engine check-empty-cache
t=$SECONDS; make --no-print-directory images-test; step "image tests (offline runs)" "$t"
t=$SECONDS
go -C e2e test -c -o "$bin/engine.test" .
go -C e2e test -c -o "$bin/module.test" ./moduletest
step "compile tests" "$t"
t=$SECONDS; engine exec --dir "$repo/e2e" -- "$bin/engine.test" -test.v -test.count=1 -test.timeout=30m; step "engine tests" "$t"
t=$SECONDS
KRGEOBUK_E2E_IMAGES=$pushed KRGEOBUK_E2E_REGISTRY=$cache/dagger-engine/state/run/secure-registry.json engine exec --dir "$repo/e2e/moduletest" -- "$bin/module.test" -test.v -test.count=1 -test.timeout=60m
step "module tests" "$t"
