#!/usr/bin/env bash
# The nightly restore check on the data server: starts the scratch MySQL of
# docker-compose.verify.yml, runs verify-restore.sh with drift allowed (the
# stores keep changing after the backup was taken; structural differences and
# failed restores still fail), and removes the scratch server again. When the
# scratch server cannot be started the check never runs; it is then recorded
# as failed for every store (krgeobuk-backup verify --report-failure), so the
# alerts see it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
infra="$(cd "$here/.." && pwd)"
compose=(docker compose --project-directory "$infra" -f "$infra/docker-compose.verify.yml" --profile verify)
args=("$@")
scratch_up=0
finish() {
  local status=$?
  if [ "$scratch_up" = 1 ]; then
    "${compose[@]}" rm --stop --force scratch-mysql >/dev/null || status=1
  elif [ "$status" != 0 ]; then
    "$here/verify-restore.sh" ${args[@]+"${args[@]}"} \
      --report-failure "the scratch MySQL of docker-compose.verify.yml did not start (exit $status)" || true
  fi
  exit "$status"
}
trap finish EXIT
"${compose[@]}" up -d --wait scratch-mysql
scratch_up=1
"$here/verify-restore.sh" --mode container --allow-drift --scratch-port 3399 "$@"
