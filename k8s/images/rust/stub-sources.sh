#!/bin/sh
# Run inside the Rust image's builder stage, where only the workspace's manifests have been copied:
# gives every member the crate roots its manifest implies (src/lib.rs, src/main.rs, every declared
# `path = "….rs"`), each an empty stub, so `cargo build` compiles the dependencies alone. That layer
# stays cached until a manifest or Cargo.lock changes; a source change rebuilds only our crates.
#   stub-sources.sh create            write the stubs, listing them in /tmp/stubs
#   stub-sources.sh remove DIR…       delete those under DIR… again, before the real sources of
#                                     those members are copied in (the members the binaries do
#                                     not need keep their stubs: their changes rebuild nothing)
set -eu
case "${1:-}" in
    create)
        : >/tmp/stubs
        for manifest in */Cargo.toml; do
            dir="${manifest%/Cargo.toml}"
            # Declared target paths (bins, tests, benches), plus the two roots cargo looks for.
            paths="$(sed -n 's/^path *= *"\(.*\.rs\)".*/\1/p' "$manifest") src/lib.rs src/main.rs"
            for p in $paths; do
                f="$dir/$p"
                [ -e "$f" ] && continue
                mkdir -p "$(dirname "$f")"
                case "$p" in
                    src/lib.rs) : >"$f" ;;
                    *) echo 'fn main() {}' >"$f" ;;
                esac
                echo "$f" >>/tmp/stubs
            done
        done
        ;;
    remove)
        shift
        for dir in "$@"; do
            grep "^$dir/" /tmp/stubs | xargs -r rm -f
        done
        ;;
    *)
        echo "usage: stub-sources.sh create | remove DIR..." >&2
        exit 2
        ;;
esac
