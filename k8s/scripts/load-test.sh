#!/usr/bin/env bash
# Sends COUNT requests to URL, one every INTERVAL seconds, and prints one line per request:
#   [NN] HH:MM:SS | backend=<X-Upstream-Addr> | db=<db from the body> | body=<body>
# The db comes from the backend's answer itself (the original lab grepped HAProxy's log).
#
#   k8s/scripts/load-test.sh http://127.0.0.1:8080/users [COUNT=20] [INTERVAL=0.5]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

url="${1:?usage: load-test.sh URL [COUNT] [INTERVAL]}"
count="${2:-20}"
interval="${3:-0.5}"

failed=0
for ((i = 1; i <= count; i++)); do
    request "$i" "$url" || failed=$((failed + 1))
    [ "$i" -eq "$count" ] || sleep "$interval"
done
echo "load-test: $count requests, $failed failed"
[ "$failed" -eq 0 ]
