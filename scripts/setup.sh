#!/usr/bin/env bash
# Installs what the build and the test suite need on a fresh Debian machine, and nothing that is
# already there. Called by `make test` and `make demo`; safe to run again.
#
#   scripts/setup.sh            packages the build and tests need, nginx, HAProxy, wrk,
#                               Prometheus and a font for the charts included (the tests run them), the
#                               Docker engine (started when none answers) and the base images the
#                               lab's images build from (pulled, or made here without a registry)
#   scripts/setup.sh --demo     also curl, for trying the demo by hand
set -euo pipefail
cd "$(dirname "$0")/.."

want=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }

pg_bin() {
    # Debian installs the server binaries outside PATH, one directory per major version.
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/pg_basebackup" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    return 1
}

have_cmd cmake || want+=(cmake)          # Pingora's build (libz-ng-sys) needs it
pg_bin >/dev/null || want+=(postgresql)
have_cmd pgbench || want+=(postgresql-contrib)
have_cmd c++ || want+=(g++)
# The lab makes a deleted pod's IP stop answering with iptables (as root), as in a cluster.
have_cmd iptables || want+=(iptables)
# k8s/check.sh: render the manifests, lint the scripts, and a venv for kubernetes-validate.
# Debian's kubernetes-client is kubectl 1.20, older than the manifests need (1.21+); k8s/check.sh
# says so. A machine with a current kubectl keeps it.
have_cmd kubectl || want+=(kubernetes-client)
have_cmd shellcheck || want+=(shellcheck)
have_cmd python3 || want+=(python3)
python3 -c 'import ensurepip' >/dev/null 2>&1 || want+=(python3-venv)
# The contestants and load generator of `bench` (bench/tests/speed.rs runs a short one), the
# proxies the lab compares ours with, and the charts' font.
have_cmd nginx || want+=(nginx-light)
have_cmd haproxy || want+=(haproxy)
have_cmd wrk || want+=(wrk)
# `bench instr` counts instructions per request under callgrind (bench/tests/speed.rs too).
have_cmd valgrind || want+=(valgrind)
# The demo's Prometheus scrapes our stack and the dashboard is drawn from it (bench/tests/lab.rs
# too). Where systemd runs, Debian also starts a prometheus service of its own; the lab's runs
# apart, on its own address and data directory.
have_cmd prometheus || want+=(prometheus)
# proxy/tests/health.rs looks at the proxy's stats page in headless Chromium.
have_cmd chromium || want+=(chromium)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || want+=(fonts-dejavu-core)
# The images in k8s/images and the containers demo (bench/tests/containers.rs runs a short one):
# Debian's Docker engine, and debootstrap for a base image where no registry can be reached.
have_cmd dockerd || want+=(docker.io)
have_cmd debootstrap || want+=(debootstrap)
if [ "${1:-}" = "--demo" ]; then
    have_cmd curl || want+=(curl)
fi
if [ "${#want[@]}" -gt 0 ]; then
    echo "setup: installing ${want[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if have_cmd sudo; then sudo="sudo"; else
            echo "setup: need root to install: apt-get install -y ${want[*]}" >&2
            exit 1
        fi
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

if ! have_cmd cargo; then
    echo "setup: no Rust toolchain found; install one with rustup (https://rustup.rs) and run again" >&2
    exit 1
fi
# kubernetes-validate comes from PyPI (Debian does not package it); a venv in the gitignored .venv/
# keeps it off the system Python. Pinned so a new release cannot change what CI accepts.
kv_version="1.34.1"
venv=".venv/k8s"
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "kubernetes-validate $kv_version\|$kv_version"; then
    echo "setup: installing kubernetes-validate $kv_version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "kubernetes-validate==$kv_version"
fi
# pgbalancer/tests/clients/matrix.py logs in and cancels through the balancer with the clients
# people use: psql (Debian's, above) and the Python drivers psycopg, asyncpg and pg8000, from PyPI
# into a venv of their own, as wheels only. Pinned like kubernetes-validate. psycopg-binary 3.3.9
# bundles libpq 18.6 (psycopg.pq.version() == 180006), so its cancel_safe() sends the
# CancelRequest over TLS when the session is TLS (libpq >= 17); Debian 12's libpq 15 cannot.
# The stamp names what was installed, so a run with it in place costs no pip call.
client_pins=("psycopg[binary]==3.3.9" "asyncpg==0.32.0" "pg8000==1.31.6")
venv=".venv/clients"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "${client_pins[*]}" ]; then
    echo "setup: installing ${client_pins[*]} into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --only-binary=:all: "${client_pins[@]}"
    echo "${client_pins[*]}" >"$venv/.pins"
fi

# A Docker engine that answers: start Debian's dockerd when none does (no systemd needed).
if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: no Docker engine answers; start one (sudo dockerd, or systemctl start docker)" >&2
        exit 1
    fi
    echo "setup: starting dockerd (log: /var/log/dockerd.log)"
    setsid nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { tail -n 20 /var/log/dockerd.log >&2; echo "setup: dockerd did not start" >&2; exit 1; }
fi

# The base images of k8s/images: pulled where a registry answers, made here where none does.
rust_version="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)"
missing=0
for base in debian:bookworm-slim "rust:${rust_version}-bookworm"; do
    docker image inspect "$base" >/dev/null 2>&1 && continue
    docker pull -q "$base" >/dev/null 2>&1 || missing=1
done
if [ "$missing" = 1 ]; then
    echo "setup: no registry gives the base images; making them here (k8s/images/local-bases.sh)"
    k8s/images/local-bases.sh
fi

echo "setup: ok (postgres binaries in $(pg_bin); Docker engine $(docker version --format '{{.Server.Version}}'))"
