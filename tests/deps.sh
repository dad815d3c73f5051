#!/usr/bin/env bash
# Installs the Debian packages that the build and the tests need (`make deps`).
#
# Quiet and quick when everything is present: dpkg-query decides, and
# `apt-get update` runs only when something is missing. kubectl, etcd and
# kube-apiserver are not taken from Debian: tests/cluster/lib.sh builds them
# from the pinned Go modules (tests/cluster/k8s, tests/cluster/etcd). Go (for
# the test control plane only) is expected at /usr/local/go or on PATH; this
# script does not install it. util-linux (flock, setsid) and coreutils are
# essential packages and always present.
set -euo pipefail

pkgs=(
  build-essential pkg-config
  libcurl4-openssl-dev libcjson-dev libyaml-dev libwebsockets-dev uthash-dev libssl-dev zlib1g-dev
  openssl clang libclang-rt-14-dev clang-format cppcheck valgrind
  curl ca-certificates git jq python3 chromium
)

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { "${sudo[@]}" apt-get update -q &&
       "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 </dev/null; then
  tail -n 30 "$log" >&2
  echo "deps: apt-get failed (full log above)" >&2
  exit 1
fi
echo "deps: done" >&2
