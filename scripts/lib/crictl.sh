# shellcheck shell=bash
# Sourced by e2e/local/crictl/lib.sh and tests/cli/cri/local_scenarios_test.sh:
# where the tests find crictl (docs/development.md, "crictl in tests").
# crictl is a tool for tests, not part of Cloak; Debian 12 does not package it.

# find_crictl REPO: prints the path of the crictl to use, or nothing (exit 1)
# when there is none. In order:
#   1. $CRICTL, if set (an error, exit 2, when it is not an executable file);
#   2. crictl on PATH;
#   3. REPO/../shared/tools/crictl (the tools directory beside a checkout);
#   4. /work/shared/tools/crictl (the same directory on the development and
#      CI machines, for a clone placed anywhere else, as CI's is).
find_crictl() {
  local repo=$1 c
  if [[ -n ${CRICTL:-} ]]; then
    if [[ -f $CRICTL && -x $CRICTL ]]; then
      echo "$CRICTL"
      return 0
    fi
    echo "CRICTL=$CRICTL is not an executable file" >&2
    return 2
  fi
  if c=$(command -v crictl); then
    echo "$c"
    return 0
  fi
  for c in "$repo/../shared/tools/crictl" /work/shared/tools/crictl; do
    if [[ -f $c && -x $c ]]; then
      (cd "$(dirname "$c")" && echo "$PWD/crictl")
      return 0
    fi
  done
  return 1
}

# Where find_crictl looked, for a "skipped" message.
crictl_search_path() {
  echo "\$CRICTL, PATH, $1/../shared/tools/crictl, /work/shared/tools/crictl"
}
