#!/usr/bin/env bash
# Deletes the lab's cluster and its registry (with the images pushed there).
#   KEEP_REGISTRY=1 k8s/k3d/delete.sh    keep the registry and its images for the next cluster
set -euo pipefail

cluster="${CLUSTER:-hl-k3d}"
k3d cluster delete "$cluster"
if [ "${KEEP_REGISTRY:-0}" = 1 ]; then
    echo "delete: kept registry k3d-registry.localhost"
else
    k3d registry delete k3d-registry.localhost || true
fi
