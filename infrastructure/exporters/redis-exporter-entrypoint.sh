#!/bin/sh
# Entry point of the redis-exporter container (alpine: POSIX sh). Writes the
# password map redis_exporter uses for multi-target /scrape (one entry per
# target URI Prometheus may send) and execs redis_exporter with it. Passwords
# come from the secret files and only ever land in the 0600 file.
set -eu
read_pw() {
  v="$(cat "$1")"
  case "$v" in
    '' | *[!A-Za-z0-9._~+=-]*)
      echo "redis-exporter-entrypoint: $1 is empty or has characters outside A-Za-z0-9._~+=-" >&2
      exit 1 ;;
  esac
  printf '%s' "$v"
}
auth_pw="$(read_pw "${AUTH_REDIS_PASSWORD_FILE:?AUTH_REDIS_PASSWORD_FILE is not set}")"
authz_pw="$(read_pw "${AUTHZ_REDIS_PASSWORD_FILE:?AUTHZ_REDIS_PASSWORD_FILE is not set}")"
map="${REDIS_EXPORTER_PASSWORD_MAP:-/tmp/redis-exporter-passwords.json}"
umask 077
{
  printf '{\n'
  printf '  "redis://auth-redis:6380": "%s",\n' "$auth_pw"
  if [ -n "${DATA_SERVER_ADDRESS:-}" ]; then
    printf '  "redis://%s:6380": "%s",\n' "$DATA_SERVER_ADDRESS" "$auth_pw"
    printf '  "redis://%s:6381": "%s",\n' "$DATA_SERVER_ADDRESS" "$authz_pw"
  fi
  printf '  "redis://authz-redis:6381": "%s"\n' "$authz_pw"
  printf '}\n'
} > "$map"
[ "${1:-}" = "--render-only" ] && exit 0
exec /redis_exporter --web.listen-address=":${REDIS_EXPORTER_PORT:-9121}" \
  --redis.addr=redis://auth-redis:6380 --redis.password-file="$map"
