# shellcheck shell=bash
# Shared helpers for guest-image/build and guest-image/update-lock.
# Sourced, not executed. Callers run with `set -euo pipefail`.

# Where .deb files are cached between builds. A cached file is reused only
# when its sha256 matches the lock.
gi_cache_dir() {
  local dir=${CACHE:-/var/cache/cloak/debs}
  if ! mkdir -p "$dir" 2>/dev/null || [[ ! -w $dir ]]; then
    dir=${XDG_CACHE_HOME:-$HOME/.cache}/cloak/debs
    mkdir -p "$dir"
  fi
  printf '%s\n' "$dir"
}

gi_die() {
  printf '%s: error: %s\n' "${GI_PROG:-guest-image}" "$*" >&2
  exit 1
}

gi_log() {
  printf '%s: %s\n' "${GI_PROG:-guest-image}" "$*" >&2
}

# Cache file name for NAME VERSION (epoch colons are not portable in names).
gi_deb_path() {
  local cache=$1 name=$2 version=$3
  printf '%s/%s_%s_amd64.deb\n' "$cache" "$name" "${version//:/%3a}"
}

# apt-get download NAME=VERSION into DIR, printing the downloaded file's path.
# Returns 2 when apt does not know that version (vanished or stale lists).
gi_apt_download() {
  local dir=$1 name=$2 version=$3 tmp log
  tmp=$(mktemp -d "$dir/.dl.XXXXXX")
  log=$tmp/apt.log
  # apt drops privileges to _apt for downloads; let it write the temp dir.
  if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then
    chown _apt "$tmp"
  fi
  if ! (cd "$tmp" && apt-get -q download "$name=$version") >"$log" 2>&1; then
    if grep -qiE "Version '.*' for '.*' was not found|Unable to locate package|has no installation candidate" "$log"; then
      cat "$log" >&2
      rm -rf "$tmp"
      return 2
    fi
    cat "$log" >&2
    rm -rf "$tmp"
    return 1
  fi
  local f
  f=$(find "$tmp" -maxdepth 1 -name '*.deb' -print -quit)
  [[ -n $f ]] || { cat "$log" >&2; rm -rf "$tmp"; return 1; }
  local dest
  dest=$(gi_deb_path "$dir" "$name" "$version")
  mv -f "$f" "$dest"
  rm -rf "$tmp"
  printf '%s\n' "$dest"
}

gi_sha256() {
  sha256sum "$1" | cut -d' ' -f1
}

# Newest mtime (seconds since the epoch) of the files inside a .deb.
gi_deb_newest_mtime() {
  dpkg-deb --fsys-tarfile "$1" | TZ=UTC tar -tv --full-time |
    awk '{print $4 " " $5}' | LC_ALL=C sort | tail -n 1 |
    { read -r d t; TZ=UTC date -d "$d $t" +%s; }
}
