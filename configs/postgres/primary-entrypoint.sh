#!/usr/bin/env bash
# Entrypoint of the postgres (primary) container: gives the WAL archive volume (mounted by
# compose.yml, written by primary.conf's archive_command) to postgres, then runs the image's own
# entrypoint with the arguments, e.g. `postgres -c config_file=/etc/postgresql/postgresql.conf`.
# A new named volume is owned by root; the image's entrypoint only prepares PGDATA.
set -Eeuo pipefail

WAL_ARCHIVE=/var/lib/postgresql/wal-archive # primary.conf's archive_command

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$WAL_ARCHIVE"
    chown postgres:postgres "$WAL_ARCHIVE"
    chmod 0700 "$WAL_ARCHIVE"
fi

exec docker-entrypoint.sh "$@"
