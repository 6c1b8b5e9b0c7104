#!/bin/sh
# Entry point of the auth-redis and authz-redis containers. POSIX sh because
# redis:alpine has no bash.
#   serve   write the runtime config (redis.conf + port + requirepass from the
#           secret file) with mode 0600 and exec redis-server on it, so the
#           password never appears on a command line
#   health  authenticated PING (password through REDISCLI_AUTH)
set -eu
: "${REDIS_PORT:?REDIS_PORT is not set}"
: "${REDIS_PASSWORD_FILE:?REDIS_PASSWORD_FILE is not set}"
conf_dir="${REDIS_CONF_DIR:-/usr/local/etc/redis}"
run_dir="${REDIS_RUN_DIR:-/tmp/redis}"
pw="$(cat "$REDIS_PASSWORD_FILE")"
case "$pw" in
  '' | *[!A-Za-z0-9._~+=-]*)
    echo "redis-entrypoint: $REDIS_PASSWORD_FILE is empty or has characters outside A-Za-z0-9._~+=-: refusing to run without a usable password" >&2
    exit 1 ;;
esac
case "${1:-serve}" in
  serve)
    umask 077
    mkdir -p "$run_dir"
    {
      printf 'include %s/redis.conf\n' "$conf_dir"
      printf 'bind %s\n' "${REDIS_BIND:-0.0.0.0}"
      printf 'port %s\n' "$REDIS_PORT"
      printf 'dir %s\n' "${REDIS_DATA_DIR:-/data}"
      printf 'requirepass %s\n' "$pw"
    } > "$run_dir/redis.conf"
    exec redis-server "$run_dir/redis.conf" ;;
  health)
    REDISCLI_AUTH="$pw" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q '^PONG$' ;;
  *)
    echo "usage: redis-entrypoint.sh [serve|health]" >&2
    exit 2 ;;
esac
