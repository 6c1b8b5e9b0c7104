#!/usr/bin/env bash
# Checks that each data store answers an authenticated query and prints one
# line per store; exits 1 naming the stores that do not answer.
# Credentials come from infrastructure/.env (KRGEOBUK_ENV_FILE overrides) and
# reach the clients through a defaults file on a pipe and REDISCLI_AUTH,
# never argv. DATA_SERVER_HOST (default 127.0.0.1) and <STORE>_PORT override
# where each store is reached.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_file="${KRGEOBUK_ENV_FILE:-$here/../.env}"
if [ -r "$env_file" ]; then
  set -a
  # shellcheck source=/dev/null
  source "$env_file"
  set +a
fi
host="${DATA_SERVER_HOST:-127.0.0.1}"

check_mysql() { # prefix port
  local pw_var="${1}_MYSQL_ROOT_PASSWORD"
  timeout 15 mysql --defaults-extra-file=<(printf '[client]\nuser=root\npassword=%s\n' "${!pw_var:-}") \
    --host="$host" --port="$2" --protocol=tcp --connect-timeout=5 --batch --skip-column-names \
    --execute='SELECT 1' 2>&1 | grep -qx 1
}
check_redis() { # prefix port
  local pw_var="${1}_REDIS_PASSWORD"
  REDISCLI_AUTH="${!pw_var:-}" timeout 15 redis-cli -h "$host" -p "$2" ping 2>&1 | grep -qx PONG
}

failed=()
while read -r name engine prefix port; do
  port_var="${prefix}_${engine^^}_PORT"
  port="${!port_var:-$port}"
  if "check_$engine" "$prefix" "$port"; then
    echo "ok    $name ($host:$port)"
  else
    echo "FAIL  $name ($host:$port) does not answer an authenticated query"
    failed+=("$name")
  fi
done <<'STORES'
auth-mysql mysql AUTH 3307
auth-redis redis AUTH 6380
authz-mysql mysql AUTHZ 3308
authz-redis redis AUTHZ 6381
STORES

if [ ${#failed[@]} -gt 0 ]; then
  echo "health-check: ${#failed[@]} store(s) down: ${failed[*]}" >&2
  exit 1
fi
echo "health-check: all stores answer"
