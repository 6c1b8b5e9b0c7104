#!/usr/bin/env bash
# Sourced by the backup scripts: finds the krgeobuk-backup binary and the data
# server's .env. Build the binary with `make backup-tool` (bin/krgeobuk-backup)
# or point KRGEOBUK_BACKUP_BIN at it.
set -euo pipefail
backup_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$backup_here/../.." && pwd)"
if [ -z "${KRGEOBUK_BACKUP_BIN:-}" ]; then
  if [ -x "$repo_root/bin/krgeobuk-backup" ]; then
    KRGEOBUK_BACKUP_BIN="$repo_root/bin/krgeobuk-backup"
  elif command -v krgeobuk-backup >/dev/null 2>&1; then
    KRGEOBUK_BACKUP_BIN="$(command -v krgeobuk-backup)"
  else
    echo "krgeobuk-backup not found: run 'make backup-tool' in $repo_root or set KRGEOBUK_BACKUP_BIN" >&2
    exit 1
  fi
fi
env_args=()
env_file="${KRGEOBUK_ENV_FILE:-$backup_here/../.env}"
if [ -r "$env_file" ]; then
  env_args=(--env-file "$env_file")
fi
# backup_tool COMMAND ARGS...: runs krgeobuk-backup with the .env when there is one.
backup_tool() {
  "$KRGEOBUK_BACKUP_BIN" "$1" ${env_args[@]+"${env_args[@]}"} "${@:2}"
}
