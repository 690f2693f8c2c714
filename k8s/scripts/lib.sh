# shellcheck shell=bash disable=SC2034  # REQ_* are read by the scripts that source this
# Sourced by the lab's scripts: the namespace, waiting on the cluster, and one request printed the
# way the original lab printed it.
#
# Environment: NS (highload-dns), REQUEST_TIMEOUT (70 s: longer than nginx's 60 s connect timeout,
# so a request nginx hangs on shows as one slow failure instead of a curl timeout).

NS="${NS:-highload-dns}"
REQUEST_TIMEOUT="${REQUEST_TIMEOUT:-70}"

# Set by request(): the last request's HTTP status ("000": no answer), seconds, pod and db.
REQ_STATUS="" REQ_TOOK="" REQ_POD="" REQ_DB=""

# request N URL: one GET, printed as
#   [NN] HH:MM:SS | backend=<X-Upstream-Addr> | db=<db from the body> | body=<body>
# plus "| FAILED status=<code> after <s>s" when the answer is not a 200. Returns 1 then.
request() {
    local n="$1" url="$2" tmp at out upstream body
    tmp="$(mktemp -d)"
    at="$(date +%H:%M:%S)"
    out="$(curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code} %{time_total}' \
        --max-time "$REQUEST_TIMEOUT" "$url")" || true
    read -r REQ_STATUS REQ_TOOK <<<"$out"
    upstream="$(sed -n 's/^x-upstream-addr: *//Ip' "$tmp/headers" 2>/dev/null | tr -d '\r')"
    body="$(tr -d '\n' <"$tmp/body" 2>/dev/null)"
    rm -rf "$tmp"
    REQ_DB="$(json_field db "$body")"
    REQ_POD="$(json_field pod "$body")"
    printf '[%02d] %s | backend=%s | db=%s | body=%s' "$n" "$at" "${upstream:--}" "${REQ_DB:--}" "${body:--}"
    if [ "$REQ_STATUS" = 200 ]; then
        printf '\n'
        return 0
    fi
    printf ' | FAILED status=%s after %ss\n' "$REQ_STATUS" "$REQ_TOOK"
    return 1
}

# json_field NAME JSON: the string value of "NAME" in a flat JSON object, or nothing.
json_field() {
    sed -n "s/.*\"$1\" *: *\"\\([^\"]*\\)\".*/\\1/p" <<<"$2"
}

# Per EndpointSlice: the names of the pods behind its ready endpoints, one per line. A pod being
# deleted is no longer ready (conditions.ready=false, terminating=true) although it still runs.
READY_PODS_JSONPATH='{range .endpoints[?(@.conditions.ready==true)]}{.targetRef.name}{"\n"}{end}'

# ready_pods SERVICE: the pods behind the Service's ready endpoints (what its DNS answers).
ready_pods() {
    kubectl -n "$NS" get endpointslices -l "kubernetes.io/service-name=$1" \
        -o jsonpath="{range .items[*]}$READY_PODS_JSONPATH{end}"
}

# ready_addresses SERVICE: how many ready pods the Service's DNS answers with.
ready_addresses() {
    ready_pods "$1" | grep -c . || true
}

# wait_ready SERVICE N [SECONDS]: until the Service lists exactly N ready pods (default 180 s).
wait_ready() {
    local service="$1" want="$2" deadline=$((SECONDS + ${3:-180}))
    until [ "$(ready_addresses "$service")" -eq "$want" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "timed out waiting for $want ready pods behind $service" >&2
            return 1
        fi
        sleep 1
    done
}
