#!/usr/bin/env bash
# Backs up the MySQL stores (auth-mysql authz-mysql), or the one named by --store, and applies
# the retention when the run succeeded. Extra flags go to 'krgeobuk-backup backup'
# (--backup-dir, --keep, --max-age, --textfile-dir, --mode container, ...).
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [[ " $* " == *" --store "* ]]; then
  backup_tool backup --engine mysql "$@"
  exit
fi
status=0
for store in auth-mysql authz-mysql; do
  backup_tool backup --engine mysql --store "$store" "$@" || status=1
done
exit "$status"
