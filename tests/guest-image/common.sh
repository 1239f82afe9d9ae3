# shellcheck shell=bash
# Helpers for the guest-image tests. Sourced.
# Exit code 77 means "skipped" (SKIP_RETURN_CODE in CTest).

gt_fail() { echo "FAIL: $*" >&2; exit 1; }
# Under CI=true a skip fails (docs/development.md, "Skipped tests").
gt_skip() {
  if [[ "${CI:-}" == "true" ]]; then
    echo "FAIL: CI=true: this test would skip, which must not happen on the CI machine: $*" >&2
    exit 1
  fi
  echo "SKIP: $*" >&2
  exit 77
}

# A top-level string field of manifest.json. guest-image/build writes one
# field per line, so no JSON tool is needed.
gt_manifest_field() { # FILE FIELD
  sed -n "s/^  \"$2\": \"\(.*\)\",\?\$/\1/p" "$1"
}
# A field of the one-line "vmlinuz" or "initrd" object.
gt_manifest_obj_field() { # FILE OBJECT FIELD
  sed -n "s/^  \"$2\": {.*\"$3\": \"\?\([^\",}]*\)\"\?.*/\1/p" "$1"
}
