#!/usr/bin/env bash
# Weekly table maintenance of the MySQL stores (auth-mysql authz-mysql, or --store): ANALYZE
# TABLE on every table, OPTIMIZE TABLE on fragmented ones (--optimize-all: every one), and the
# binary logs older than --binlog-days (default 7) purged. Extra flags go to
# 'krgeobuk-dataserver maintain'. Needs bin/krgeobuk-dataserver (make backup-tool) and the .env.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${KRGEOBUK_DATASERVER_BIN:-$repo/bin/krgeobuk-dataserver}"
[ -x "$bin" ] || { echo "krgeobuk-dataserver not found at $bin: run 'make backup-tool' in $repo" >&2; exit 1; }
env_file="${KRGEOBUK_ENV_FILE:-$here/../.env}"
if [[ " $* " == *" --store "* ]]; then
  exec "$bin" maintain --env-file "$env_file" "$@"
fi
status=0
for store in auth-mysql authz-mysql; do
  "$bin" maintain --env-file "$env_file" --store "$store" "$@" || status=1
done
exit "$status"
