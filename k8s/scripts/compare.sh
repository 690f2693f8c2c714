#!/usr/bin/env bash
# The failover demo through each front door in turn, each through its own port-forward, with the
# summaries side by side at the end:
#   proxy           our proxy; the backends reach Postgres through pgbalancer
#   nginx-original  nginx as the original lab ran it (resolved once); Postgres through HAProxy
#   nginx           nginx with the resolver fix; Postgres through HAProxy
# For the nginx runs the backends' DATABASE_URL is switched to HAProxy (kubectl set env, a
# rollout), as in the original lab, and switched back to pgbalancer at the end.
#
#   k8s/scripts/compare.sh                          all three
#   k8s/scripts/compare.sh proxy nginx-original     some of them
#
# Environment: NGINX_DB (haproxy: Postgres for the nginx runs; pgbalancer to compare the HTTP side
# alone), OUT (/tmp/hl-compare: full logs), NS and the demo's REQUESTS, INTERVAL, ….
set -euo pipefail
here="$(dirname "$0")"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

fronts=("$@")
[ "${#fronts[@]}" -gt 0 ] || fronts=(proxy nginx-original nginx)
nginx_db="${NGINX_DB:-haproxy}"
out="${OUT:-/tmp/hl-compare}"
mkdir -p "$out"
pf=""
db_now=pgbalancer
cleanup() {
    [ -z "$pf" ] || kill "$pf" 2>/dev/null || true
    [ "$db_now" = pgbalancer ] || use_db pgbalancer || true
}
trap cleanup EXIT

# use_db pgbalancer|haproxy: the Service the backends' DATABASE_URL names; waits for the rollout.
use_db() {
    local url="postgres://app:\$(APP_PASSWORD)@$1.$NS.svc.cluster.local:5432/app"
    echo "compare: backends reach Postgres through $1"
    kubectl -n "$NS" set env deployment/backend "DATABASE_URL=$url" >/dev/null
    kubectl -n "$NS" rollout status deployment/backend --timeout=180s >/dev/null
    wait_ready backend-headless 2
    db_now="$1"
}

# run SERVICE LOCAL_PORT: port-forward to the Service, wait until /users answers, run the demo.
run() {
    local service="$1" port="$2" deadline=$((SECONDS + 30))
    kubectl -n "$NS" port-forward "svc/$service" "$port:80" >"$out/$service.port-forward.log" 2>&1 &
    pf=$!
    until curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/users"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "compare: port-forward to $service did not come up (see $out/$service.port-forward.log)" >&2
            return 1
        fi
        sleep 1
    done
    "$here/demo_failover.sh" "http://127.0.0.1:$port/users" | tee "$out/$service.log"
    kill "$pf" 2>/dev/null || true
    wait "$pf" 2>/dev/null || true
    pf=""
}

port=18080
for front in "${fronts[@]}"; do
    case "$front" in
        proxy) db=pgbalancer ;;
        nginx | nginx-original) db="$nginx_db" ;;
        *) echo "compare: unknown front '$front' (proxy, nginx-original, nginx)" >&2; exit 2 ;;
    esac
    [ "$db" = "$db_now" ] || use_db "$db"
    run "$front" "$port"
    # It kept the deleted pods' addresses; a restart makes it resolve the Service again.
    if [ "$front" = nginx-original ]; then
        kubectl -n "$NS" rollout restart deployment/nginx-original >/dev/null
    fi
    port=$((port + 1))
done

for front in "${fronts[@]}"; do
    echo
    echo "##### $front"
    sed -n '/^=== summary/,$p' "$out/$front.log"
done
