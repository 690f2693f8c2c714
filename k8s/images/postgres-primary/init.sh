#!/usr/bin/env bash
# Runs once, when the official image initialises an empty data directory (docker-entrypoint-initdb.d),
# as the postgres user against a server listening on the local socket only.
# Creates the lab's roles with the passwords from the Secret, the app database with
# backend/schema.sql, the table replicas claim their cluster_name in, and a pg_hba that admits
# the pod CIDR only.
set -euo pipefail
: "${APP_PASSWORD:?from the Secret}" "${CHECK_PASSWORD:?from the Secret}"
: "${REPLICATION_PASSWORD:?from the Secret}" "${POD_CIDR:?set at build time}" "${PGDATA:?}"

psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER")

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

-- Which replica pod goes by which cluster_name (pg1, pg2, …): see the replica's entrypoint.
CREATE TABLE replica_claims (
    name       text PRIMARY KEY,
    pod        text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE replica_claims OWNER TO replicator;

ALTER SYSTEM SET cluster_name = 'primary';
-- Replicas clone without a slot; keep enough WAL for one to catch up after its base backup.
ALTER SYSTEM SET wal_keep_size = '256MB';
SQL

# The same schema and rows the local lab and the tests load, owned by the app role.
"${psql[@]}" --username app --dbname app --file /schema/schema.sql

# The image's default admits every address; the lab admits the pod CIDR (and in-pod probes).
cat >"$PGDATA/pg_hba.conf" <<HBA
# TYPE  DATABASE     USER        ADDRESS       METHOD
local   all          all                       trust
host    all          all         127.0.0.1/32  trust
host    all          all         ::1/128       trust
host    replication  replicator  $POD_CIDR     scram-sha-256
host    all          all         $POD_CIDR     scram-sha-256
HBA
