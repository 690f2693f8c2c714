#!/usr/bin/env bash
# The original lab's failover demo, phase by phase, against URL (the proxy or nginx through a
# port-forward). Each phase changes the cluster, sends requests printed one per line, and counts
# the failed ones; a summary table closes the run. The cluster is scaled back to 2 backends and
# 2 replicas at the end.
#
#   k8s/scripts/demo_failover.sh http://127.0.0.1:8080/users
#
# Environment: REQUESTS per phase (10), DROP_REQUESTS in C.drop (30), INTERVAL between requests
# (0.5 s), NS, REQUEST_TIMEOUT (see lib.sh).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

url="${1:?usage: demo_failover.sh URL}"
requests="${REQUESTS:-10}"
drop_requests="${DROP_REQUESTS:-30}"
interval="${INTERVAL:-0.5}"

summary=()
k() { kubectl -n "$NS" "$@"; }
scale() { k scale "deployment/$1" --replicas="$2" >/dev/null; }

# phase NAME COUNT DESCRIPTION: COUNT requests; one summary row.
phase() {
    local name="$1" count="$2" failed=0 slowest=0 pods="" dbs="" i
    echo
    echo "=== phase $name: $3"
    for ((i = 1; i <= count; i++)); do
        request "$i" "$url" || failed=$((failed + 1))
        slowest="$(awk -v a="$slowest" -v b="$REQ_TOOK" 'BEGIN { print (b > a) ? b : a }')"
        [[ -z "$REQ_POD" || " $pods " == *" $REQ_POD "* ]] || pods="${pods:+$pods }$REQ_POD"
        [[ -z "$REQ_DB" || " $dbs " == *" $REQ_DB "* ]] || dbs="${dbs:+$dbs }$REQ_DB"
        [ "$i" -eq "$count" ] || sleep "$interval"
    done
    summary+=("$(printf '%-10s %8s %7s %9ss  %-12s %s' "$name" "$count" "$failed" "$slowest" "${dbs:--}" "${pods:--}")")
}

echo "demo_failover: $url, namespace $NS"
scale backend 2
scale postgres-replicas 2
wait_ready backend-headless 2
wait_ready postgres-replicas 2

phase 0 "$requests" "baseline: 2 backends, 2 replicas"

scale postgres-replicas 1
wait_ready postgres-replicas 1
phase A "$requests" "replicas scaled to 1"

scale postgres-replicas 2
phase A.restore "$requests" "replicas back to 2 (requests start at once)"
wait_ready postgres-replicas 2

scale backend 1
phase B "$requests" "backend scaled to 1 (requests start at once)"

scale backend 2
wait_ready backend-headless 2
phase B.restore "$requests" "backend back to 2"

scale backend 1
scale postgres-replicas 1
wait_ready backend-headless 1
wait_ready postgres-replicas 1
phase C "$requests" "1 backend, 1 replica"

# The pod behind the one ready endpoint: the pod the earlier scale-down terminated may still be
# Running through its shutdown delay, and deleting that one would show no failover at all.
old_pod="$(ready_pods backend-headless | head -n 1)"
[ -n "$old_pod" ] || { echo "demo_failover: no ready backend pod to delete" >&2; exit 1; }
k delete pod "$old_pod" --wait=false >/dev/null
phase C.drop "$drop_requests" "the only backend pod ($old_pod) deleted"

k rollout status deployment/backend --timeout=180s >/dev/null
wait_ready backend-headless 1
phase C.restore "$requests" "replacement rolled out"
restored_ok=1
[ "$REQ_POD" != "$old_pod" ] || restored_ok=0

scale backend 2
scale postgres-replicas 2
wait_ready backend-headless 2
wait_ready postgres-replicas 2

echo
echo "=== summary ($url)"
printf '%-10s %8s %7s %10s  %-12s %s\n' phase requests failed slowest dbs pods
printf '%s\n' "${summary[@]}"
if [ "$restored_ok" -eq 0 ]; then
    echo "C.restore was still served by the deleted pod $old_pod"
fi
echo "(cluster scaled back to 2 backends, 2 replicas)"
