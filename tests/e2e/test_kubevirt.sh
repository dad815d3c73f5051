#!/usr/bin/env bash
# e2e: own-cluster (it kills, fences, revives, adds and deletes nodes: the VMs of the
# scripts beside it on a shared cluster would fail, and their controllers replace them)
# The test cluster runs KubeVirt's own controllers (tests/cluster/up): the
# behaviour the recovery controller reacts to is KubeVirt's, not a fake's.
# Only VirtualMachines are created here; VMIs, launcher pods, restarts,
# backoff and statuses come from KubeVirt, kube-scheduler and KWOK, and the
# failures from tests/cluster/nodes and tests/cluster/guest (CONTRACT.md,
# "The test cluster").
#
# Needs a cluster from tests/cluster/up (the nodes and guest scripts). Takes
# about two minutes, most of it waiting for a killed node to go NotReady.
. "$(dirname "$0")/lib.sh"

root=$(t_root)
nodes_cmd() { "$root/tests/cluster/nodes" "$KUBECONFIG" "$@"; }
guest_cmd() { "$root/tests/cluster/guest" "$KUBECONFIG" "$@"; }

if ! t_local_cluster; then
  t_skip "KubeVirt in the test cluster" "not a cluster from tests/cluster/up (no nodes/guest scripts)"
  t_summary
fi

ns=$(t_ns e2e-kubevirt) || { t_fail "create a namespace" "kubectl create namespace failed"; t_summary; }

# A small VM (1 CPU, 128Mi): runStrategy Always unless told otherwise.
#   vm NAME [RUNSTRATEGY [EXTRA-SPEC-YAML]]
vm() {
  cat <<EOF
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: $1
  labels: {app: e2e-kubevirt}
spec:
  runStrategy: ${2:-Always}
  template:
    metadata:
      labels: {app: e2e-kubevirt, vm: $1}
    spec:
${3:-}
      domain:
        cpu: {cores: 1}
        memory: {guest: 128Mi}
        devices: {}
EOF
}
jget() { kubectl get "$1" "$2" -n "$ns" -o json 2>/dev/null | jq -r "$3"; }
vmi_uid() { jget vmi "$1" '.metadata.uid // ""'; }
vmi_phase() { jget vmi "$1" '.status.phase // ""'; }
vmi_node() { jget vmi "$1" '.status.nodeName // ""'; }
is_running() { [ "$(vmi_phase "$1")" = Running ]; }
# The VMI exists with another uid than $2 (KubeVirt replaced it).
new_uid() { local u; u=$(vmi_uid "$1"); [ -n "$u" ] && [ "$u" != "$2" ]; }
# The VMI's launcher pod (kubevirt.io/created-by is the VMI's uid), as JSON.
launcher() {
  kubectl get pods -n "$ns" -l "kubevirt.io/created-by=$1" -o json | jq '.items[0] // empty'
}
no_launcher() { [ -z "$(launcher "$1")" ]; }
vm_status_is() { [ "$(jget vm "$1" .status.printableStatus)" = "$2" ]; }
no_start_failure() { [ -z "$(jget vm "$1" '.status.startFailure // ""')" ]; }
vmi_gone() { ! kubectl get vmi "$1" -n "$ns" >/dev/null 2>&1; }
ms() { echo $(($(date +%s%N) / 1000000)); }
node_ready() {
  kubectl get node "$1" -o json | jq -r '.status.conditions[] | select(.type == "Ready") | .status'
}
check_eq() { # NAME WANT GOT
  if [ "$2" = "$3" ]; then t_pass "$1"; else t_fail "$1" "want '$2', got '$3'"; fi
}

# --- the cluster: nodes, heartbeats, KubeVirt's configuration -------------
list=$(nodes_cmd list)
t_check "nodes list: at least 3 nodes, all Ready" test "$(awk '$2 == "True"' <<<"$list" | wc -l)" -ge 3
t_check "nodes list: one 'NAME READY CPU MEMORY' line per node" \
  test "$(awk 'NF == 4' <<<"$list" | wc -l)" = "$(kubectl get nodes -o name | wc -l)"
