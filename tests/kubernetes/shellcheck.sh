#!/usr/bin/env bash
# Shellcheck of every shell script (shebang) in the repository: kubernetes/ and e2e/
# at every severity, the rest at warning and above (following `source`).
# Exit 77 (skipped) without shellcheck.
#   tests/kubernetes/shellcheck.sh SOURCE_DIR
set -euo pipefail
src=${1:?usage: shellcheck.sh SOURCE_DIR}
cd "$src"
if ! command -v shellcheck >/dev/null; then
  echo "skipped: shellcheck is not installed (scripts/install-deps installs it)"
  [[ "${CI:-}" == "true" ]] && { echo "CI=true: a skip must not happen on the CI machine (docs/development.md)"; exit 1; }
  exit 77
fi

strict=()
others=()
while IFS= read -r -d '' f; do
  # Scripts with a shell shebang; files only ever sourced (no shebang) are
  # checked through the scripts that source them (-x).
  head -n1 "$f" | grep -qE '^#!.*\b(ba|da)?sh\b' || continue
  case "$f" in
    ./kubernetes/* | ./e2e/* | ./tests/kubernetes/*) strict+=("$f") ;;
    *) others+=("$f") ;;
  esac
done < <(find . \( -name .git -o -name 'build*' -o -name node_modules \) -prune -o -type f -print0)

((${#strict[@]} > 0)) || { echo "no scripts found under kubernetes/ and e2e/"; exit 1; }
status=0
shellcheck -x "${strict[@]}" || status=1
if ((${#others[@]} > 0)); then
  shellcheck -x --severity=warning "${others[@]}" || status=1
fi
echo "shellcheck: ${#strict[@]} scripts strictly, ${#others[@]} at warning level: $([[ $status == 0 ]] && echo clean || echo FAILED)"
exit $status
