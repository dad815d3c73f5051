#!/usr/bin/env bash
# tests/layers.sh — the two rules of controller/'s structure, run by
# `make lint`.
#
# 1. Layers.
# controller/ is a folder per layer, lowest first (README, "Development"):
#
#   base       xalloc, buf, text, log, yaml ...   includes nothing of ours above it
#   sim        the paper's method (pure)          base
#   kube       the Kubernetes client              base
#   web        the HTTP side                      base
#   reconcile  the controller proper              base, sim, kube, web
#   cmd        the programs                       everything
#
# Every file may include its own layer. sim, kube and web never include
# each other, and nothing but cmd includes cmd. Our includes are written
# with their layer ("base/buf.h"), so that this is a check on the text: an
# include of ours without a layer folder is refused as well.
#
# 2. Private names. A name with a double underscore after its module's
# prefix (kube__parse_status, CACHE__FIND) belongs to that module: it
# appears only in mod.c, mod.h and mod_test.h. A mod_test.h (what only
# tests may call) is included only by mod.c. Tests (tests/unit, tests/fuzz,
# tests/e2e) may use both.
#
# Prints FILE:LINE: what is wrong, for every offence; exits 1 when there is
# one.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

declare -A may=(
  [base]="base"
  [sim]="sim base"
  [kube]="kube base"
  [web]="web base"
  [reconcile]="reconcile sim kube web base"
  [cmd]="cmd reconcile sim kube web base"
)
status=0

# Every include of every file under controller/LAYER/: FILE:LINE:TEXT.
while IFS=: read -r file line text; do
  layer=${file#controller/}
  layer=${layer%%/*}
  if [ -z "${may[$layer]+set}" ]; then
    echo "$file:$line: $layer/ is not a layer (add it to tests/layers.sh and config.mk)"
    status=1
    continue
  fi
  target=$(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^">]*)[">].*/\1/p' <<<"$text")
  case $target in
  */*) to=${target%%/*} ;;
  *)
    # A bare quoted name is one of ours written without its layer; a bare
    # angle-bracket name is the system's.
    if [[ $text == *'"'* ]]; then
      echo "$file:$line: #include \"$target\": write our includes with their layer (\"base/buf.h\")"
      status=1
    fi
    continue
    ;;
  esac
  [ -n "${may[$to]+set}" ] || continue # <cjson/cJSON.h>, <sys/socket.h>, ...
  if [[ " ${may[$layer]} " != *" $to "* ]]; then
    echo "$file:$line: $layer/ includes $target: $layer may use only ${may[$layer]// /, }"
    status=1
  fi
done < <(grep -nE '^[[:space:]]*#[[:space:]]*include' controller/*/*.[ch] /dev/null)

# The module a file belongs to: buf for base/buf.c, base/buf.h and
# base/buf_test.h.
module_of() {
  local m=${1##*/}
  m=${m%.[ch]}
  printf '%s' "${m%_test}"
}

# Every line of ours (outside tests) that names a mod__ name or includes a
# mod_test.h: FILE:LINE:TEXT.
while IFS=: read -r file line text; do
  mod=$(module_of "$file")
  while read -r name; do
    [ -n "$name" ] || continue
    owner=${name%%__*}
    owner=${owner,,}
    if [ "$owner" != "$mod" ]; then
      echo "$file:$line: $name is private to $owner (use it in $owner.c, $owner.h or ${owner}_test.h only)"
      status=1
    fi
  done < <(grep -oE '\b[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*__[A-Za-z0-9][A-Za-z0-9_]*' <<<"$text" | sort -u)
  test_h=$(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*_test\.h)".*/\1/p' <<<"$text")
  if [ -n "$test_h" ] && [ "$(module_of "$test_h")" != "$mod" ]; then
    echo "$file:$line: includes $test_h, which only $(module_of "$test_h").c and tests may include"
    status=1
  fi
done < <(grep -nE '[A-Za-z0-9]__[A-Za-z0-9]|_test\.h"' controller/*/*.[ch] bench/*.c /dev/null)

exit "$status"
