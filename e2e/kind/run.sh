#!/usr/bin/env bash
# End to end on a kind cluster: create it, build and load the installer
# image, install Cloak (kubernetes/overlays/kind), deploy cloak-kbs, run a
# pod whose image is ocicrypt-encrypted under cloak-dev, check its output and
# logs, that `kubectl exec` is refused by the agent policy, and tear down.
#
#   e2e/kind/run.sh [--keep] [--no-build]
#
# Needs docker (with a running daemon), kind, kubectl, skopeo, openssl,
# busybox and curl.
# Where docker or kind is missing it prints "skipped: ..." and exits 0.
# --keep leaves the cluster up; --no-build reuses the image cloak-deploy:kind.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cluster=${CLOAK_KIND_CLUSTER:-cloak-e2e}
node_image=${CLOAK_KIND_NODE_IMAGE:-kindest/node:v1.29.2}
image=cloak-deploy:kind
keep=0
build=1
while (($#)); do
  case "$1" in
    --keep) keep=1 ;;
    --no-build) build=0 ;;
    *) echo "usage: e2e/kind/run.sh [--keep] [--no-build]" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "e2e/kind: $*" >&2; }
fail() {
  echo "e2e/kind: FAILED: $*" >&2
  exit 1
}

for tool in docker kind; do
  if ! command -v "$tool" >/dev/null; then
    echo "skipped: docker/kind not found ($tool is not installed)"
    exit 0
  fi
done
if ! docker info >/dev/null 2>&1; then
  echo "skipped: docker/kind not found (no Docker daemon answers)"
  exit 0
fi
for tool in kubectl skopeo openssl busybox curl; do
  command -v "$tool" >/dev/null || fail "$tool is needed (apt-get install kubernetes-client skopeo openssl busybox-static curl)"
done

work=$(mktemp -d)
kubeconfig="$work/kubeconfig"
export KUBECONFIG="$kubeconfig"
pf_pid=""
teardown() {
  local rc=$?
  if [[ -n "$pf_pid" ]]; then kill "$pf_pid" 2>/dev/null || true; fi
  if ((rc != 0)); then
    log "diagnostics:"
    kubectl -n cloak-system logs ds/cloak-deploy --tail=50 2>/dev/null || true
    kubectl describe pod cloak-secret 2>/dev/null | tail -30 || true
  fi
  if ((keep)); then
    log "keeping cluster $cluster (KUBECONFIG=$kubeconfig)"
  else
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
  exit "$rc"
}
trap teardown EXIT

log "creating kind cluster $cluster ($node_image)"
kind create cluster --name "$cluster" --image "$node_image" --config "$here/kind-config.yaml" \
  --kubeconfig "$kubeconfig" --wait 120s
node=$(kubectl get nodes -o jsonpath='{.items[0].metadata.name}')
# The node's containerd pulls from the e2e registry over plain HTTP.
docker exec "$node" sh -c 'mkdir -p "/etc/containerd/certs.d/127.0.0.1:5000" &&
  printf "[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n" \
    > "/etc/containerd/certs.d/127.0.0.1:5000/hosts.toml"'

if ((build)); then
  log "building $image"
  docker build -f "$repo/kubernetes/installer/Containerfile" -t "$image" "$repo"
fi
kind load docker-image "$image" --name "$cluster"

log "installing Cloak (kubernetes/overlays/kind)"
kubectl apply -k "$repo/kubernetes/overlays/kind"
kubectl -n cloak-system rollout status ds/cloak-deploy --timeout=600s
for _ in $(seq 1 60); do
  [[ "$(kubectl get node "$node" -o jsonpath='{.metadata.labels.cloak\.io/runtime-cloak-dev}')" == true ]] && break
  sleep 2
done
[[ "$(kubectl get node "$node" -o jsonpath='{.metadata.labels.cloak\.io/runtime-cloak-dev}')" == true ]] ||
  fail "node $node was not labelled cloak.io/runtime-cloak-dev=true"
kubectl -n cloak-system rollout status deploy/cloak-kbs --timeout=300s

