#!/usr/bin/env bash
# Proxy throughput and tail latency: our proxy vs nginx, same origin, one worker/thread each,
# interleaved rounds (direct, nginx, ours, direct, nginx, ours, ...), medians reported.
#
#   bench/http_vs_nginx.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#   BASELINE=/path/to/older/proxy bench/http_vs_nginx.sh ...   # also runs that binary, for before/after
#
# Needs nginx and wrk (scripts/setup.sh --demo installs them) and a release build of the proxy
# (built here when missing). Everything listens on 127.0.3.x; the script stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-3}"
seconds="${2:-10}"
conns="${3:-32}"
origin=127.0.3.1:8000
nginx_proxy=127.0.3.2:8080
ours=127.0.3.3:8080
ours_admin=127.0.3.3:9091
baseline=127.0.3.4:8080
targets=(direct nginx ours)

for tool in nginx wrk; do
    command -v "$tool" >/dev/null || { echo "missing $tool: scripts/setup.sh --demo installs it" >&2; exit 1; }
done
[ -x target/release/proxy ] || cargo build --release --locked -p proxy

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

nginx_conf() { # $1 name, $2 server block
    cat >"$work/$1.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/$1.pid;
error_log $work/$1.error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/$1-body;
    proxy_temp_path $work/$1-proxy;
    fastcgi_temp_path $work/$1-fastcgi;
    uwsgi_temp_path $work/$1-uwsgi;
    scgi_temp_path $work/$1-scgi;
    $2
}
CONF
    nginx -c "$work/$1.conf" -e "$work/$1.error.log" &
    pids+=($!)
}

nginx_conf origin "server { listen $origin; location / { default_type application/json; return 200 '{\"users\":3,\"pod\":\"origin\",\"db\":\"pg1\"}'; } }"
nginx_conf nginx "upstream backend { server $origin; keepalive 64; }
    server { listen $nginx_proxy; location / { proxy_pass http://backend; proxy_http_version 1.1;
             proxy_set_header Connection \"\"; add_header X-Upstream-Addr \$upstream_addr; } }"
RUST_LOG=warn target/release/proxy --listen "$ours" --admin "$ours_admin" --upstream "$origin" --threads 1 &
pids+=($!)
addrs=("$origin" "$nginx_proxy" "$ours")
if [ -n "${BASELINE:-}" ]; then
    RUST_LOG=warn "$BASELINE" --listen "$baseline" --admin 127.0.3.4:9091 --upstream "$origin" --threads 1 &
    pids+=($!)
    targets+=(baseline)
    addrs+=("$baseline")
fi

for addr in "${addrs[@]}"; do
    for _ in $(seq 100); do curl -fs "http://$addr/users" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fs "http://$addr/users" >/dev/null || { echo "$addr does not answer" >&2; exit 1; }
done

# wrk prints "Requests/sec: N" and, with --latency, "99%  Xms".
run() { # $1 addr -> "rps p99_ms"
    local out
    out="$(wrk -t1 -c"$conns" -d"${seconds}s" --latency "http://$1/users")"
    local rps p99
    rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")"
    echo "$rps $p99"
}

declare -A results
for r in $(seq "$rounds"); do
    for name in "${targets[@]}"; do
        case "$name" in direct) addr=$origin ;; nginx) addr=$nginx_proxy ;; ours) addr=$ours ;; baseline) addr=$baseline ;; esac
        line="$(run "$addr")"
        results[$name]+="$line;"
        echo "round $r $name: $line (req/s, p99 ms)" >&2
    done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '| target | req/s (median of %s) | p99 ms (median) |\n|---|---|---|\n' "$rounds"
for name in "${targets[@]}"; do
    rps="$(tr ';' '\n' <<<"${results[$name]}" | awk 'NF {print $1}' | median)"
    p99="$(tr ';' '\n' <<<"${results[$name]}" | awk 'NF {print $2}' | median)"
    printf '| %s | %s | %s |\n' "$name" "$rps" "$p99"
done
echo
echo "wrk -t1 -c$conns -d${seconds}s, $rounds interleaved rounds; nginx 1 worker, proxy --threads 1, access logs off; $(nproc) cores"
