#!/usr/bin/env bash
# Builds every image of the lab and pushes it to the k3d registry (k8s/k3d/create.sh made it), so
# the cluster pulls nothing from outside at deploy time.
#
#   k8s/images/build_and_push.sh                  all images
#   k8s/images/build_and_push.sh proxy backend    only these
#
# Environment: REGISTRY (k3d-registry.localhost:5000), TAG (dev), POD_CIDR (10.42.0.0/16: the
# cluster's pod CIDR, which the primary's pg_hba admits), POSTGRES_VERSION (15, primary and replicas).
set -euo pipefail
cd "$(dirname "$0")/../.."

registry="${REGISTRY:-k3d-registry.localhost:5000}"
tag="${TAG:-dev}"
pod_cidr="${POD_CIDR:-10.42.0.0/16}"
pg_version="${POSTGRES_VERSION:-15}"
all=(proxy pgbalancer backend postgres-primary postgres-replica nginx haproxy prometheus)

build() {
    local name="$1" ref="$registry/hl/$1:$tag" context=.
    local args=()
    case "$name" in
        proxy | pgbalancer | backend) args=(-f k8s/images/rust/Dockerfile --build-arg "BIN=$name") ;;
        postgres-primary) args=(-f "k8s/images/$name/Dockerfile" --build-arg "POD_CIDR=$pod_cidr"
            --build-arg "POSTGRES_VERSION=$pg_version") ;;
        postgres-replica) args=(-f "k8s/images/$name/Dockerfile" --build-arg "POSTGRES_VERSION=$pg_version") ;;
        nginx | haproxy | prometheus) context="k8s/images/$name" ;;
        *) echo "build_and_push: unknown image '$name' (known: ${all[*]})" >&2; return 2 ;;
    esac
    echo "== $ref"
    # The repo root is the context where a build needs files from it (postgres-primary loads
    # backend/schema.sql); each Dockerfile.dockerignore keeps that context to what the build uses.
    docker build "${args[@]}" -t "$ref" "$context"
    docker push "$ref"
}

if [ "$#" -eq 0 ]; then set -- "${all[@]}"; fi
for name in "$@"; do build "$name"; done
echo "build_and_push: pushed $* to $registry (tag $tag)"