fresh=$(kubectl get nodes -o json | jq --arg now "$(date -u +%s)" '[.items[] |
  select(.metadata.labels["kubevirt.io/schedulable"] == "true") |
  select((.metadata.annotations["kubevirt.io/heartbeat"] // "1970-01-01T00:00:00Z" | fromdateiso8601) > ($now | tonumber) - 120)] | length')
t_check "every node carries a fresh kubevirt.io/heartbeat and kubevirt.io/schedulable=true" \
  test "$fresh" = "$(kubectl get nodes -o name | wc -l)"

# --- KubeVirt's validating webhook (virt-api) ---------------------------
out=$(vm vm-both Always | sed 's/^  runStrategy: Always$/  runStrategy: Always\n  running: true/' |
  kubectl create -n "$ns" -f - 2>&1)
case "$out" in
  *"mutually exclusive"*) t_pass "virt-api's webhook refuses a VM with both running and runStrategy" ;;
  *) t_fail "virt-api's webhook refuses a VM with both running and runStrategy" "got: $out" ;;
esac

# --- a VM starts: VMI, launcher pod bound by the scheduler, Running ---------
t0=$(ms)
vm vm-a | kubectl create -n "$ns" -f - >/dev/null
vm_uid=$(jget vm vm-a .metadata.uid)
t_check "KubeVirt creates a VMI for a VM with runStrategy Always" t_wait 30 kubectl get vmi vm-a -n "$ns"
owner=$(jget vmi vm-a '.metadata.ownerReferences[] | select(.controller == true) | "\(.kind) \(.name) \(.uid)"')
check_eq "the VMI's controller ownerReference is the VM (with its uid)" "VirtualMachine vm-a $vm_uid" "$owner"
if t_wait 60 is_running vm-a; then
  t_pass "the VMI becomes Running"
  t_note "VM created -> VMI Running in $(($(ms) - t0)) ms"
else
  t_fail "the VMI becomes Running" "phase '$(vmi_phase vm-a)'"
  # Everything below starts from a Running VMI: stop here rather than wait
  # out every later timeout (minutes) on a cluster that cannot run a VM.
  t_note "no Running VMI: the remaining checks cannot run"
  t_summary
fi
uid1=$(vmi_uid vm-a)
node1=$(vmi_node vm-a)
pod=$(launcher "$uid1")
check_eq "a launcher pod runs on the VMI's node" "$node1 Running" \
  "$(jq -r '"\(.spec.nodeName) \(.status.phase)"' <<<"$pod")"
check_eq "kube-scheduler bound the launcher pod (PodScheduled True, default-scheduler)" "True default-scheduler" \
  "$(jq -r '"\(.status.conditions[] | select(.type == "PodScheduled") | .status) \(.spec.schedulerName)"' <<<"$pod")"
t_check "the launcher pod requests no /dev/kvm (the KubeVirt CR's useEmulation applies)" \
  test -z "$(jq -r '.spec.containers[].resources.requests["devices.kubevirt.io/kvm"] // empty' <<<"$pod")"
t_check "the VM's printableStatus is Running" t_wait 20 vm_status_is vm-a Running
t_check "KubeVirt's firmware controller wrote firmware.uuid into the VM" \
  test -n "$(jget vm vm-a '.spec.template.spec.domain.firmware.uuid // ""')"

# --- guest crash: KubeVirt replaces the VMI (new uid), no backoff ----------
# The Failed VMI is deleted within a second or so: wait for the uid to
# change rather than for a phase.
t0=$(ms)
t_check "guest crash is reported" guest_cmd crash "$ns" vm-a
if t_wait 30 new_uid vm-a "$uid1"; then
  t_pass "after a guest crash KubeVirt recreates the VMI with a new uid"
  t_note "guest crash -> new VMI in $(($(ms) - t0)) ms"
else
  t_fail "after a guest crash KubeVirt recreates the VMI with a new uid" "uid still $uid1"
fi
t_check "the new VMI becomes Running" t_wait 30 is_running vm-a
t_note "guest crash -> new VMI Running in $(($(ms) - t0)) ms"
t_check "a crash after Running is not a start failure (no status.startFailure)" no_start_failure vm-a
t_check "the crashed VMI's launcher pod is gone" t_wait 30 no_launcher "$uid1"

# --- failstart: start failures, backoff, CrashLoopBackOff -----------------
# vm-b stays off vm-a's node, which is killed below while vm-b backs off.
uid_a=$(vmi_uid vm-a)
node_a=$(vmi_node vm-a)
guest_cmd failstart "$ns" vm-b on
t_cleanup_add "'$root/tests/cluster/guest' '$KUBECONFIG' failstart '$ns' vm-b off"
vm vm-b Always "      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {key: kubernetes.io/hostname, operator: NotIn, values: [$node_a]}" |
  kubectl create -n "$ns" -f - >/dev/null
fails() { jget vm vm-b '.status.startFailure.consecutiveFailCount // 0'; }
fails_at_least() { [ "$(fails)" -ge "$1" ]; }
t0=$(ms)
if t_wait 60 fails_at_least 1; then
  t_pass "a start that fails is counted (startFailure.consecutiveFailCount 1)"
  t_note "failstart: count 1 after $(($(ms) - t0)) ms"
else
  t_fail "a start that fails is counted (startFailure.consecutiveFailCount 1)" "count $(fails)"
fi
if t_wait 60 fails_at_least 2; then
  t_pass "KubeVirt retries after its backoff and the count climbs (2)"
  t_note "failstart: count 2 after $(($(ms) - t0)) ms"
else
  t_fail "KubeVirt retries after its backoff and the count climbs (2)" "count $(fails)"
fi
check_eq "the VM's printableStatus is CrashLoopBackOff" CrashLoopBackOff "$(jget vm vm-b .status.printableStatus)"
# From now on it starts again; KubeVirt's next retry is 40-60 s away
# (backoff after two failures), checked at the end.
guest_cmd failstart "$ns" vm-b off

# --- node loss: kill (nothing happens), fence (KubeVirt reschedules) -------
t_cleanup_add "'$root/tests/cluster/nodes' '$KUBECONFIG' revive '$node_a'"
t0=$(ms)
t_check "nodes kill" nodes_cmd kill "$node_a"
node_down() { [ "$(node_ready "$1")" != True ]; }
if t_wait 120 node_down "$node_a"; then
  t_pass "a killed node goes NotReady (node lifecycle controller)"
  t_note "kill -> node Ready=$(node_ready "$node_a") in $(($(ms) - t0)) ms"
else
  t_fail "a killed node goes NotReady (node lifecycle controller)" "still Ready"
fi
check_eq "KubeVirt alone leaves the VMI Running on the dead node" "$uid_a Running $node_a" \
  "$(vmi_uid vm-a) $(vmi_phase vm-a) $(vmi_node vm-a)"
check_eq "... and the VM's printableStatus stays Running" Running "$(jget vm vm-a .status.printableStatus)"
t0=$(ms)
t_check "nodes fence" nodes_cmd fence "$node_a"
t_check "the fenced node carries the out-of-service taint" test "$(kubectl get node "$node_a" -o json |
  jq -r '.spec.taints[]? | select(.key == "node.kubernetes.io/out-of-service") | "\(.value):\(.effect)"')" = nodeshutdown:NoExecute
