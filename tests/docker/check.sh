#!/usr/bin/env bash
# tests/docker/check.sh — runs the Dockerfile's steps without a Docker engine.
#
# There is no Docker engine on the machines this project is developed and
# tested on, so `docker build` cannot run. This script does what it would
# do, step by step, in clean Debian 12 roots made by debootstrap:
#   - every FROM debian:12-slim (by digest: debian:12-slim@sha256:...)
#     starts from a fresh copy of a minbase bookworm root (cached under
#     .cache/docker-check/, made once), with the image's apt sources
#     (bookworm, -updates, -security). The digest itself cannot be checked
#     without a registry: the root is today's bookworm, not that image;
#   - RUN lines run in that root with chroot and /bin/sh -c, with the ARG/ENV
#     values and the WORKDIR; COPY copies from the build context (filtered by
#     .dockerignore) or, with --from, from an earlier stage's root;
#   - unsupported instructions or forms make it fail rather than guess.
# It checks that the build is pinned: every FROM names a digest, and every
# package of every `apt-get install` a version (which apt-get then installs,
# or fails on).
# Then it checks the final stage the way a cluster would run it:
#   - no compiler, no -dev package in it;
#   - `ldd` finds every shared library of every binary in /usr/local/bin;
#   - the ENTRYPOINT answers --version as the Dockerfile's USER (non-root);
#   - that user exists in /etc/passwd.
# And, as the other copy-paste check an admin depends on: the paper's case
# study in manifests/examples/ is byte-for-byte the one in examples/paper/.
# tests/docker/smoke.sh then runs the final root the way the Deployment runs
# the image, against a local control plane.
#
# Usage: tests/docker/check.sh [--rev REV] [DOCKERFILE]   (as root)
#   DOCKERFILE  default <repo>/Dockerfile; its folder is the build context,
#               as with `docker build -f DOCKERFILE DIR`;
#   --rev REV   build a committed revision instead (git archive of REV as
#               the context, with its own Dockerfile): a check of what was
#               committed, unaffected by files being edited in the work tree.
# Environment: KVR_CACHE (default <repo>/.cache); KVR_DEBIAN_MIRROR and
# KVR_DEBIAN_SECURITY (default: the first main and security archive URIs in
# /etc/apt/sources.list*). Needs debootstrap (installed with apt-get when
# missing), chroot, mount, network to that mirror, and npm for the linter
# (the check is skipped without npm).
# Last line: "N passed, N failed".
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${KVR_CACHE:-$repo/.cache}/docker-check
rev=
if [ "${1:-}" = --rev ]; then
  [ $# -ge 2 ] || { echo "usage: $0 [--rev REV] [DOCKERFILE]" >&2; exit 2; }
  rev=$2
  shift 2
fi
dockerfile=${1:-$repo/Dockerfile}
suite=bookworm
image=debian:12-slim
path_env=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'docker-check: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
mkdir -p "$cache/logs" "$cache/apt-archives/partial"
if [ -n "$rev" ]; then
  git -C "$repo" rev-parse --verify -q "$rev^{commit}" >/dev/null || die "--rev $rev: not a commit"
  rm -rf "$cache/context"
  mkdir -p "$cache/context"
  git -C "$repo" archive "$rev" | tar -x -C "$cache/context"
  dockerfile=$cache/context/Dockerfile
  say "context: $rev ($(git -C "$repo" rev-parse --short "$rev"))"
fi
[ -f "$dockerfile" ] || die "$dockerfile: no such file"
context=$(cd "$(dirname "$dockerfile")" && pwd)

# --- mounts: tracked, and always undone before anything is deleted --------
mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
  done
  mounts=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Deletes a root made by this script; refuses while anything is mounted
# below it (rm must never walk into /proc or the apt cache).
remove_root() {
  local d=$1
  [ -e "$d" ] || return 0
  case "$d" in "$cache"/*) ;; *) die "refusing to delete $d: not under $cache" ;; esac
  if awk -v d="$d/" 'index($2 "/", d) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    die "refusing to delete $d: something is mounted below it"
  fi
  rm -rf --one-file-system "$d"
}

# --- the Debian mirror this machine uses ------------------------------------
# The first URI of the main archive and of the security archive named in
# /etc/apt/sources.list or sources.list.d (one-line or deb822 format).
apt_uris() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n -e 's/^[[:space:]]*deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p' \
      -e 's/^[[:space:]]*URIs:[[:space:]]*//p' | tr ' ' '\n' | sed '/^$/d'
}
mirror=${KVR_DEBIAN_MIRROR:-$(apt_uris | grep -v -- '-security' | head -1 || true)}
security=${KVR_DEBIAN_SECURITY:-$(apt_uris | grep -- '-security' | head -1 || true)}
[ -n "$mirror" ] || die "no Debian mirror in /etc/apt/sources.list*: set KVR_DEBIAN_MIRROR"
[ -n "$security" ] || die "no Debian security mirror in /etc/apt/sources.list*: set KVR_DEBIAN_SECURITY"

# --- the base root: debootstrap once, then reused ---------------------------
base=$cache/base-$suite
if [ ! -e "$base/.kvr-base-slim" ]; then
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >"$cache/logs/apt-debootstrap.log" 2>&1 ||
      die "apt-get install debootstrap failed; see $cache/logs/apt-debootstrap.log"
  fi
  remove_root "$base"
  remove_root "$base.tmp"
  say "debootstrap --variant=minbase $suite from $mirror (once; cached in $base)"
  debootstrap --variant=minbase "$suite" "$base.tmp" "$mirror" >"$cache/logs/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $cache/logs/debootstrap.log"
  # As in the debian:12-slim image: deb822 sources for the release, its
  # updates and its security archive.
  rm -f "$base.tmp/etc/apt/sources.list"
  cat >"$base.tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # As debian:12-slim (debuerreotype's slim settings): no docs, man pages or
  # locales from packages, and no apt binary caches in the image. Unlike
  # the image, downloaded .debs are not deleted: they live outside the
  # root, in a cache that is bind-mounted at /var/cache/apt/archives.
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/linda/*' 'path-exclude /usr/share/lintian/overrides/*' \
    'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/man/*' \
    >"$base.tmp/etc/dpkg/dpkg.cfg.d/docker"
  printf '%s\n' 'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
    >"$base.tmp/etc/apt/apt.conf.d/docker-clean"
  find "$base.tmp/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  rm -rf "$base.tmp/usr/share/man/"* "$base.tmp/usr/share/locale/"* "$base.tmp/usr/share/info/"*
  rm -f "$base.tmp/var/cache/apt/"*.bin
  # No package may start a service on this host from inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$base.tmp/usr/sbin/policy-rc.d"
  chmod 755 "$base.tmp/usr/sbin/policy-rc.d"
  rm -rf "$base.tmp/var/lib/apt/lists/"* "$base.tmp/var/cache/apt/archives/"*.deb
  touch "$base.tmp/.kvr-base-slim"
  mv "$base.tmp" "$base"
fi

# --- .dockerignore ------------------------------------------------------------
# Docker's rules, for the patterns this project uses: the last pattern that
# matches a path or one of its parent folders decides; "!" re-includes.
ignore_patterns=()
if [ -f "$context/.dockerignore" ]; then
  while IFS= read -r pat || [ -n "$pat" ]; do
    pat=${pat%%$'\r'}
    case "$pat" in '' | '#'*) continue ;; esac
    pat=${pat#/}
    ignore_patterns+=("${pat%/}")
  done <"$context/.dockerignore"
fi
# ignored REL: status 0 when REL (a path relative to the context) is left out.
ignored() {
  local rel=$1 pat neg verdict=1 p
  for pat in "${ignore_patterns[@]}"; do
    neg=0
    if [ "${pat:0:1}" = '!' ]; then
      neg=1
      pat=${pat:1}
    fi
    p=$rel
    while :; do
      # shellcheck disable=SC2053  # pat is a glob on purpose
      if [[ $p == $pat ]]; then
        verdict=$neg
        break
      fi
      [[ $p == */* ]] || break
      p=${p%/*}
    done
  done
  return "$verdict"
}

# --- the Dockerfile, one logical instruction per line -----------------------
# Comment lines go (also inside continuations, as Docker does); a line ending
# in a backslash continues on the next.
instructions=$(awk '
  /^[[:space:]]*#/ { next }
  {
    line = $0
    if (sub(/\\[[:space:]]*$/, "", line)) { acc = acc line; next }
    acc = acc line
    if (acc ~ /[^[:space:]]/) print acc
    acc = ""
  }
  END { if (acc ~ /[^[:space:]]/) print acc }
' "$dockerfile")

declare -A stage_root=()
from_refs=()
run_lines=()
nstage=0
root=
workdir=/
user=
entrypoint=()
env_vars=()

run_in_root() { # run_in_root LOG CMD: /bin/sh -c CMD in the current stage
  local log=$1 cmd=$2 spec=()
  [ -n "$user" ] && spec=(--userspec="$user")
  chroot "${spec[@]}" "$root" /usr/bin/env -i HOME=/root PATH="$path_env" "${env_vars[@]}" \
    /bin/sh -c "cd '$workdir' && $cmd" >>"$log" 2>&1
}

no_vars() { # no_vars INSTR ARGS: variables are only supported in RUN
  case "$2" in *'$'*) die "$1 $2: variables outside RUN are not supported by this check" ;; esac
}

finish_stage() {
  cleanup
}

start_stage() { # start_stage IMAGE [NAME]
  finish_stage
  [ "$1" = "$image" ] || [[ $1 =~ ^$image@sha256:[0-9a-f]{64}$ ]] ||
    die "FROM $1: only $image is emulated"
  from_refs+=("$1")
  nstage=$((nstage + 1))
  root=$cache/stage-$nstage
  remove_root "$root"
  say "stage $nstage${2:+ ($2)}: fresh copy of the $suite root"
  cp -a "$base" "$root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  mounts+=("$root/proc")
  mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
  mounts+=("$root/var/cache/apt/archives")
  stage_root[$nstage]=$root
  [ -n "${2:-}" ] && stage_root[$2]=$root
  workdir=/
  user=
  env_vars=()
  : >"$cache/logs/stage-$nstage.log"
}

copy_one() { # copy_one SRC DEST: as Docker: a folder's contents, or a file
  local src=$1 dest=$2
  if [ -d "$src" ]; then
    mkdir -p "$dest"
    cp -a "$src/." "$dest/"
  else
    if [[ $dest == */ ]]; then
      mkdir -p "$dest"
    else
      mkdir -p "$(dirname "$dest")"
    fi
    cp -a "$src" "$dest"
  fi
}

