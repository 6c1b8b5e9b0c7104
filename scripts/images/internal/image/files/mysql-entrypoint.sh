#!/usr/bin/env bash
# Entrypoint of the local MySQL stand-in (Debian's MariaDB). Like the mysql:8
# image it creates MYSQL_DATABASE and MYSQL_USER/MYSQL_PASSWORD and sets
# MYSQL_ROOT_PASSWORD, then execs its arguments (mysqld --port=P) on 0.0.0.0.
# The secrets go only into a 0600 init file read by the server at start and
# deleted once it answers; they are never echoed nor put on a command line
# (printf is a shell builtin).
set -euo pipefail

datadir=/var/lib/mysql
mkdir -p /run/mysqld "$datadir"
chown mysql:mysql /run/mysqld "$datadir"
if [ ! -d "$datadir/mysql" ]; then
	# --force: a container's hostname may not resolve, which install-db would refuse
	mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db --force
fi

# quote escapes a value for a single-quoted SQL string (from stdin).
quote() { sed -e 's/\\/\\\\/g' -e "s/'/''/g"; }

init=/run/mysqld/init.sql
bt='`'
db=
(
	umask 077
	{
		if [ -n "${MYSQL_ROOT_PASSWORD:-}" ]; then
			printf "ALTER USER 'root'@'localhost' IDENTIFIED BY '%s';\n" "$(printf '%s' "$MYSQL_ROOT_PASSWORD" | quote)"
		fi
		if [ -n "${MYSQL_DATABASE:-}" ]; then
			db=$(printf '%s' "$MYSQL_DATABASE" | sed "s/$bt/$bt$bt/g")
			printf 'CREATE DATABASE IF NOT EXISTS %s%s%s;\n' "$bt" "$db" "$bt"
		fi
		if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
			user=$(printf '%s' "$MYSQL_USER" | quote)
			printf "CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s';\n" "$user" "$(printf '%s' "$MYSQL_PASSWORD" | quote)"
			if [ -n "${MYSQL_DATABASE:-}" ]; then
				printf "GRANT ALL ON %s%s%s.* TO '%s'@'%%';\n" "$bt" "$db" "$bt" "$user"
			fi
		fi
		printf 'FLUSH PRIVILEGES;\n'
	} >"$init"
	chown mysql:mysql "$init"
)
unset MYSQL_PASSWORD MYSQL_ROOT_PASSWORD

if [ "$#" -eq 0 ]; then
	set -- mysqld
fi
case "$1" in
mysqld | mariadbd)
	# the init file has been read once the server answers; remove it then
	(
		for _ in $(seq 1 300); do
			if mysqladmin --no-defaults --protocol=socket --socket=/run/mysqld/mysqld.sock ping --silent >/dev/null 2>&1; then
				break
			fi
			sleep 0.5
		done
		rm -f "$init"
	) &
	exec "$@" --user=mysql --datadir="$datadir" --socket=/run/mysqld/mysqld.sock --bind-address=0.0.0.0 --init-file="$init"
	;;
esac
rm -f "$init"
exec "$@"
