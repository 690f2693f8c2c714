#!/usr/bin/env bash
# The failover demo against our proxy and then against nginx, each through its own port-forward,
# with both summaries side by side at the end. Full logs in $OUT (default /tmp/hl-compare).
#
#   k8s/scripts/compare.sh
set -euo pipefail
here="$(dirname "$0")"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

out="${OUT:-/tmp/hl-compare}"
mkdir -p "$out"
pf=""
trap '[ -z "$pf" ] || kill "$pf" 2>/dev/null || true' EXIT

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

run proxy 18080
run nginx 18081

for service in proxy nginx; do
    echo
    echo "##### $service"
    sed -n '/^=== summary/,$p' "$out/$service.log"
done
