#!/usr/bin/env bash
# Restores the newest backup of each store (or of --store) into a scratch
# instance, compares it with the source and writes the
# krgeobuk_backup_restore_verify_* metrics. MySQL dumps go into the scratch
# server of docker-compose.verify.yml (--scratch-port 3399); Redis snapshots
# are read by a private local redis-server.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [[ " $* " == *" --store "* ]]; then
  backup_tool verify "$@"
  exit
fi
status=0
for store in auth-mysql authz-mysql auth-redis authz-redis; do
  backup_tool verify --store "$store" "$@" || status=1
done
exit "$status"
