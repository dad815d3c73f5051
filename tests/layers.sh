#!/usr/bin/env bash
# tests/layers.sh — the layer rule of controller/, run by `make lint`.
#
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
# Prints FILE:LINE: what is wrong, for every offence; exits 1 when there is
# one.
set -uo pipefail
cd "$(dirname "$0")/.."

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

exit "$status"
