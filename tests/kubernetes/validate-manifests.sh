#!/usr/bin/env bash
# Client-side validation of the Kubernetes manifests: every kustomization
# under kubernetes/ is built with `kubectl kustomize`, and what it renders,
# plus e2e/kind/manifests, is checked against the Kubernetes API schemas
# and Cloak's rules by validate-manifests.mjs (npm packages pinned in
# package-lock.json, installed by scripts/install-deps); yamllint checks the
# sources where installed. Exit 77 (skipped) when kubectl, node or the
# packages are missing.
#   tests/kubernetes/validate-manifests.sh SOURCE_DIR
set -euo pipefail
src=$(cd "${1:?usage: validate-manifests.sh SOURCE_DIR}" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
modules=${CLOAK_MANIFEST_NODE_MODULES:-/var/cache/cloak/npm/manifest-validation/node_modules}

for tool in kubectl node; do
  if ! command -v "$tool" >/dev/null; then
    echo "skipped: $tool is not installed (scripts/install-deps installs it)"
    [[ "${CI:-}" == "true" ]] && { echo "CI=true: a skip must not happen on the CI machine (docs/development.md)"; exit 1; }
    exit 77
  fi
done
if [[ ! -d "$modules/kubernetes-models" || ! -d "$modules/yaml" ]]; then
  echo "skipped: no kubernetes-models/yaml in $modules (scripts/install-deps installs them)"
  [[ "${CI:-}" == "true" ]] && { echo "CI=true: a skip must not happen on the CI machine (docs/development.md)"; exit 1; }
  exit 77
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# ESM imports resolve from the script's own directory.
cp "$here/validate-manifests.mjs" "$work/"
ln -s "$modules" "$work/node_modules"

rendered=()
while IFS= read -r k; do
  dir=$(dirname "$k")
  name=$(echo "${dir#"$src"/}" | tr / _)
  if ! kubectl kustomize "$dir" >"$work/$name.yaml" 2>"$work/$name.err"; then
    echo "kubectl kustomize $dir failed:"
    cat "$work/$name.err"
    exit 1
  fi
  rendered+=("$work/$name.yaml")
done < <(find "$src/kubernetes" -name kustomization.yaml | sort)
((${#rendered[@]} > 0)) || { echo "no kustomization.yaml under $src/kubernetes"; exit 1; }

node "$work/validate-manifests.mjs" "${rendered[@]}" "$src"/e2e/kind/manifests/*.yaml

if command -v yamllint >/dev/null; then
  yamllint -s -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}' \
    "$src/kubernetes" "$src/e2e/kind"
  echo "yamllint: clean"
else
  echo "yamllint is not installed: YAML style not checked"
fi