if t_wait 90 new_uid vm-a "$uid_a"; then
  t_pass "after the fence the VMI fails and KubeVirt makes a new one"
  t_note "fence -> new VMI in $(($(ms) - t0)) ms"
else
  t_fail "after the fence the VMI fails and KubeVirt makes a new one" "uid still $uid_a ($(vmi_phase vm-a))"
fi
if t_wait 60 is_running vm-a; then
  t_note "fence -> new VMI Running in $(($(ms) - t0)) ms"
fi
node_new=$(vmi_node vm-a)
if [ "$(vmi_phase vm-a)" = Running ] && [ -n "$node_new" ] && [ "$node_new" != "$node_a" ]; then
  t_pass "the new VMI runs on another node ($node_new)"
else
  t_fail "the new VMI runs on another node" "phase '$(vmi_phase vm-a)' on '$node_new' (dead node $node_a)"
fi
t_check "the launcher pod on the fenced node is deleted" t_wait 30 no_launcher "$uid_a"

# --- revive -------------------------------------------------------------
t0=$(ms)
t_check "nodes revive" nodes_cmd revive "$node_a"
t_note "revive -> Ready and schedulable in $(($(ms) - t0)) ms"
check_eq "the revived node is Ready" True "$(node_ready "$node_a")"
t_check "the revived node has no out-of-service taint" test -z "$(kubectl get node "$node_a" -o json |
  jq -r '.spec.taints[]? | select(.key == "node.kubernetes.io/out-of-service") | .key')"

# --- failstart off: the backed-off VM starts -----------------------------
if t_wait 90 is_running vm-b; then
  t_pass "after failstart off the VM starts at KubeVirt's next retry"
else
  t_fail "after failstart off the VM starts at KubeVirt's next retry" \
    "VMI phase '$(vmi_phase vm-b)', VM '$(jget vm vm-b .status.printableStatus)'"
fi
t_check "a VMI that reached Running clears status.startFailure" t_wait 20 no_start_failure vm-b

# --- nodes add: a new node that VMs can run on ----------------------------
extra=e2e-node-$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
t_cleanup_add kubectl delete node "$extra" --ignore-not-found
t_check "nodes add" nodes_cmd add "$extra" 2 4Gi
check_eq "nodes list shows it" "$extra True 2 4Gi" "$(nodes_cmd list | grep "^$extra ")"
vm vm-c Always "      nodeSelector: {kubernetes.io/hostname: $extra}" | kubectl create -n "$ns" -f - >/dev/null
if t_wait 60 is_running vm-c && [ "$(vmi_node vm-c)" = "$extra" ]; then
  t_pass "a VM runs on the added node"
else
  t_fail "a VM runs on the added node" "phase '$(vmi_phase vm-c)' on '$(vmi_node vm-c)'"
fi

# --- stopping: runStrategy Halted removes the VMI at once -----------------
t0=$(ms)
kubectl patch vm vm-c -n "$ns" --type merge -p '{"spec":{"runStrategy":"Halted"}}' >/dev/null
if t_wait 30 vmi_gone vm-c; then
  t_pass "runStrategy Halted: the VMI is shut down and deleted"
  t_note "Halted -> VMI gone in $(($(ms) - t0)) ms"
else
  t_fail "runStrategy Halted: the VMI is shut down and deleted" "VMI still there ($(vmi_phase vm-c))"
fi
t_check "the VM's printableStatus is Stopped" t_wait 20 vm_status_is vm-c Stopped
kubectl delete node "$extra" --wait=false >/dev/null 2>&1 || true

t_summary
