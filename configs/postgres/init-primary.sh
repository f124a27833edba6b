#!/usr/bin/env bash
# Runs once, when the primary's data directory is first initialised (mounted into
# /docker-entrypoint-initdb.d/ by compose.yml): creates the `replicator` role that the streaming
# replica connects as, a physical replication slot for it, and the pg_hba.conf line that lets
# it connect from the compose network.
set -Eeo pipefail

: "${POSTGRES_REPLICATION_PASSWORD:?set POSTGRES_REPLICATION_PASSWORD}"
REPLICATION_USER="${REPLICATION_USER:-replicator}"
REPLICATION_SLOT="${REPLICATION_SLOT:-aioshop_replica}"

# Values go in as psql variables (:'name' quotes them), never spliced into the SQL text.
psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v user="$REPLICATION_USER" \
    -v password="$POSTGRES_REPLICATION_PASSWORD" \
    -v slot="$REPLICATION_SLOT" <<'SQL'
SELECT format('CREATE ROLE %I WITH LOGIN REPLICATION PASSWORD %L', :'user', :'password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user')
\gexec
SELECT pg_create_physical_replication_slot(:'slot')
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = :'slot');
SQL

# `samenet`: any address in the subnets this server is attached to, i.e. the compose network.
# (The image's `host all all all` line does not match replication connections.)
cat >> "$PGDATA/pg_hba.conf" <<HBA

# streaming replication for the compose replica (added by init-primary.sh)
host replication ${REPLICATION_USER} samenet scram-sha-256
HBA
