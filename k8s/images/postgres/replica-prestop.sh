#!/usr/bin/env bash
# preStop hook of a replica pod (Kubernetes runs it before SIGTERM; the lab's containers stack
# runs it with docker exec): give the pod's cluster_name claim back so a replacement can take the
# same pg<n> at once, then wait PRESTOP_DELAY (default 5 s: CoreDNS' TTL) so that balancers, which
# saw the pod leave DNS, stop sending new sessions here before postgres' smart shutdown refuses
# them. Its sessions in flight finish either way.
set -uo pipefail
: "${PRIMARY_HOST:?}" "${POD_NAME:?}" "${PGDATA:?}"
PGPASSFILE="$(dirname "$PGDATA")/pgpass"
export PGPASSFILE PGHOST="$PRIMARY_HOST" PGPORT=5432 PGUSER=replicator PGCONNECT_TIMEOUT=3
# psql interpolates :'pod' in its input, not in -c.
psql -d postgres -qAtX -v ON_ERROR_STOP=1 -v pod="$POD_NAME" >/dev/null \
    <<<"DELETE FROM replica_claims WHERE pod = :'pod';" ||
    echo "replica: could not release the claim of $POD_NAME (a replacement waits a minute for it)" >&2
sleep "${PRESTOP_DELAY:-5}"
