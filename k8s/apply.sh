#!/usr/bin/env bash
# Applies the lab's manifests with the images from the registry build_and_push.sh pushed to, and
# waits until every workload in the namespace has rolled out.
#
#   k8s/apply.sh            kubectl apply, then wait for every rollout
#   k8s/apply.sh --render   print what would be applied (no cluster needed)
#
# Environment, the same as k8s/images/build_and_push.sh and k8s/k3d/create.sh read:
# REGISTRY (k3d-registry.localhost:$REGISTRY_PORT), REGISTRY_PORT (5000), TAG (dev).
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source-path=SCRIPTDIR source=scripts/lib.sh
. scripts/lib.sh

render=0
case "${1:-}" in
    "") ;;
    --render) render=1 ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "apply: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

registry="${REGISTRY:-k3d-registry.localhost:${REGISTRY_PORT:-5000}}"
tag="${TAG:-dev}"
# manifests/kustomization.yaml maps hl/<name> to the default registry and tag; an overlay (in the
# gitignored .overlay/) maps those to the ones asked for.
overlay=".overlay"
mkdir -p "$overlay"
{
    echo "# Written by k8s/apply.sh: the lab's manifests with REGISTRY=$registry TAG=$tag."
    echo "resources:"
    echo "  - ../manifests"
    echo "images:"
    for image in proxy pgbalancer backend postgres-primary postgres-replica nginx haproxy prometheus; do
        echo "  - {name: k3d-registry.localhost:5000/hl/$image, newName: $registry/hl/$image, newTag: $tag}"
    done
} >"$overlay/kustomization.yaml"

if [ "$render" = 1 ]; then
    exec kubectl kustomize "$overlay"
fi
echo "apply: images from $registry (tag $tag)"
kubectl apply -k "$overlay"
# The primary first: the replicas clone it, pgbalancer checks them, the backend's readiness needs them.
kubectl -n "$NS" rollout status statefulset/postgres-primary --timeout=180s
for d in postgres-replicas pgbalancer backend proxy nginx nginx-original haproxy prometheus; do
    kubectl -n "$NS" rollout status "deployment/$d" --timeout=180s
done
kubectl -n "$NS" get pods -o wide
