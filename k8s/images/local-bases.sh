#!/usr/bin/env bash
# Makes the two base images the lab's Dockerfiles start from, on a machine that can reach no image
# registry (only Debian's packages and crates.io): with a registry at hand, Docker pulls the
# official ones instead and this script is not needed.
#
#   debian:bookworm-slim   debootstrap --variant=minbase bookworm, imported (about a minute); the
#                          runtime base of every image in k8s/images
#   rust:<V>-bookworm      a stand-in for the official Rust image: debian:bookworm-slim, the C
#                          toolchain and cmake from Debian, and this machine's Rust toolchain
#                          (rustc and cargo of version V, the workspace's rust-version, copied in),
#                          and the CAs this machine added to its trust store
#                          (/usr/local/share/ca-certificates), so cargo reaches crates.io through
#                          this network as the host does. Only the Rust images' builder stage uses
#                          it; nothing of it ships.
#
#   k8s/images/local-bases.sh           make whichever is missing
#   k8s/images/local-bases.sh --force   make both again
#
# Needs root (debootstrap), a running Docker engine, debootstrap and a Rust toolchain of version V.
set -euo pipefail
cd "$(dirname "$0")/../.."

force=0
case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "local-bases: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

have_image() { [ "$force" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }
# The classic builder: this machine has no buildx, and the Dockerfiles build with both.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

# The workspace's rust-version is the one Rust version of the workspace, the Dockerfile and CI.
rust_version="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)"
[ -n "$rust_version" ] || { echo "local-bases: no rust-version in Cargo.toml" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if have_image debian:bookworm-slim; then
    echo "local-bases: debian:bookworm-slim is there"
else
    command -v debootstrap >/dev/null || { echo "local-bases: apt-get install debootstrap" >&2; exit 1; }
    echo "local-bases: debootstrap --variant=minbase bookworm (about a minute)"
    root="$tmp/rootfs"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$tmp/debootstrap.log" 2>&1 ||
        { tail -n 20 "$tmp/debootstrap.log" >&2; echo "local-bases: debootstrap failed" >&2; exit 1; }
    # As the official slim image: updates and security suites, no docs or man pages, empty apt lists.
    cat >"$root/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
EOF
    # apt keeps no package caches in image layers (the official image's apt.conf.d/docker-*).
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* "$root"/usr/share/man/*
    tar -C "$root" -c . | docker import \
        --change 'CMD ["bash"]' \
        --change 'LABEL org.opencontainers.image.description="local stand-in: debootstrap --variant=minbase bookworm (k8s/images/local-bases.sh)"' \
        - debian:bookworm-slim >/dev/null
    echo "local-bases: made debian:bookworm-slim"
fi

rust_image="rust:${rust_version}-bookworm"
if have_image "$rust_image"; then
    echo "local-bases: $rust_image is there"
else
    command -v rustc >/dev/null || { echo "local-bases: no rustc here to copy into $rust_image" >&2; exit 1; }
    host_version="$(rustc --version | awk '{print $2}')"
    case "$host_version" in
        "$rust_version" | "$rust_version".*) ;;
        *) echo "local-bases: this machine's rustc is $host_version, the workspace's rust-version is" \
            "$rust_version; a stand-in for $rust_image needs that version" >&2
           exit 1 ;;
    esac
    sysroot="$(rustc --print sysroot)"
    ctx="$tmp/rust"
    mkdir -p "$ctx/toolchain" "$ctx/ca"
    find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$ctx/ca/" \; 2>/dev/null || true
    # rustc, cargo and the standard library; not the docs (share/), which are most of its size.
    cp -a "$sysroot/bin" "$sysroot/lib" "$sysroot/libexec" "$ctx/toolchain/" 2>/dev/null ||
        cp -a "$sysroot/bin" "$sysroot/lib" "$ctx/toolchain/"
    cat >"$ctx/Dockerfile" <<EOF
FROM debian:bookworm-slim
# What the official image (buildpack-deps) gives a Rust build: a C toolchain, and TLS roots for
# crates.io. cmake is installed by the lab's Dockerfile itself, as it must be with the official one.
RUN apt-get update -qq \\
    && apt-get install -y -qq --no-install-recommends ca-certificates gcc g++ libc6-dev make pkg-config git \\
    && rm -rf /var/lib/apt/lists/*
COPY ca /usr/local/share/ca-certificates
RUN update-ca-certificates >/dev/null
COPY toolchain /usr/local/rustup/toolchains/${host_version}
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /usr/local/cargo/bin \\
    && for b in cargo rustc rustdoc; do ln -s "/usr/local/rustup/toolchains/${host_version}/bin/\$b" /usr/local/cargo/bin/; done \\
    && cargo --version && rustc --version
LABEL org.opencontainers.image.description="local stand-in for the official Rust image: debian:bookworm-slim + this machine's Rust ${host_version} (k8s/images/local-bases.sh)"
EOF
    echo "local-bases: building $rust_image from this machine's Rust $host_version"
    docker build -q -t "$rust_image" "$ctx" >/dev/null
    echo "local-bases: made $rust_image"
fi
