#!/usr/bin/env bash
# Lists the backups of a store, local (default) or off-host (--from remote), newest first, with
# whether each one verifies; an off-host key is what restore-*.sh --from remote --file takes.
# usage: list.sh --store NAME [--database DB] [--from remote] [--backup-dir DIR]
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
backup_tool list "$@"
