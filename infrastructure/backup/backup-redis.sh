#!/usr/bin/env bash
# Backs up the Redis stores (auth-redis authz-redis), or the one named by --store, and applies
# the retention when the run succeeded. Extra flags go to 'krgeobuk-backup backup'
# (--backup-dir, --keep, --max-age, --textfile-dir, --mode container, ...).
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [[ " $* " == *" --store "* ]]; then
  backup_tool backup --engine redis "$@"
  exit
fi
status=0
for store in auth-redis authz-redis; do
  backup_tool backup --engine redis --store "$store" "$@" || status=1
done
exit "$status"
