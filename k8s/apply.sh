#!/usr/bin/env bash
# Applies the lab's manifests (the same as `kubectl apply -k k8s/manifests`) and waits until every
# workload in the namespace has rolled out.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source-path=SCRIPTDIR source=scripts/lib.sh
. scripts/lib.sh

kubectl apply -k manifests
# The primary first: the replicas clone it, pgbalancer checks them, the backend's readiness needs them.
kubectl -n "$NS" rollout status statefulset/postgres-primary --timeout=180s
for d in postgres-replicas pgbalancer backend proxy nginx haproxy prometheus; do
    kubectl -n "$NS" rollout status "deployment/$d" --timeout=180s
done
kubectl -n "$NS" get pods -o wide