log "registry and encrypted image"
kubectl apply -f "$here/manifests/registry.yaml"
kubectl -n cloak-system wait --for=condition=Ready pod/e2e-registry --timeout=300s
kubectl -n cloak-system port-forward pod/e2e-registry 15000:5000 >"$work/pf.log" 2>&1 &
pf_pid=$!
for _ in $(seq 1 30); do
  curl -fsS http://127.0.0.1:15000/v2/ >/dev/null 2>&1 && break
  sleep 1
done
marker="cloak-e2e-secret-$RANDOM$RANDOM"
echo "$marker" >"$work/secret.txt"
# busybox plus the secret as /marker, every layer encrypted for the key the
# KBS will hold.
"$repo/scripts/make-busybox-image" "$work/oci" plain "$work/secret.txt"
openssl genrsa -out "$work/image.key" 2048 2>/dev/null
openssl rsa -in "$work/image.key" -pubout -out "$work/image.pub" 2>/dev/null
skopeo copy --quiet --dest-tls-verify=false --encryption-key "jwe:$work/image.pub" \
  "oci:$work/oci:plain" docker://127.0.0.1:15000/secret:e2e

log "storing the image key in cloak-kbs"
kubectl -n cloak-system exec -i deploy/cloak-kbs -- /opt/cloak-payload/bin/cloak-kbs admin \
  put-resource --state-dir /var/lib/cloak-kbs default/image-key/secret --file - <"$work/image.key"
echo '{"allowed_tees":["sample"]}' |
  kubectl -n cloak-system exec -i deploy/cloak-kbs -- /opt/cloak-payload/bin/cloak-kbs admin \
    set-policy --state-dir /var/lib/cloak-kbs default/image-key/secret --file -

cat >"$work/initdata.toml" <<'TOML'
version = "0.1.0"
algorithm = "sha384"
[data]
kbs_url = "http://10.0.2.2:8080"
image_keys = ["default/image-key/secret"]
TOML
initdata=$(base64 -w0 "$work/initdata.toml")
sed -e "s|\"INITDATA\"|\"$initdata\"|" -e "s|\"IMAGE\"|\"127.0.0.1:5000/secret:e2e\"|" \
  "$here/manifests/secret-pod.yaml" >"$work/pod.yaml"

log "running the pod under cloak-dev"
kubectl apply -f "$work/pod.yaml"
kubectl wait --for=condition=Ready pod/cloak-secret --timeout=600s
for _ in $(seq 1 60); do
  kubectl logs cloak-secret 2>/dev/null | grep -q cloak-e2e-ready && break
  sleep 2
done
logs=$(kubectl logs cloak-secret)
grep -q "$marker" <<<"$logs" || fail "the pod's log lacks the decrypted secret: $logs"
# The host may not read the secret through exec: the agent policy refuses.
if out=$(kubectl exec cloak-secret -- sh -c 'cat /marker' 2>&1); then
  fail "kubectl exec was allowed: the host read the container through it: $out"
fi
grep -q 'policy: ' <<<"$out" || fail "kubectl exec failed without the agent policy's reason: $out"
if grep -q "$marker" <<<"$out"; then fail "the refused exec still showed the secret"; fi
echo "kubectl exec refused: $(grep -o 'policy: .*' <<<"$out" | head -1)"
host_kernel=$(docker exec "$node" uname -r)
if grep -q "$host_kernel" <<<"$logs"; then
  fail "the container runs on the node's kernel ($host_kernel), not in a VM"
fi
kubectl delete pod cloak-secret --wait=true --timeout=120s
if docker exec "$node" pgrep -f qemu-system >/dev/null; then
  fail "QEMU is still running on $node after the pod was deleted"
fi

log "uninstalling"
kubectl apply -k "$repo/kubernetes/overlays/uninstall"
kubectl -n cloak-system rollout status ds/cloak-deploy --timeout=600s
if docker exec "$node" test -e /opt/cloak; then
  fail "/opt/cloak is still on $node after uninstall"
fi
kubectl delete -k "$repo/kubernetes/overlays/uninstall" --wait=true
echo "e2e/kind: passed"
