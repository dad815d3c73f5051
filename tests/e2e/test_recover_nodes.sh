#!/usr/bin/env bash
# e2e: own-cluster (it kills, fences and revives nodes)
# Lost hosts on the test cluster's real KubeVirt (issue 11, CONTRACT.md
# "When kvrecover acts"), failures through tests/cluster/nodes only:
#   - a host dies and is not fenced (KubeVirt waits: the VMI stays Running
#     on a NotReady node): after nodeLossSeconds the VM is Halted and
#     replaced, the replacement runs; the host comes back: the original does
#     not run beside its replacement;
#   - more than half of a policy's protected VMs on dead hosts: StormHold,
#     nothing halted or created; the hosts come back: the hold ends;
#   - a 4-CPU VM on a dead, fenced host, with no room for it anywhere:
#     KubeVirt cannot place it (ErrorUnschedulable); after
#     restartTimeoutSeconds a smaller similar member that fits is chosen
#     (the best one is refused, NoCapacity) and runs.
# Placement is pinned with nodeSelector; a node-4 is added for the fenced
# host. Takes about four minutes (a killed node goes NotReady after 33-46 s).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
if ! t_local_cluster; then
  t_skip "lost hosts" "not a cluster from tests/cluster/up (no nodes script)"
  t_summary
fi
ctl_test_setup

