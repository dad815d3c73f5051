#!/usr/bin/env bash
# tests/docker/smoke.sh — runs the image the way manifests/ runs it, without
# a container engine, against a local control plane (tests/cluster/up).
#
# The image is the final root that tests/docker/check.sh made (run it first;
# it records the root, the USER and the ENTRYPOINT in .cache/docker-check/).
# The container is emulated as the Deployment asks for it:
#   - readOnlyRootFilesystem: a read-only bind mount of that root, with /proc
#     and an 8 MiB tmpfs at /tmp (the Deployment's emptyDir);
#   - runAsUser 65532, allowPrivilegeEscalation false, capabilities drop ALL:
#     the image's USER via setpriv, with no_new_privs and empty capability
#     sets;
#   - the ServiceAccount: kvrecover-system/kvrecover-controller's token
#     (`kubectl create token`), the cluster CA and the namespace mounted at
#     /var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST
#     and _PORT, so the controller uses its in-cluster configuration and the
#     RBAC of manifests/rbac.yaml;
#   - the args and env of the applied Deployment (POD_NAMESPACE, POD_NAME,
#     $(VAR) expanded as the kubelet does), except --http-addr, moved to
#     127.0.0.1 and a free port because the host's network is shared.
# Installed with `kubectl apply -k manifests/`; the paper's case with
# `kubectl apply -k manifests/examples/`, with `trigger: {immediate: true}`
# (the paper's behaviour); KubeVirt starts the VMs, and VM-001's guest then
# crashes through tests/cluster/guest (only VirtualMachines are created).
#
# Not covered here: the kubelet itself (probes, restarts, limits), seccomp,
# and scheduling; Pod Security admission is checked with a server-side dry
# run of a Pod made from the Deployment's template.
#
# Usage: tests/docker/smoke.sh   (as root, after tests/docker/check.sh)
# Last line: "N passed, N failed".
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
KVR_CACHE=${KVR_CACHE:-$repo/.cache}
export KVR_CACHE
cache=$KVR_CACHE/docker-check
say() { printf 'docker-smoke: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (chroot, mount)"
if [ ! -d "$cache/final" ] || [ ! -f "$cache/final.env" ]; then
  die "run tests/docker/check.sh first"
fi
user=
entrypoint=()
# shellcheck source=/dev/null
. "$cache/final.env"
if [ -z "$user" ] || [ "${#entrypoint[@]}" = 0 ]; then
  die "$cache/final.env: no USER or ENTRYPOINT"
fi
final=$(cd "$cache/final" && pwd -P)
uid=${user%%:*}
gid=${user#*:}
[ "$gid" != "$user" ] || gid=$uid

kubectl_dir=$(
  # shellcheck source=tests/cluster/lib.sh
  . "$repo/tests/cluster/lib.sh"
  echo "$KVR_CACHE/k8s-$(cluster_modver k8s k8s.io/kubernetes)"
)
[ -x "$kubectl_dir/kubectl" ] || die "no kubectl in $kubectl_dir: run tests/cluster/up once"
PATH=$kubectl_dir:$PATH

root=$cache/smoke-root
sa=$cache/smoke-sa
log=$cache/logs/smoke-controller.log
mkdir -p "$root" "$sa" "$cache/logs"
mounts=()
kc=
pid=
cleanup() {
  local i
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
  done
  mounts=()
  [ -z "$kc" ] || "$repo/tests/cluster/down" "$kc" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass=0
fail=0
ok() {
  pass=$((pass + 1))
  printf 'ok   %s\n' "$1"
}
bad() {
  fail=$((fail + 1))
  printf 'FAIL %s: %s\n' "$1" "$2"
}
# wait_for SECONDS CMD...: CMD every 0.2 s until it succeeds.
wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# --- the cluster and the manifests ------------------------------------------
say "starting a local control plane"
kc=$("$repo/tests/cluster/up" | tail -n 1)
export KUBECONFIG=$kc
KUBECACHEDIR=$(dirname "$kc")/kubectl-cache
export KUBECACHEDIR
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
host_port=${server#https://}
kubectl apply --server-side -k "$repo/manifests/" >/dev/null
kubectl wait --for condition=Established crd/recoverypolicies.kvrecover.io --timeout=30s >/dev/null

deploy=$(kubectl -n kvrecover-system get deployment kvrecover-controller -o json)
if jq '{apiVersion: "v1", kind: "Pod",
        metadata: {name: "smoke-psa", namespace: "kvrecover-system"},
        spec: .spec.template.spec}' <<<"$deploy" |
  kubectl create --dry-run=server -f - >/dev/null 2>"$cache/logs/smoke-psa.err"; then
  ok "a Pod from the Deployment's template passes Pod Security 'restricted'"
else
  bad "a Pod from the Deployment's template passes Pod Security 'restricted'" "$(cat "$cache/logs/smoke-psa.err")"
fi

# --- the container ------------------------------------------------------------
token=$(kubectl -n kvrecover-system create token kvrecover-controller --duration=1h)
printf '%s' "$token" >"$sa/token"
cp "$(dirname "$kc")/ca.crt" "$sa/ca.crt"
printf 'kvrecover-system' >"$sa/namespace"
chmod 644 "$sa/token" "$sa/ca.crt" "$sa/namespace"
# The kubelet creates the mount point in the container's root; so do we.
mkdir -p "$final/run/secrets/kubernetes.io/serviceaccount"

mount --bind "$final" "$root"
mounts+=("$root")
mount -o remount,bind,ro "$root"
mount -t proc proc "$root/proc"
mounts+=("$root/proc")
mount -t tmpfs -o size=8m,mode=1777 tmpfs "$root/tmp"
mounts+=("$root/tmp")
mount --bind "$sa" "$root/run/secrets/kubernetes.io/serviceaccount"
mounts+=("$root/run/secrets/kubernetes.io/serviceaccount")
mount -o remount,bind,ro "$root/run/secrets/kubernetes.io/serviceaccount"

pod=kvrecover-controller-smoke-0
ns=kvrecover-system
args=()
while IFS= read -r a; do
  # shellcheck disable=SC2016  # the kubelet's $(VAR) syntax, literally
  a=${a//'$(POD_NAMESPACE)'/$ns}
  # shellcheck disable=SC2016
  a=${a//'$(POD_NAME)'/$pod}
  case "$a" in --http-addr=*) a=--http-addr=127.0.0.1:0 ;; esac
  args+=("$a")
done < <(jq -r '.spec.template.spec.containers[0].args[]' <<<"$deploy")

say "running ${entrypoint[*]} ${args[*]} as $uid:$gid in a read-only $final"
: >"$log"
chroot "$root" /usr/bin/setpriv --reuid="$uid" --regid="$gid" --clear-groups \
  --no-new-privs --inh-caps=-all --bounding-set=-all -- \
  /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  KUBERNETES_SERVICE_HOST="${host_port%:*}" KUBERNETES_SERVICE_PORT="${host_port##*:}" \
  POD_NAMESPACE="$ns" POD_NAME="$pod" "${entrypoint[@]}" "${args[@]}" >>"$log" 2>&1 &
pid=$!

if wait_for 60 grep -q '"msg":"leader"' "$log"; then
  ok "the controller starts in-cluster, syncs its caches and leads"
else
  bad "the controller starts in-cluster, syncs its caches and leads" "$(tail -5 "$log")"
fi
if grep -q '"kubeconfig":"in-cluster"' "$log"; then
  ok "it used the in-cluster configuration"
else
  bad "it used the in-cluster configuration" "$(head -1 "$log")"
fi
status=/proc/$pid/status
if [ -r "$status" ] && [ "$(awk '/^Uid:/ { print $2 }' "$status")" = "$uid" ] &&
  [ "$(awk '/^NoNewPrivs:/ { print $2 }' "$status")" = 1 ] &&
  [ "$(awk '/^CapEff:/ { print $2 }' "$status")" = 0000000000000000 ] &&
  [ "$(awk '/^CapBnd:/ { print $2 }' "$status")" = 0000000000000000 ]; then
  ok "it runs as uid $uid, no_new_privs, no capabilities"
else
  bad "it runs as uid $uid, no_new_privs, no capabilities" "$(grep -E '^(Uid|NoNewPrivs|CapEff|CapBnd):' "$status" 2>&1 | tr '\n' ' ')"
fi

port=$(sed -n 's/.*"msg":"http listening".*"port":\([0-9]*\).*/\1/p' "$log" | head -1)
http() { curl -fsS --max-time 5 "http://127.0.0.1:$port$1"; }
for path in /healthz /readyz; do
  if [ -n "$port" ] && http "$path" >/dev/null; then
    ok "$path answers 200"
  else
    bad "$path answers 200" "port '${port:-}'"
  fi
done
holder=$(kubectl -n "$ns" get lease kvrecover-controller -o jsonpath='{.spec.holderIdentity}' 2>&1 || true)
if [ "$holder" = "$pod" ]; then
  ok "the Lease names the pod as holder"
else
  bad "the Lease names the pod as holder" "holder '$holder'"
fi

# --- the paper's case study -------------------------------------------------
kubectl apply --server-side -k "$repo/manifests/examples/" >/dev/null
ready() { [ "$(kubectl -n paper get rp paper -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
if wait_for 30 ready; then
  ok "manifests/examples: the policy is Ready"
else
  bad "manifests/examples: the policy is Ready" "$(kubectl -n paper get rp paper -o jsonpath='{.status.conditions}' 2>&1)"
fi
kubectl -n paper patch rp paper --type merge -p '{"spec":{"trigger":{"immediate":true}}}' >/dev/null
running() { [ "$(kubectl -n paper get vmi vm-001 -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; }
wait_for 120 running || bad "KubeVirt runs VM-001" "no Running VMI vm-001"
"$repo/tests/cluster/guest" "$KUBECONFIG" crash paper vm-001 || bad "VM-001's guest crashes" "tests/cluster/guest failed"
replaced() { [ -n "$(kubectl -n paper get vm -l kvrecover.io/replaces=vm-001 -o name)" ]; }
if wait_for 30 replaced; then
  got=$(kubectl -n paper get vm -l kvrecover.io/replaces=vm-001 \
    -o jsonpath='{range .items[*]}{.metadata.labels.kvrecover\.io/template} {.metadata.annotations.kvrecover\.io/score}{"\n"}{end}')
  if [ "$got" = "vm-005 0.6667" ]; then
    ok "VM-001 fails: replaced from vm-005, score 0.6667"
  else
    bad "VM-001 fails: replaced from vm-005, score 0.6667" "got '$got'"
  fi
else
  bad "VM-001 fails: replaced from vm-005, score 0.6667" "no replacement in 30 s: $(tail -3 "$log")"
fi
if http /metrics | grep -qx 'kvrecover_recoveries_total{policy="paper/paper",result="Recovered"} 1'; then
  ok "/metrics counts the recovery"
else
  bad "/metrics counts the recovery" "$(http /metrics 2>&1 | grep recoveries_total | head -3)"
fi
if grep -qiE '"code":403|forbidden' "$log"; then
  bad "no request was forbidden by manifests/rbac.yaml" "$(grep -iE '"code":403|forbidden' "$log" | head -2)"
else
  ok "no request was forbidden by manifests/rbac.yaml"
fi

# --- shutdown -------------------------------------------------------------------
kill -TERM "$pid"
rc=0
for _ in $(seq 1 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  bad "SIGTERM: exits 0 within 10 s" "still running"
else
  wait "$pid" || rc=$?
  pid=
  if [ "$rc" = 0 ]; then
    ok "SIGTERM: exits 0 within 10 s"
  else
    bad "SIGTERM: exits 0 within 10 s" "exit $rc"
  fi
fi
holder=$(kubectl -n "$ns" get lease kvrecover-controller -o jsonpath='{.spec.holderIdentity}' 2>&1 || true)
if [ -z "$holder" ]; then
  ok "SIGTERM: the Lease is released"
else
  bad "SIGTERM: the Lease is released" "holder '$holder'"
fi

say "controller log: $log"
printf '%d passed, %d failed\n' "$pass" "$fail"
[ "$fail" = 0 ]
