#!/usr/bin/env bash
# make e2e: build (or reuse) and start the Dagger engine, run the end-to-end tests in its network
# namespace, stop it. GO_SDK_LAYOUT=DIR (an OCI layout of the builtin Go SDK image) adds the
# module tests. Every step's time is printed: a report, not an assertion.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
engine() { go -C scripts/engine run . "$@"; }
step() { printf 'e2e: %-22s %4ds\n' "$1" "$((SECONDS - $2))" >>"$report"; }
report=$(mktemp)
bin=$(mktemp -d)
trap 'rm -rf "$bin" "$report"' EXIT

t=$SECONDS; go -C scripts/engine test -count=1 ./...; go -C e2e test -count=1 ./daggercall/...; step "unit tests" "$t"
t=$SECONDS; engine build; step "engine build" "$t"
sdk=()
[ -n "${GO_SDK_LAYOUT:-}" ] && sdk=(--go-sdk-layout "$(realpath "$GO_SDK_LAYOUT")")
t=$SECONDS; engine up "${sdk[@]}"; step "engine up" "$t"
trap 'engine down; rm -rf "$bin"; cat "$report"; rm -f "$report"' EXIT
t=$SECONDS; go -C e2e test -c -o "$bin/engine.test" .; go -C e2e test -c -o "$bin/module.test" ./moduletest; step "compile tests" "$t"
t=$SECONDS; engine exec --dir "$repo/e2e" -- "$bin/engine.test" -test.v -test.count=1 -test.timeout=30m; step "engine tests" "$t"
if [ ${#sdk[@]} -gt 0 ]; then
  t=$SECONDS; engine exec --dir "$repo/e2e/moduletest" -- "$bin/module.test" -test.v -test.count=1 -test.timeout=60m; step "module tests" "$t"
else
  echo "e2e: module tests not run: GO_SDK_LAYOUT is unset (the builtin Go SDK image comes from the images part)" | tee -a "$report"
fi