# vm NAME FEATURES NODE|- [APP=kv] [EXTRA-SPEC-JSON]: a small VM (1 vCPU,
# 128Mi) labelled app=APP, on NODE ("-": anywhere), printed as JSON.
vm() {
  jq -n --arg name "$1" --arg f "$2" --arg node "$3" --arg app "${4:-kv}" \
        --argjson extra "${5:-{\}}" '{
    apiVersion: "kubevirt.io/v1", kind: "VirtualMachine",
    metadata: {name: $name, labels: {app: $app}},
    spec: {runStrategy: "Always", template: {
      metadata: {labels: {app: $app, vm: $name}, annotations: {"kvrecover.io/features": $f}},
      spec: ({domain: {cpu: {cores: 1}, memory: {guest: "128Mi"}, devices: {}}}
             + (if $node == "-" then {} else {nodeSelector: {"kubernetes.io/hostname": $node}} end)
             | . * $extra)}}}'
}
mkvm() { local n=$1; shift; vm "$@" | kubectl create -n "$n" -f - >/dev/null; }
# member NS NAME FEATURES-BLOCK-YAML VM-JSON: a pool ConfigMap (pool n).
member() {
  jq -n --arg name "$2" --arg f "$3" --arg vm "$4" '{
    apiVersion: "v1", kind: "ConfigMap",
    metadata: {name: $name, labels: {"kvrecover.io/pool": "n"}},
    data: {features: $f, vm: $vm}}' | kubectl apply -n "$1" -f - >/dev/null
}
policy() { # NS TRIGGER-JSON [THRESHOLD]
  kvr_policy "$1" p "{\"selector\": {\"matchLabels\": {\"app\": \"kv\"}},
    \"poolSelector\": {\"matchLabels\": {\"kvrecover.io/pool\": \"n\"}},
    \"weights\": {\"app\": 0.5, \"tier\": 0.5}, \"threshold\": ${3:-0.5}, \"mode\": \"Jaccard\",
    \"action\": \"Recreate\", \"capture\": false, \"trigger\": $2}"
}
node_ready() {
  [ "$(kubectl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = "$2" ]
}
condition() { # NS TYPE: the policy's condition TYPE's status
  kubectl get rp -n "$1" p -o json 2>/dev/null |
    jq -r --arg t "$2" '[.status.conditions[]? | select(.type == $t)][0].status // ""'
}
condition_is() { [ "$(condition "$1" "$2")" = "$3" ]; }
vms_in() { kubectl get vm -n "$1" -o name | grep -c .; }
replacements_in() { kubectl get vm -n "$1" -l kvrecover.io/replaces -o name | grep -c .; }
vmi_gone() { ! kubectl get vmi -n "$1" "$2" >/dev/null 2>&1; }

kvr_nodes add node-4 4 8Gi >/dev/null || { t_fail "add node-4" "tests/cluster/nodes add failed"; t_summary; }
loss=$(t_ns loss) && storm=$(t_ns storm) && room=$(t_ns room) ||
  { t_fail "namespaces" "cannot create them"; t_summary; }
small=$(vm any "{app: svc, tier: x}" -)

# loss: 1 of 4 protected VMs on node-2 (no storm: limit ceil(50% of 4) = 2).
member "$loss" svc-src $'app: svc\ntier: x' "$small"
mkvm "$loss" lost-1 "{app: svc, tier: x}" node-2
for v in a-2 a-3 a-4; do mkvm "$loss" "$v" "{app: svc, tier: x}" node-1; done
policy "$loss" '{"nodeLossSeconds": 90}'
# storm: 3 of 4 on node-2.
member "$storm" svc-src $'app: svc\ntier: x' "$small"
for v in b-1 b-2 b-3; do mkvm "$storm" "$v" "{app: svc, tier: x}" node-2; done
mkvm "$storm" b-4 "{app: svc, tier: x}" node-1
policy "$storm" '{"nodeLossSeconds": 90}'
# room: big-1 (4 vCPUs, requests 3 CPUs) on node-4; node-1 and node-3 keep
# less than 3 CPUs free (a filler requesting 2 on each), node-2 dies too.
# big-src (the same, score 1.0) fits nowhere; small-src (1 vCPU, 0.5) fits.
big='{"domain": {"cpu": {"cores": 4}, "resources": {"requests": {"cpu": "3"}}}}'
member "$room" big-src $'app: big\ntier: x' "$(vm big-src "{app: big, tier: x}" - kv "$big")"
member "$room" small-src $'app: big\ntier: y' "$(vm small-src "{app: big, tier: y}" -)"
mkvm "$room" big-1 "{app: big, tier: x}" node-4 kv "$big"
for nd in node-1 node-3; do
  mkvm "$room" "fill-$nd" "{app: filler}" "$nd" filler '{"domain": {"resources": {"requests": {"cpu": "2"}}}}'
done
# small-src shares app, not tier: weighted Jaccard 0.5 / 1.5 = 1/3, so the
# room policy's threshold is 0.3 for it to be eligible.
policy "$room" '{"restartTimeoutSeconds": 20, "nodeLossSeconds": 0}' 0.3

for pair in "$loss lost-1" "$loss a-2" "$loss a-3" "$loss a-4" "$storm b-1" "$storm b-2" \
            "$storm b-3" "$storm b-4" "$room big-1" "$room fill-node-1" "$room fill-node-3"; do
  # shellcheck disable=SC2086
  kvr_vmi_start $pair || t_fail "start $pair" "no Running VMI"
done
kvr_start_or_give_up main --leader-elect=false
for n in "$loss" "$storm" "$room"; do
  kvr_check_wait "policy p in $n is Ready" 30 kvr_ready_current "$n" p True
done

# ---- the hosts die -------------------------------------------------------------
t0=$(date +%s)
kvr_nodes kill node-2 >/dev/null && kvr_nodes kill node-4 >/dev/null &&
  kvr_nodes fence node-4 >/dev/null || t_fail "kill node-2 and node-4, fence node-4" "nodes failed"
kvr_check_wait "node-2 goes NotReady (Unknown)" 120 node_ready node-2 Unknown
kvr_check_eq "KubeVirt leaves lost-1's VMI Running on the dead node" "$(kvr_vmi_phase "$loss" lost-1)" Running

# ---- no room: a smaller member that fits ---------------------------------------
unschedulable() {
  [ "$(kubectl get vm -n "$room" big-1 -o jsonpath='{.status.printableStatus}')" = ErrorUnschedulable ]
}
kvr_check_wait "fenced: KubeVirt cannot place big-1 again (ErrorUnschedulable)" 120 unschedulable
kvr_check_wait "after restartTimeoutSeconds big-1 is replaced" 120 kvr_has_replacement "$room" big-1
rb=$(kvr_replacements "$room" big-1 | head -n 1)
kvr_check_eq "from small-src, which fits (big-src scores higher but fits no node)" \
  "$(kvr_vm_json "$room" "$rb" | jq -r '.metadata.labels["kvrecover.io/template"] // ""')" small-src
kvr_check_wait "big-1 is Halted for it" 30 kvr_halted_for "$room" big-1 Always
kvr_check_wait "the smaller replacement runs" 60 kvr__vmi_running "$room" "$rb"
says_nocap() {
  ctl_log_since_start main | grep -F big-src | grep -qF NoCapacity ||
    kubectl get events -n "$room" -o json |
      jq -e '[.items[].message | select(test("big-src.*NoCapacity|NoCapacity.*big-src"))] | length > 0' >/dev/null
}
kvr_check_wait "the controller says why big-src was refused (NoCapacity, log or Event)" 10 says_nocap

# ---- kill without fence: after nodeLossSeconds -----------------------------------
kvr_check_wait "lost-1 is replaced after nodeLossSeconds" 180 kvr_has_replacement "$loss" lost-1
rl=$(kvr_replacements "$loss" lost-1 | head -n 1)
created=$(kvr_vm_json "$loss" "$rl" | jq -r '.metadata.creationTimestamp // "" | fromdateiso8601')
# The host's last KubeVirt heartbeat was at most 60 s before the kill: 90 s
# of silence is at least 30 s after it.
if [ -n "$created" ] && [ "$created" -ge $((t0 + 30)) ]; then
  t_pass "not before nodeLossSeconds of silence (created $((created - t0)) s after the kill)"
else t_fail "not before nodeLossSeconds of silence" "created at '$created', kill at $t0"; fi
kvr_check_wait "lost-1 is Halted, replaced-by its replacement" 30 kvr_halted_for "$loss" lost-1 Always
kvr_check_wait "lost-1's replacement runs" 60 kvr__vmi_running "$loss" "$rl"
kvr_check_eq "nothing else in loss is replaced" "$(replacements_in "$loss")" 1

# ---- storm: more than half down, act on none -------------------------------------
kvr_check_wait "storm: 3 of 4 down -> condition StormHold True" 120 condition_is "$storm" StormHold True
kvr_check_wait "storm: Event StormHold" 15 kvr_has_event "$storm" StormHold RecoveryPolicy p
kvr_check_eq "storm: nothing created" "$(vms_in "$storm")/$(replacements_in "$storm")" 4/0
kvr_check_eq "storm: nothing halted" \
  "$(kubectl get vm -n "$storm" -o jsonpath='{.items[*].spec.runStrategy}')" "Always Always Always Always"

# ---- the host comes back ------------------------------------------------------------
kvr_nodes revive node-2 >/dev/null || t_fail "revive node-2" "nodes failed"
kvr_check_wait "node-2 is Ready again" 120 node_ready node-2 True
kvr_check_wait "revived: the halted original's old VMI goes away" 60 vmi_gone "$loss" lost-1
lost_runs() { [ "$(kvr_vmi_phase "$loss" lost-1)" = Running ]; }
if t_wait 15 lost_runs; then
  t_fail "revived: the original does not run beside its replacement (15 s)" "VMI lost-1 runs again"
else t_pass "revived: the original does not run beside its replacement (15 s)"; fi
kvr_check_eq "revived: lost-1 stays Halted, its replacement runs, exactly one" \
  "$(kvr_run_strategy "$loss" lost-1)/$(kvr_vmi_phase "$loss" "$rl")/$(kvr_count_replacements "$loss" lost-1)" \
  Halted/Running/1
kvr_check_wait "storm: the hold ends once the host is back (StormHold False)" 120 \
  condition_is "$storm" StormHold False
kvr_check_eq "storm: still nothing created" "$(replacements_in "$storm")" 0
kvr_check_eq "room: exactly one replacement for big-1" "$(kvr_count_replacements "$room" big-1)" 1
if ctl_alive main; then t_pass "the controller ran throughout"
else t_fail "the controller ran throughout" "it exited"; ctl_dump main 20; fi
ctl_stop main 20

t_summary
