#!/usr/bin/env bash
# Restores a Redis backup into its store after checking its checksum and
# content, and after saying exactly what it replaces (asks, or --yes).
# usage: restore-redis.sh --store NAME --file ARCHIVE [--yes] [--mode container]
# See restore-procedures.md.
set -euo pipefail
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
backup_tool restore --engine redis "$@"
