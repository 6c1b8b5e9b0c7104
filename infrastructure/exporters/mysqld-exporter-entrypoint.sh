#!/bin/sh
# Entry point of the mysqld-exporter container (busybox: POSIX sh). Writes the
# exporter's my.cnf with one [client.<name>] section per MySQL instance, so
# Prometheus probes each with /probe?target=HOST:PORT&auth_module=client.<name>,
# then execs mysqld_exporter. The password comes from the secret file and only
# ever lands in the 0600 file.
set -eu
pw="$(cat "${MYSQLD_EXPORTER_PASSWORD_FILE:?MYSQLD_EXPORTER_PASSWORD_FILE is not set}")"
case "$pw" in
  '' | *[!A-Za-z0-9._~+=-]*)
    echo "mysqld-exporter-entrypoint: empty password or characters outside A-Za-z0-9._~+=-" >&2
    exit 1 ;;
esac
cnf="${MYSQLD_EXPORTER_CNF:-/tmp/mysqld-exporter.cnf}"
umask 077
section() { # name host port
  printf '[%s]\nuser=exporter\npassword=%s\nhost=%s\nport=%s\n\n' "$1" "$pw" "$2" "$3"
}
{
  section client auth-mysql 3307
  section client.auth auth-mysql 3307
  section client.authz authz-mysql 3308
} > "$cnf"
[ "${1:-}" = "--render-only" ] && exit 0
exec /bin/mysqld_exporter --config.my-cnf="$cnf" --web.listen-address=":${MYSQLD_EXPORTER_PORT:-9104}"
