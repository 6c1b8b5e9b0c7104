#!/usr/bin/env bash
# Copies the verified local backups of every store (or of --store, or of the stores of
# --engine mysql|redis) to the off-host target of the .env (OFFHOST_*: SFTP or S3), reads
# each back, and applies the retention there when the copy succeeded. Extra flags go to
# 'krgeobuk-backup offhost' (--backup-dir, --keep, --max-age, --recopy, --textfile-dir, ...).
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [[ " $* " == *" --store "* ]]; then
  backup_tool offhost "$@"
  exit
fi
stores=(auth-mysql authz-mysql auth-redis authz-redis)
case " $* " in
  *" --engine mysql "*) stores=(auth-mysql authz-mysql) ;;
  *" --engine redis "*) stores=(auth-redis authz-redis) ;;
esac
status=0
for store in "${stores[@]}"; do
  backup_tool offhost --store "$store" "$@" || status=1
done
exit "$status"
