#!/usr/bin/env bash
# Never give up (issue 13a): a namespace whose ResourceQuota allows no more
# VirtualMachines. A protected VM fails (a Manual VM's guest crashes: KubeVirt
# will not restart it, kvrecover must replace it); the API server refuses
# the replacement, so the policy shows Blocked with the API's reason, an
# Event says so, and the failed VM is left as it was (the dry-run create
# comes before the halt). Five minutes later an admin raises the quota: the
# replacement appears within the retry backoff's cap (30 s), once.
# Takes about six minutes, most of it the five minutes blocked.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
if ! t_local_cluster; then
  t_skip "blocked by quota" "not a cluster from tests/cluster/up (no guest script)"
  t_summary
fi
ctl_test_setup
ns=$(t_ns quota) || { t_fail "namespace" "cannot create one"; t_summary; }
: "${KVR_BLOCKED_SECONDS:=300}"

kvr_paper_pool "$ns" || { t_fail "the pool" "kubectl failed"; t_summary; }
kvr_policy "$ns" paper "$(kvr_paper_spec '{"capture": false}')"
feat="{os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}"
kvr_vm "$ns" q-1 "$feat" && kvr_vm "$ns" q-2 "$feat" ||
  { t_fail "create the VMs" "kubectl failed"; t_summary; }
kvr_vm_manual "$ns" q-1 && kvr_vmi_start "$ns" q-2 || t_fail "the VMs run" "no Running VMI"
# No room for a third VirtualMachine.
quota() {
  kubectl apply -n "$ns" -f - >/dev/null <<EOF
apiVersion: v1
kind: ResourceQuota
metadata: {name: vms}
spec:
  hard: {count/virtualmachines.kubevirt.io: "$1"}
EOF
}
quota_hard_is() {
  [ "$(kubectl get resourcequota -n "$ns" vms \
        -o jsonpath='{.status.hard.count/virtualmachines\.kubevirt\.io}' 2>/dev/null)" = "$1" ]
}
quota 2
kvr_check_wait "the quota is in force (status.hard filled in by the quota controller)" 60 quota_hard_is 2
if kvr_vm "$ns" q-3 "$feat" 2>/dev/null; then
  t_fail "precondition: the quota refuses a third VM" "kubectl created q-3"
else t_pass "precondition: the quota refuses a third VM"; fi

kvr_start_or_give_up main --leader-elect=false
kvr_check_wait "the policy is Ready" 30 kvr_ready_current "$ns" paper True

uid=$(kvr_vmi_uid "$ns" q-1)
kvr_vmi_fail "$ns" q-1
blocked() {
  kubectl get rp -n "$ns" paper -o json | t_jq '
    [.status.conditions[]? | select(.type == "Blocked")][0] as $c
    | $c.status == "True" and ($c.message | test("q-1"))
      and ($c.message | test("quota|Forbidden"; "i"))' >/dev/null
}
kvr_check_wait "Blocked True, its message names q-1 and the API's reason (quota)" 60 blocked
blocked || t_note "conditions: $(kvr_status "$ns" paper '.status.conditions')"
kvr_check_wait "Event RecoveryBlocked" 15 kvr_has_event "$ns" RecoveryBlocked
kvr_check_eq "blocked: nothing created" "$(kvr_count_replacements "$ns" q-1)" 0
kvr_check_eq "blocked: q-1 is not halted (nothing changed)" "$(kvr_run_strategy "$ns" q-1)" Manual

t_note "blocked for $KVR_BLOCKED_SECONDS s before the quota is raised"
sleep "$KVR_BLOCKED_SECONDS"
kvr_check_eq "after $KVR_BLOCKED_SECONDS s: still nothing created, q-1 still Manual" \
  "$(kvr_count_replacements "$ns" q-1)/$(kvr_run_strategy "$ns" q-1)" 0/Manual
if ctl_alive main; then t_pass "the controller still runs, retrying"
else t_fail "the controller still runs, retrying" "it exited"; ctl_dump main 20; fi

quota 3
t_wait 60 quota_hard_is 3 || t_fail "the raised quota is in force" "status.hard is not 3"
t1=$(date +%s)
kvr_check_wait "the quota raised: the replacement appears within 30 s (the backoff's cap)" 31 \
  kvr_has_replacement "$ns" q-1
t_note "replaced $(($(date +%s) - t1)) s after the quota was raised"
r=$(kvr_replacements "$ns" q-1 | head -n 1)
kvr_check_json "its failed-uid is q-1's crashed VMI" "$(kvr_vm_json "$ns" "$r")" \
  ".metadata.annotations[\"kvrecover.io/failed-uid\"] == \"$uid\""
kvr_check_wait "q-1 is Halted, replaced-by it, previous-run-strategy Manual" 30 \
  kvr_halted_for "$ns" q-1 Manual
not_blocked() {
  kubectl get rp -n "$ns" paper -o json |
    jq -e '([.status.conditions[]? | select(.type == "Blocked")][0].status // "False") == "False"' >/dev/null
}
kvr_check_wait "Blocked becomes False" 30 not_blocked
sleep 3
kvr_check_eq "exactly one replacement" "$(kvr_count_replacements "$ns" q-1)" 1
ctl_stop main 20

t_summary
