#!/usr/bin/env bash
# Every shell script under e2e/ and scripts/ passes shellcheck (sources
# followed). Exit 77 (ctest: skipped) where shellcheck is not installed.
set -euo pipefail
cd "$(dirname "$0")/../../.."
if ! command -v shellcheck >/dev/null; then
  echo "skipped: shellcheck not installed (scripts/install-deps)"
  [[ "${CI:-}" == "true" ]] && { echo "CI=true: a skip must not happen on the CI machine (docs/development.md)"; exit 1; }
  exit 77
fi
scripts=()
while IFS= read -r -d '' f; do
  if [[ $f == *.sh ]] || head -n1 "$f" | grep -Eq '^#!.*(bash|sh)$'; then scripts+=("$f"); fi
done < <(find e2e scripts tests/cli/cri -type f ! -name '*.json' ! -name '*.conflist' -print0)
echo "shellcheck ${#scripts[@]} scripts"
shellcheck -x "${scripts[@]}"
