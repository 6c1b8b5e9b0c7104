#!/usr/bin/env bash
# The nightly restore check on the data server: starts the scratch MySQL of
# docker-compose.verify.yml, runs verify-restore.sh with drift allowed (the
# stores keep changing after the backup was taken; structural differences and
# failed restores still fail), and removes the scratch server again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
infra="$(cd "$here/.." && pwd)"
compose=(docker compose --project-directory "$infra" -f "$infra/docker-compose.verify.yml" --profile verify)
"${compose[@]}" up -d --wait scratch-mysql
trap '"${compose[@]}" rm --stop --force scratch-mysql >/dev/null' EXIT
"$here/verify-restore.sh" --mode container --allow-drift --scratch-port 3399 "$@"
