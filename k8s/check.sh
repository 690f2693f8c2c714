#!/usr/bin/env bash
# What can be checked of k8s/ without a cluster or a Docker engine; `make test` runs it after the
# cargo tests (scripts/setup.sh installs kubectl, shellcheck and kubernetes-validate first).
#   1. the manifests render with kustomize;
#   2. every rendered object validates against the Kubernetes schema of the k3s version that
#      k8s/k3d/create.sh starts (strict: unknown fields are errors);
#   3. shellcheck passes on every shell script in the repo;
#   4. the proxy's and pgbalancer's --check-config accept the arguments the manifests give them
#      (once those crates are in the workspace and built).
# The names and ports the manifests share with the lab are asserted by
# testkit/tests/k8s_manifests.rs against testkit/src/names.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

k8s_version="1.31.0"   # keep in step with K3S_IMAGE in k8s/k3d/create.sh
venv=".venv/k8s"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The manifests use `patches` (kustomize v3.1+): kubectl 1.21 or newer. Debian's 1.20 is older.
kustomize_version="$(kubectl version --client -o json 2>/dev/null | sed -n 's/.*"kustomizeVersion": *"v\([0-9]*\).*/\1/p')"
if [ -z "$kustomize_version" ] || [ "$kustomize_version" -lt 4 ]; then
    echo "k8s/check.sh: kubectl $(kubectl version --client 2>/dev/null | head -n 1) is too old for" \
        "k8s/manifests (needs kubectl 1.21+, kustomize v4+)" >&2
    exit 1
fi
if ! kubectl kustomize k8s/manifests >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err"; then
    cat "$tmp/kustomize.err" >&2
    echo "k8s/check.sh: kubectl kustomize k8s/manifests failed" >&2
    exit 1
fi
# A warning on render is a warning on every apply: none is allowed.
if [ -s "$tmp/kustomize.err" ]; then
    cat "$tmp/kustomize.err" >&2
    echo "k8s/check.sh: kubectl kustomize k8s/manifests warns" >&2
    exit 1
fi
objects="$(grep -c '^kind:' "$tmp/rendered.yaml")"
echo "k8s/check.sh: rendered $objects objects"

"$venv/bin/kubernetes-validate" --strict --quiet -k "$k8s_version" "$tmp/rendered.yaml"
echo "k8s/check.sh: all $objects objects valid for Kubernetes $k8s_version"

mapfile -t scripts < <(find . \( -path ./target -o -path ./.venv -o -path ./.git \) -prune -o \
    -type f \( -name '*.sh' -o -path './.ci/*' \) -print | sort)
shellcheck "${scripts[@]}"
echo "k8s/check.sh: shellcheck clean on ${#scripts[@]} scripts"

# --check-config with the container args of a Deployment, as the cluster would start it.
check_config() {
    local deployment="$1" bin="target/debug/$1"
    if [ ! -f "$1/Cargo.toml" ]; then
        echo "k8s/check.sh: SKIPPED $1 --check-config: no $1 crate in this tree"
        return 0
    fi
    [ -x "$bin" ] || cargo build --locked -q -p "$1"
    local args=()
    mapfile -t args < <("$venv/bin/python" - "$tmp/rendered.yaml" "$deployment" <<'PY'
import sys, yaml
path, name = sys.argv[1], sys.argv[2]
for doc in yaml.safe_load_all(open(path)):
    if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"] == name:
        for arg in doc["spec"]["template"]["spec"]["containers"][0]["args"]:
            print(arg)
PY
    )
    # The Secret's value is not at hand here; any value satisfies the variable's presence.
    PGBALANCER_CHECK_PASSWORD=check-config "$bin" "${args[@]}" --check-config
    echo "k8s/check.sh: $1 --check-config accepts the manifest's args"
}
check_config proxy
check_config pgbalancer
