#!/usr/bin/env bash
# Creates the lab: k3d cluster hl-k3d (1 server, 2 agents) using the k3d-managed registry
# k3d-registry.localhost:5000, which k8s/images/build_and_push.sh pushes every image to.
# Safe to run again: an existing registry or cluster is kept.
#
# Environment: CLUSTER (hl-k3d), REGISTRY_PORT (5000; macOS users often need another, as AirPlay
# takes 5000; build_and_push.sh and apply.sh read the same variable), K3S_IMAGE (the k3s release
# k8s/check.sh validates the manifests against).
set -euo pipefail

cluster="${CLUSTER:-hl-k3d}"
port="${REGISTRY_PORT:-5000}"
k3s_image="${K3S_IMAGE:-rancher/k3s:v1.31.5-k3s1}"
registry="k3d-registry.localhost"   # k3d prefixes registry names with k3d-

for cmd in docker k3d kubectl; do
    command -v "$cmd" >/dev/null || { echo "create: '$cmd' is not installed" >&2; exit 1; }
done

if k3d registry list "$registry" >/dev/null 2>&1; then
    echo "create: registry $registry exists"
else
    k3d registry create registry.localhost --port "$port"
fi

if k3d cluster list "$cluster" >/dev/null 2>&1; then
    echo "create: cluster $cluster exists"
else
    # Traefik is of no use here: the lab reaches its Services through kubectl port-forward.
    k3d cluster create "$cluster" \
        --image "$k3s_image" \
        --servers 1 --agents 2 \
        --registry-use "$registry:$port" \
        --k3s-arg "--disable=traefik@server:0" \
        --wait
fi
kubectl config use-context "k3d-$cluster" >/dev/null
kubectl get nodes -o wide

# docker push on the host needs the registry's name to resolve to this machine.
if ! getent hosts "$registry" >/dev/null; then
    echo "create: $registry does not resolve here; for docker push add it to /etc/hosts:" >&2
    echo "    echo '127.0.0.1 $registry' | sudo tee -a /etc/hosts" >&2
fi
# build_and_push.sh and apply.sh read the same REGISTRY_PORT: the images go to and come from it.
if [ "$port" = 5000 ]; then
    echo "create: next: k8s/images/build_and_push.sh && k8s/apply.sh"
else
    echo "create: next: REGISTRY_PORT=$port k8s/images/build_and_push.sh && REGISTRY_PORT=$port k8s/apply.sh"
fi
