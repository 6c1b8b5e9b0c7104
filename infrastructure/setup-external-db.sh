#!/usr/bin/env bash
# First install of the data server, run once as root from this folder's checkout:
#   1. .env from .env.example (0600, every change-me replaced by a random password; an existing
#      .env is kept, narrowed to 0600, and refused while it holds a change-me value), the backup
#      folder (0700) and the node exporter's textfile folder;
#   2. docker compose up -d --wait (the files of COMPOSE_FILE in .env);
#   3. the MySQL accounts: each app user with its own database only, the exporter read-only.
# Then: security/firewall-rules.sh --cidr <node CIDR>, and backup/crontab (see README).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
bin="${KRGEOBUK_DATASERVER_BIN:-$repo/bin/krgeobuk-dataserver}"
[ -x "$bin" ] || { echo "krgeobuk-dataserver not found at $bin: run 'make backup-tool' in $repo" >&2; exit 1; }
env_file="${KRGEOBUK_ENV_FILE:-$here/.env}"
"$bin" init --env-file "$env_file" --template "$here/.env.example" "$@"
docker compose --project-directory "$here" --env-file "$env_file" up -d --wait
for store in auth-mysql authz-mysql; do
  "$bin" grants --store "$store" --env-file "$env_file"
done
echo "setup: done; next: security/firewall-rules.sh --cidr <node CIDR> and the backup crontab"
