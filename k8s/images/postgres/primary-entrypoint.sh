#!/usr/bin/env bash
# Entry point of the Postgres primary (a StatefulSet pod, or a container of the lab's stack).
# On an empty PGDATA, once:
#   1. initdb with the superuser password from the Secret (scram-sha-256);
#   2. on a server listening on its local socket only: the lab's roles (app, pgcheck, replicator)
#      with their passwords, database app loaded with backend/schema.sql, the table replicas
#      claim their cluster_name in, replication settings;
#   3. a pg_hba that admits the pod CIDR (POD_CIDR) and in-pod probes, nothing else.
# Then, every start: postgres in the foreground as PID 1, so SIGTERM is its smart shutdown.
#
# Environment: POSTGRES_PASSWORD, APP_PASSWORD, CHECK_PASSWORD, REPLICATION_PASSWORD (the Secret),
# POD_CIDR (set at build time, the pod's environment wins), PGDATA.
set -euo pipefail
: "${PGDATA:?}"

if [ "$(id -u)" = 0 ]; then
    # Volumes arrive owned by root: hand PGDATA to postgres, then drop root for good.
    mkdir -p "$PGDATA"
    chown postgres:postgres "$(dirname "$PGDATA")" "$PGDATA"
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?from the Secret}" "${APP_PASSWORD:?from the Secret}"
    : "${CHECK_PASSWORD:?from the Secret}" "${REPLICATION_PASSWORD:?from the Secret}"
    : "${POD_CIDR:?set at build time or in the environment}"
    echo "primary: initialising $PGDATA (pod CIDR $POD_CIDR)"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --pgdata="$PGDATA" --username=postgres --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"

    # Only the local socket while the roles do not exist yet.
    pg_ctl --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses=''" start
    psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username postgres)
    "${psql[@]}" --dbname postgres \
        -v app_pw="$APP_PASSWORD" -v check_pw="$CHECK_PASSWORD" -v repl_pw="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE app LOGIN PASSWORD :'app_pw';
-- pgbalancer's health check: log in, pg_is_in_recovery(), replay lag.
CREATE ROLE pgcheck LOGIN PASSWORD :'check_pw';
GRANT pg_monitor TO pgcheck;
-- Streams WAL to the replicas; reads pg_stat_replication to pick a free cluster_name.
CREATE ROLE replicator LOGIN REPLICATION PASSWORD :'repl_pw';
GRANT pg_read_all_stats TO replicator;
CREATE DATABASE app OWNER app;

-- Which replica pod goes by which cluster_name (pg1, pg2, …): see replica-entrypoint.sh.
CREATE TABLE replica_claims (
    name       text PRIMARY KEY,
    pod        text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE replica_claims OWNER TO replicator;

ALTER SYSTEM SET cluster_name = 'primary';
ALTER SYSTEM SET listen_addresses = '*';
-- Replicas clone without a slot; keep enough WAL for one to catch up after its base backup.
ALTER SYSTEM SET wal_keep_size = '256MB';
SQL
    # The same schema and rows the local lab and the tests load, owned by the app role.
    "${psql[@]}" --username app --dbname app --file /schema/schema.sql

    cat >"$PGDATA/pg_hba.conf" <<HBA
# TYPE  DATABASE     USER        ADDRESS       METHOD
local   all          all                       trust
host    all          all         127.0.0.1/32  trust
host    all          all         ::1/128       trust
host    replication  replicator  $POD_CIDR     scram-sha-256
host    all          all         $POD_CIDR     scram-sha-256
HBA
    pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
    echo "primary: initialised"
fi

exec postgres
