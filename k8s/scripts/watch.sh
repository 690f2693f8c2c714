#!/usr/bin/env bash
# A terminal "dashboard" for a second window during the demo: the lab's pods, the endpoints the
# headless Services publish (what DNS answers), and the proxy's and pgbalancer's /status, read
# through the API server's service proxy (no port-forward needed).
#
#   k8s/scripts/watch.sh [ROUNDS=300] [INTERVAL=2]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

rounds="${1:-300}"
interval="${2:-2}"

admin_status() {
    kubectl get --raw "/api/v1/namespaces/$NS/services/http:$1:admin/proxy/status" 2>&1 | head -c 2000
    echo
}

for ((i = 1; i <= rounds; i++)); do
    [ -t 1 ] && clear
    echo "== $(date +%H:%M:%S)  namespace $NS  (round $i/$rounds)"
    kubectl -n "$NS" get pods -o wide -l 'app in (backend,postgres,proxy,pgbalancer)'
    echo
    kubectl -n "$NS" get endpointslices -l 'kubernetes.io/service-name in (backend-headless,postgres-replicas)'
    echo
    echo "-- proxy /status"
    admin_status proxy
    echo "-- pgbalancer /status"
    admin_status pgbalancer
    [ "$i" -eq "$rounds" ] || sleep "$interval"
done
