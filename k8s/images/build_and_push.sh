#!/usr/bin/env bash
# Builds every image of the lab and pushes it to the k3d registry (k8s/k3d/create.sh made it), so
# the cluster pulls nothing from outside at deploy time.
#
#   k8s/images/build_and_push.sh                     all images, pushed
#   k8s/images/build_and_push.sh proxy backend       only these
#   k8s/images/build_and_push.sh --no-push           all images into the local Docker engine only
#                                                    (what `make demo-containers` and `make test` run)
#
# Environment: REGISTRY (k3d-registry.localhost:$REGISTRY_PORT), REGISTRY_PORT (5000, as in
# k3d/create.sh), TAG (dev), POD_CIDR (10.42.0.0/16: the cluster's pod CIDR, which the primary's
# pg_hba admits), POSTGRES_VERSION (15). k8s/apply.sh reads the same REGISTRY, REGISTRY_PORT, TAG.
#
# Images: proxy, pgbalancer, backend (k8s/images/rust: one builder stage compiles the three
# binaries once); postgres-primary, postgres-replica (k8s/images/postgres); nginx, haproxy,
# prometheus. All start from debian:bookworm-slim, the Rust builder from rust:<rust-version>-bookworm;
# where no registry is reachable, k8s/images/local-bases.sh makes both locally. The Dockerfiles
# build with BuildKit and with the classic builder; without buildx the classic one is used.
set -euo pipefail
cd "$(dirname "$0")/../.."

push=1
names=()
for arg in "$@"; do
    case "$arg" in
        --no-push) push=0 ;;
        -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "build_and_push: unknown option '$arg' (see --help)" >&2; exit 2 ;;
        *) names+=("$arg") ;;
    esac
done

registry="${REGISTRY:-k3d-registry.localhost:${REGISTRY_PORT:-5000}}"
tag="${TAG:-dev}"
pod_cidr="${POD_CIDR:-10.42.0.0/16}"
pg_version="${POSTGRES_VERSION:-15}"
all=(proxy pgbalancer backend postgres-primary postgres-replica nginx haproxy prometheus)
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

build() {
    local name="$1" ref="$registry/hl/$1:$tag" context=.
    local args=()
    case "$name" in
        proxy | pgbalancer | backend) args=(-f k8s/images/rust/Dockerfile --target "$name") ;;
        postgres-primary) args=(-f k8s/images/postgres/Dockerfile --target primary
            --build-arg "POD_CIDR=$pod_cidr" --build-arg "POSTGRES_VERSION=$pg_version") ;;
        postgres-replica) args=(-f k8s/images/postgres/Dockerfile --target replica
            --build-arg "POSTGRES_VERSION=$pg_version") ;;
        nginx | haproxy | prometheus) context="k8s/images/$name" ;;
        *) echo "build_and_push: unknown image '$name' (known: ${all[*]})" >&2; return 2 ;;
    esac
    echo "== $ref"
    # The repo root is the context where a build needs files from it; the root .dockerignore keeps
    # that context to the sources.
    local started=$SECONDS
    docker build "${args[@]}" -t "$ref" "$context"
    echo "== $ref built in $((SECONDS - started)) s"
    if [ "$push" = 1 ]; then docker push "$ref"; fi
}

if [ "${#names[@]}" -eq 0 ]; then names=("${all[@]}"); fi
for name in "${names[@]}"; do build "$name"; done
if [ "$push" = 1 ]; then
    echo "build_and_push: pushed ${names[*]} to $registry (tag $tag)"
else
    echo "build_and_push: built ${names[*]} as $registry/hl/<name>:$tag (not pushed)"
fi
