#!/usr/bin/env bash
# Entry point of a replica pod (a Deployment, so pod names are random):
#   1. claim a cluster_name on the primary: the lowest pg<n> that no live standby streams under
#      and no other pod claimed in the last minute (it may still be cloning);
#   2. on first start (empty data directory) clone the primary with pg_basebackup and add
#      standby.signal;
#   3. run postgres as a hot standby under that cluster_name, which the backend reports as "db",
#      in the foreground as PID 1, so SIGTERM is its smart shutdown.
# Scaling 2 → 1 → 2 hands the freed name to the new pod, so the lab keeps printing pg1/pg2.
set -euo pipefail
: "${PRIMARY_HOST:?}" "${REPLICATION_PASSWORD:?}" "${POD_NAME:?}" "${PGDATA:?}"
name_prefix=pg

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$(dirname "$PGDATA")" "$PGDATA"
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

passfile="$(dirname "$PGDATA")/pgpass"
printf '*:*:*:replicator:%s\n' "$REPLICATION_PASSWORD" >"$passfile"
chmod 600 "$passfile"
export PGPASSFILE="$passfile" PGHOST="$PRIMARY_HOST" PGPORT=5432 PGUSER=replicator PGCONNECT_TIMEOUT=3

until pg_isready -q -d postgres; do
    echo "replica: waiting for the primary at $PRIMARY_HOST"
    sleep 2
done

# One transaction under an advisory lock, so two pods starting together get different names.
# application_name in pg_stat_replication is each live standby's cluster_name.
name="$(psql -d postgres -qAtX -v ON_ERROR_STOP=1 -v pod="$POD_NAME" -v prefix="$name_prefix" <<'SQL' | tail -n 1
BEGIN;
SELECT FROM pg_advisory_xact_lock(hashtext('replica_claims'));
WITH taken AS (
    SELECT application_name AS name FROM pg_stat_replication
    UNION
    SELECT name FROM replica_claims
     WHERE pod <> :'pod' AND claimed_at > now() - interval '1 minute'
), choice AS (
    SELECT coalesce(
        (SELECT name FROM replica_claims
          WHERE pod = :'pod' AND name NOT IN (SELECT name FROM taken) LIMIT 1),
        (SELECT :'prefix' || n FROM generate_series(1, 1000) AS n
          WHERE :'prefix' || n NOT IN (SELECT name FROM taken) ORDER BY n LIMIT 1)
    ) AS name
)
INSERT INTO replica_claims (name, pod, claimed_at)
SELECT name, :'pod', now() FROM choice
ON CONFLICT (name) DO UPDATE SET pod = excluded.pod, claimed_at = excluded.claimed_at
RETURNING name;
COMMIT;
SQL
)"
case "$name" in
    "$name_prefix"[0-9]*) echo "replica: pod $POD_NAME is $name" ;;
    *) echo "replica: could not claim a cluster_name on the primary (got '$name')" >&2; exit 1 ;;
esac

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "replica: cloning $PRIMARY_HOST into $PGDATA"
    pg_basebackup --pgdata="$PGDATA" --wal-method=stream --checkpoint=fast --no-password
    touch "$PGDATA/standby.signal"
fi

# Settings on the command line win over the postgresql.auto.conf cloned from the primary.
exec postgres \
    -c listen_addresses='*' \
    -c hot_standby=on \
    -c cluster_name="$name" \
    -c primary_conninfo="host=$PRIMARY_HOST port=5432 user=replicator passfile=$passfile application_name=$name"
