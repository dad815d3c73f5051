#!/usr/bin/env bash
# `make demo`: the paper's case study, live, on a private control plane.
#
#   1. build (make all), start the local control plane with KubeVirt's own
#      virt-controller and virt-api (tests/cluster/up);
#   2. install the CRD, the controller's namespace and least-privilege RBAC;
#   3. start bin/kvrecover-controller as its own identity (never admin), with
#      its dashboard on 127.0.0.1:8080 (another free port when 8080 is taken);
#   4. apply examples/paper (pool, five VMs, policy) in namespace "paper",
#      with `trigger: {immediate: true}` (the paper acts on the first
#      failure); KubeVirt starts the VMs' instances;
#   5. VM-001's guest crashes (tests/cluster/guest), print the ranking
#      (bin/kvrecover score), the replacement the controller created and its
#      instance running;
#   6. keep everything up with the dashboard URL until Ctrl-C, then stop the
#      controller and the control plane: no process is left behind.
#
# Environment: KVR_DEMO_WAIT=0 tears down at once instead of waiting for
# Ctrl-C (to check the demo itself); KVR_DEMO_PORT picks the dashboard port.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1

bold="" plain=""
if [ -t 1 ]; then bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true); fi
step() { echo; echo "${bold}==> $*${plain}"; }
die() { echo "demo: $*" >&2; exit 1; }

step "Building"
make -s -j2 all >/dev/null || die "the build failed (run make to see why)"

kc=""
torn=0
teardown() {
  [ "$torn" = 1 ] && return
  torn=1
  echo
  step "Tearing down"
  if declare -F ctl_cleanup >/dev/null; then ctl_cleanup; fi
  if [ -n "$kc" ]; then tests/cluster/down "$kc" >/dev/null 2>&1 && echo "control plane stopped"; fi
}
trap teardown EXIT
trap 'exit 0' INT TERM

step "Starting the local control plane (Kubernetes, KubeVirt's virt-controller and virt-api, KWOK nodes)"
upout=$(mktemp)
tests/cluster/up >"$upout" || { rm -f "$upout"; die "tests/cluster/up failed"; }
kc=$(tail -n 1 "$upout"); rm -f "$upout"
export KUBECONFIG=$kc
# The kubectl built from the server's release (tests/cluster/up made it).
k8s_bin=$(. tests/cluster/lib.sh && echo "$KVR_CACHE/k8s-$(cluster_modver k8s k8s.io/kubernetes)")
PATH=$k8s_bin:$PATH
KUBECACHEDIR=$(dirname "$kc")/kubectl-cache
export KUBECACHEDIR

CTL_DIR=$(dirname "$kc")/demo
export CTL_DIR
mkdir -p "$CTL_DIR"
# the demo's controller serves every policy, as a deployed one does
CTL_POLICY_LABEL=
. tests/e2e/controller.sh

step "Installing the RecoveryPolicy CRD, namespace kvrecover-system and RBAC"
ctl_install || die "installing the CRD and RBAC failed"
kubectl get crd recoverypolicies.kvrecover.io

port=${KVR_DEMO_PORT:-8080}
port_used() {
  local hex
  hex=$(printf ':%04X' "$1")
  awk -v p="$hex" 'NR > 1 && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
if port_used "$port"; then
  echo "port $port is taken: the dashboard gets a free port"
  port=0
fi

step "Starting kvrecover-controller as system:serviceaccount:kvrecover-system:kvrecover-controller"
# Its own session: Ctrl-C reaches this script, which stops it with SIGTERM.
CTL_SETSID=1 CTL_HTTP_ADDR=127.0.0.1:$port ctl_start controller --leader-elect=true \
  --id demo || die "cannot start the controller"
if ! ctl_wait_synced controller 60; then
  ctl_dump controller 20
  die "the controller did not start (its log: $CTL_DIR/controller.log)"
fi
ctl_wait_log controller '"msg": ?"leader"' 30 >/dev/null 2>&1
port=$(ctl_port controller)
echo "controller pid ${CTL_PID[controller]}, log $CTL_DIR/controller.log"

step "Applying the paper's case study (examples/paper) in namespace paper"
kubectl create namespace paper >/dev/null
echo "(the pool members' guests get 128Mi, as the VMs have, so that a replacement fits the demo's nodes)"
kvr_paper_pool paper || die "cannot apply examples/paper/pool.yaml"
kubectl apply -n paper -f examples/paper/vms.yaml -f examples/paper/policy.yaml
echo "the paper acts on the first failure: trigger.immediate true"
kubectl patch rp -n paper paper --type merge -p '{"spec":{"trigger":{"immediate":true}}}'
for vm in vm-001 vm-002 vm-003 vm-004 vm-005; do
  kvr_vmi_start paper "$vm" || die "KubeVirt did not start $vm's instance"
done
kvr_poll 30 kvr_ready_current paper paper True
kubectl get vm,vmi -n paper
kubectl get rp -n paper

step "VM-001's guest crashes (tests/cluster/guest: virt-handler reports its VMI Failed)"
failed_uid=$(kvr_vmi_uid paper vm-001)
kvr_vmi_fail paper vm-001 || die "cannot crash vm-001's guest"
echo "VMI vm-001 uid $failed_uid: Failed"

step "The ranking (bin/kvrecover score, the same similarity the controller uses)"
bin/kvrecover score --policy examples/paper/policy.yaml --pool examples/paper/pool.yaml \
  --failed examples/paper/failed-vmi.yaml

step "The replacement the controller created"
if kvr_poll 30 kvr_has_replacement paper vm-001; then
  replacement=$(kvr_replacements paper vm-001 | head -n 1)
  kvr_vmi_start paper "$replacement" || echo "(its instance is not Running yet)"
  kubectl get vm -n paper -l kvrecover.io/replaces=vm-001 \
    -L kvrecover.io/replaces -L kvrecover.io/template -L kvrecover.io/policy
  kubectl get vmi -n paper "$replacement"
  kubectl get vm -n paper -l kvrecover.io/replaces=vm-001 \
    -o jsonpath='{range .items[*]}score annotation: {.metadata.annotations.kvrecover\.io/score}{"\n"}{end}'
  echo "the failed VM: runStrategy $(kvr_run_strategy paper vm-001)," \
    "replaced-by '$(kubectl get vm -n paper vm-001 \
                     -o jsonpath='{.metadata.annotations.kvrecover\.io/replaced-by}')'"
  echo
  kubectl get rp -n paper
  echo
  kubectl get events -n paper --field-selector reason=Recovered
  echo
  echo "decision log line:"
  ctl_decisions controller | tail -n 1
else
  echo "no replacement within 30 s; the controller's last lines:"
  ctl_dump controller 20
fi

step "Dashboard"
if [ -n "$port" ]; then
  echo "  ${bold}http://127.0.0.1:$port/${plain}   (metrics: http://127.0.0.1:$port/metrics)"
else
  echo "  the controller did not report its HTTP port (see $CTL_DIR/controller.log)"
fi
echo "  kubectl: export KUBECONFIG=$kc PATH=$k8s_bin:\$PATH"
if [ "${KVR_DEMO_WAIT:-1}" = 0 ]; then
  exit 0
fi
echo
echo "Press Ctrl-C to stop the demo and tear everything down."
while ctl_alive controller; do sleep 1; done
echo "the controller exited on its own; its last lines:"
ctl_dump controller 10