copy_from_context() { # copy_from_context REL DEST
  local rel=${1%/} dest=$2 f sub
  [ -e "$context/$rel" ] || die "COPY $rel: not in the build context"
  if [ -d "$context/$rel" ]; then
    mkdir -p "$dest"
    while IFS= read -r -d '' f; do
      sub=${f#"$context/"}
      ignored "$sub" && continue
      mkdir -p "$dest/$(dirname "${sub#"$rel"/}")"
      cp -a "$f" "$dest/${sub#"$rel"/}"
    done < <(find "$context/$rel" -type f -print0)
  else
    ignored "$rel" && die "COPY $rel: excluded by .dockerignore"
    copy_one "$context/$rel" "$dest"
  fi
}

do_copy() { # do_copy ARGS
  local from='' words dest i src
  read -r -a words <<<"$1"
  if [[ ${words[0]} == --from=* ]]; then
    from=${words[0]#--from=}
    words=("${words[@]:1}")
  fi
  [[ ${words[0]} == --* ]] && die "COPY ${words[0]}: option not supported by this check"
  [ "${#words[@]}" -ge 2 ] || die "COPY $1: needs a source and a destination"
  dest=${words[-1]}
  [[ $dest == /* ]] || dest=${workdir%/}/$dest
  if [ "${#words[@]}" -gt 2 ]; then
    [[ $dest == */ ]] || die "COPY $1: several sources need a destination ending in /"
  fi
  for ((i = 0; i < ${#words[@]} - 1; i++)); do
    src=${words[i]}
    if [ -n "$from" ]; then
      [ -n "${stage_root[$from]:-}" ] || die "COPY --from=$from: no such stage"
      [ -e "${stage_root[$from]}$src" ] || die "COPY --from=$from $src: not found"
      copy_one "${stage_root[$from]}$src" "$root$dest"
    else
      copy_from_context "$src" "$root$dest"
    fi
  done
}

while IFS= read -r line; do
  line=${line#"${line%%[![:space:]]*}"}
  instr=${line%%[[:space:]]*}
  args=${line#"$instr"}
  args=${args#"${args%%[![:space:]]*}"}
  instr=${instr^^}
  [ -n "$root" ] || [ "$instr" = FROM ] || [ "$instr" = ARG ] || die "$instr before FROM"
  case "$instr" in
  FROM)
    no_vars FROM "$args"
    read -r -a w <<<"$args"
    if [ "${#w[@]}" = 3 ] && [ "${w[1]^^}" = AS ]; then
      start_stage "${w[0]}" "${w[2]}"
    elif [ "${#w[@]}" = 1 ]; then
      start_stage "${w[0]}"
    else
      die "FROM $args: not understood"
    fi
    ;;
  ARG | ENV)
    [[ $args == *=* ]] || die "$instr $args: only NAME=value is supported"
    [[ $args == *[[:space:]]* ]] && die "$instr $args: one NAME=value per line, without spaces"
    env_vars+=("$args")
    ;;
  WORKDIR)
    no_vars WORKDIR "$args"
    [[ $args == /* ]] || args=${workdir%/}/$args
    workdir=$args
    mkdir -p "$root$workdir"
    ;;
  COPY)
    no_vars COPY "$args"
    do_copy "$args"
    ;;
  RUN)
    [[ $args == \[* ]] && die "RUN $args: exec form not supported by this check"
    say "stage $nstage: RUN ${args:0:70}..."
    run_lines+=("$args")
    t=$SECONDS
    run_in_root "$cache/logs/stage-$nstage.log" "$args" || {
      tail -20 "$cache/logs/stage-$nstage.log" >&2
      die "stage $nstage: RUN failed; see $cache/logs/stage-$nstage.log"
    }
    say "stage $nstage: done in $((SECONDS - t)) s"
    ;;
  USER)
    no_vars USER "$args"
    user=$args
    ;;
  ENTRYPOINT)
    [[ $args == \[*\] ]] || die "ENTRYPOINT $args: only the exec form is supported"
    inner=${args#[}
    inner=${inner%]}
    entrypoint=()
    IFS=',' read -r -a parts <<<"$inner"
    for p in "${parts[@]}"; do
      p=${p#"${p%%[![:space:]]*}"}
      p=${p%"${p##*[![:space:]]}"}
      [[ $p == \"*\" ]] || die "ENTRYPOINT $args: elements must be plain strings"
      p=${p#\"}
      entrypoint+=("${p%\"}")
    done
    ;;
  EXPOSE | LABEL) ;;
  *) die "$instr: not supported by this check" ;;
  esac
done <<<"$instructions"
# The final stage's mounts stay until the checks are done (trap on EXIT).
[ -n "$root" ] || die "no FROM in $dockerfile"

# --- checks on the final stage ----------------------------------------------
pass=0
fail=0
check() { # check NAME CMD...: counts and reports one check
  local name=$1
  shift
  if "$@"; then
    pass=$((pass + 1))
    printf 'ok   %s\n' "$name"
  else
    fail=$((fail + 1))
    printf 'FAIL %s\n' "$name"
  fi
}

final=$root
run_final() { chroot "$final" /usr/bin/env -i PATH="$path_env" "$@"; }

no_compiler() {
  local c found=0
  for c in cc gcc c99 g++ clang ld as make; do
    if run_final /bin/sh -c "command -v $c" >/dev/null 2>&1; then
      echo "  $c is in the image" >&2
      found=1
    fi
  done
  return "$found"
}
no_dev_packages() {
  local dev
  # shellcheck disable=SC2016  # dpkg-query's own ${field} syntax
  dev=$(run_final dpkg-query -W -f '${Package} ${Status}\n' | awk '$NF == "installed" && ($1 ~ /-dev(:|$)/ || $1 == "build-essential") { print $1 }')
  [ -z "$dev" ] || {
    echo "  installed: $dev" >&2
    return 1
  }
}
libraries_resolve() {
  local b out missing=0
  for b in "$final"/usr/local/bin/*; do
    out=$(run_final ldd "/usr/local/bin/${b##*/}" 2>&1) || {
      echo "  ldd ${b##*/}: $out" >&2
      missing=1
      continue
    }
    if grep -q 'not found' <<<"$out"; then
      grep 'not found' <<<"$out" | sed "s|^|  ${b##*/}: |" >&2
      missing=1
    fi
  done
  [ -e "$final/usr/local/bin/kvrecover-controller" ] && [ -e "$final/usr/local/bin/kvrecover" ] &&
    [ "$missing" = 0 ]
}
user_is_nonroot() {
  local uid=${user%%:*}
  [ -n "$uid" ] && [ "$uid" != 0 ] && [ "$uid" != root ] &&
    run_final getent passwd "$uid" >/dev/null
}
entrypoint_runs_as_user() {
  local out
  [ "${#entrypoint[@]}" -gt 0 ] || return 1
  out=$(chroot --userspec="$user" "$final" /usr/bin/env -i PATH="$path_env" "${entrypoint[@]}" --version 2>&1) || {
    echo "  ${entrypoint[*]} --version: $out" >&2
    return 1
  }
  echo "  ${entrypoint[*]} --version as $user: $out"
}
from_by_digest() {
  local ref ok=0
  for ref in "${from_refs[@]}"; do
    [[ $ref == *@sha256:* ]] || {
      echo "  FROM $ref: no digest (FROM $ref@sha256:...)" >&2
      ok=1
    }
  done
  return "$ok"
}
# Every word after `apt-get install` up to the end of that command, options
# aside, must be NAME=VERSION.
apt_versions_pinned() {
  local run rest seg w words ok=0 n=0
  for run in "${run_lines[@]}"; do
    rest=$run
    while [[ $rest == *"apt-get install"* ]]; do
      rest=${rest#*apt-get install}
      seg=${rest%%&&*}
      seg=${seg%%;*}
      seg=${seg%%|*}
      read -r -a words <<<"$seg"
      for w in "${words[@]}"; do
        [[ $w == -* ]] && continue
        n=$((n + 1))
        [[ $w =~ ^[a-z0-9][a-z0-9+.-]*=[A-Za-z0-9.+~:-]+$ ]] || {
          echo "  apt-get install $w: no version (NAME=VERSION, see apt-cache policy NAME)" >&2
          ok=1
        }
      done
    done
  done
  [ "$ok" = 0 ] && echo "  $n packages, each with its version"
  return "$ok"
}
examples_in_sync() {
  local f ok=0
  for f in policy.yaml pool.yaml vms.yaml; do
    cmp -s "$repo/examples/paper/$f" "$repo/manifests/examples/$f" || {
      echo "  manifests/examples/$f differs from examples/paper/$f: copy it again" >&2
      ok=1
    }
  done
  return "$ok"
}

# Debian 12 packages no Dockerfile linter (no hadolint; apt-cache search
# dockerfile finds none); the npm registry has dockerfilelint, pinned here.
lint_dockerfile() {
  local dir=$cache/dockerfilelint
  if [ ! -x "$dir/node_modules/.bin/dockerfilelint" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --silent dockerfilelint@1.8.0) >"$cache/logs/npm.log" 2>&1 || {
      echo "  npm install dockerfilelint@1.8.0 failed; see $cache/logs/npm.log" >&2
      return 1
    }
  fi
  "$dir/node_modules/.bin/dockerfilelint" "$dockerfile" | sed '/^$/d; s/^/  /'
  return "${PIPESTATUS[0]}"
}

if command -v npm >/dev/null; then
  check "dockerfilelint 1.8.0 finds no issue" lint_dockerfile
else
  echo "skip dockerfilelint: npm is not installed"
fi
check "every FROM pins a digest" from_by_digest
check "every apt-get install package pins a version" apt_versions_pinned
check "final stage has no compiler or make" no_compiler
check "final stage has no -dev package" no_dev_packages
check "ldd finds every library of /usr/local/bin/*" libraries_resolve
check "USER ($user) is non-root and in /etc/passwd" user_is_nonroot
check "ENTRYPOINT --version runs as USER" entrypoint_runs_as_user
check "manifests/examples is a copy of examples/paper" examples_in_sync
cleanup
# For tests/docker/smoke.sh: which root is the image, and how it runs.
ln -sfn "$final" "$cache/final"
{
  printf 'user=%q\n' "$user"
  printf 'entrypoint=(%s)\n' "$(printf '%q ' "${entrypoint[@]}")"
} >"$cache/final.env"
printf '  final root: %s (base %s; the image would be about as large)\n' "$(du -shx "$final" | cut -f1)" \
  "$(du -shx "$base" | cut -f1)"
printf '%d passed, %d failed\n' "$pass" "$fail"
[ "$fail" = 0 ]
