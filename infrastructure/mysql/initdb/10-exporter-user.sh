#!/usr/bin/env bash
# Runs once, when a MySQL data volume is first initialised (the image runs
# executable files in /docker-entrypoint-initdb.d): creates the read-only
# account mysqld_exporter logs in with. Passwords are read from the secret
# files and reach mysql through a defaults file on a pipe, never argv.
set -euo pipefail
root_pw="$(cat "${MYSQL_ROOT_PASSWORD_FILE:?MYSQL_ROOT_PASSWORD_FILE is not set}")"
exporter_pw="$(cat "${MYSQL_EXPORTER_PASSWORD_FILE:-/run/secrets/mysql_exporter_password}")"
case "$exporter_pw" in
  '' | *[!A-Za-z0-9._~+=-]*)
    echo "10-exporter-user: the exporter password is empty or has characters outside A-Za-z0-9._~+=-" >&2
    exit 1 ;;
esac
mysql --defaults-extra-file=<(printf '[client]\nuser=root\npassword=%s\n' "$root_pw") <<SQL
CREATE USER IF NOT EXISTS 'exporter'@'%' IDENTIFIED BY '${exporter_pw}' WITH MAX_USER_CONNECTIONS 3;
GRANT PROCESS, REPLICATION CLIENT, SELECT ON *.* TO 'exporter'@'%';
SQL
echo "10-exporter-user: account 'exporter' ready"
