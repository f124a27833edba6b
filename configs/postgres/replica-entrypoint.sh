#!/usr/bin/env bash
# Entrypoint of the postgres-replica container (same image as the primary).
#
# On first start (no data directory yet) it waits for the primary, clones it with pg_basebackup
# (-R writes standby.signal and primary_conninfo, -X stream copies the WAL needed to be
# consistent, -S uses the slot that init-primary.sh created), then starts postgres as a hot
# standby. On later starts the clone exists and postgres resumes streaming.
#
# Environment: PGDATA (a subdirectory of the volume), POSTGRES_REPLICATION_PASSWORD (required), PRIMARY_HOST (postgres),
# PRIMARY_PORT (5432), REPLICATION_USER (replicator), REPLICATION_SLOT (aioshop_replica).
# Arguments are passed to postgres, e.g. `-c config_file=/etc/postgresql/postgresql.conf`.
set -Eeuo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_REPLICATION_PASSWORD:?set POSTGRES_REPLICATION_PASSWORD}"
PRIMARY_HOST="${PRIMARY_HOST:-postgres}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
REPLICATION_USER="${REPLICATION_USER:-replicator}"
REPLICATION_SLOT="${REPLICATION_SLOT:-aioshop_replica}"
WAL_ARCHIVE=/var/lib/postgresql/wal-archive # primary.conf's archive_command

if [ "${1:-}" = postgres ]; then
    shift
fi

# As root (the image's default user): give the volume to postgres, then continue as postgres.
if [ "$(id -u)" = 0 ]; then
    parent="$(dirname "$PGDATA")"
    mkdir -p "$parent"
    chown postgres:postgres "$parent"
    if [ -d "$PGDATA" ]; then
        find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
        chmod 0700 "$PGDATA"
    fi
    # The WAL archive (primary.conf): written once this server is promoted.
    mkdir -p "$WAL_ARCHIVE"
    chown postgres:postgres "$WAL_ARCHIVE"
    exec gosu postgres "$BASH" "${BASH_SOURCE[0]}" "$@"
fi

# libpq reads it: pg_basebackup now, and the standby's WAL receiver later.
export PGPASSWORD="$POSTGRES_REPLICATION_PASSWORD"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # Clone into a staging directory next to PGDATA and rename it when complete, so a clone
    # interrupted half-way is never mistaken for a data directory.
    staging="${PGDATA}.partial"
    echo "replica: waiting for the primary at ${PRIMARY_HOST}:${PRIMARY_PORT}"
    until pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPLICATION_USER" -d postgres; do
        sleep 1
    done
    until
        rm -rf "$staging"
        pg_basebackup \
            --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" \
            --pgdata="$staging" --write-recovery-conf --wal-method=stream \
            --slot="$REPLICATION_SLOT" --checkpoint=fast --no-password
    do
        echo "replica: pg_basebackup failed; retrying in 3s"
        sleep 3
    done
    # PGDATA must be a subdirectory of the mounted volume (compose.yml: .../data/pgdata), so that
    # this rename is atomic; a mount point cannot be removed.
    if [ -d "$PGDATA" ]; then
        find "$PGDATA" -mindepth 1 -delete
        rmdir "$PGDATA" || {
            echo "replica: PGDATA=$PGDATA must be a subdirectory of the volume, not its root" >&2
            exit 1
        }
    fi
    mv "$staging" "$PGDATA"
    chmod 0700 "$PGDATA"
    echo "replica: cloned the primary into $PGDATA"
fi

exec postgres "$@"
