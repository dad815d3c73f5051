#!/usr/bin/env bash
# Decisions other than a plain recovery, and bad input (issue 5):
#   DryRun           announces and records the decision, creates and halts nothing;
#   no eligible      NoEligibleCandidate Event and status, nothing created;
#   required         a perfect match on another OS is not eligible;
#   invalid policy   one the schema accepts but the controller must refuse
#                    (two weights for one category: Language and language) ->
#                    Ready=False naming the field, Event InvalidPolicy, no action;
#                    fixed, it acts again;
#   bad pool member  malformed features YAML / a malformed vm: skipped with
#                    Event InvalidPoolMember, the rest still work.
# Only VirtualMachines are created (KubeVirt makes their VMIs); a failure is
# a guest crash (tests/cluster/guest). The policies use
# `trigger: {immediate: true}`, the paper's behaviour: the first Failed VMI
# is a failure. A VM that is not replaced is KubeVirt's to restart, and the
# checks see KubeVirt do it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
ctl_test_setup
vms=(vm-001 vm-002 vm-003 vm-004 vm-005)

# setup PREFIX SPEC-OVERRIDES: a namespace with the paper's pool and VMs, a
# policy "paper" with the paper's spec and the overrides, and the VMs'
# instances Running.
# Capture is off: the pool is exactly the example's members (and the bad
# ones added here), so that the expected template names are known.
# Prints the namespace.
setup() {
  local n
  n=$(t_ns "$1") || return 1
  kvr_paper "$n" - || return 1
  kvr_policy "$n" paper "$(kvr_paper_spec "$(jq -cn --argjson o "$2" '{capture: false} * $o')")" ||
    return 1
  for vm in "${vms[@]}"; do kvr_vmi_start "$n" "$vm" || return 1; done
  echo "$n"
}
status_is() { [ "$(kvr_status "$1" "$2" "$3")" = "$4" ]; }
event_type() {
  kubectl get events -n "$1" -o json |
    jq -r --arg r "$2" '[.items[] | select(.reason == $r)][0].type // ""'
}
event_msg() {
  kubectl get events -n "$1" -o json |
    jq -r --arg r "$2" --arg k "$3" \
      '[.items[] | select(.reason == $r and .involvedObject.kind == $k)][0].message // ""'
}
vm_count() { kubectl get vm -n "$1" -o name | grep -c .; }
# vm_event NS REASON VM: an Event with that reason about the VM or its VMI.
vm_event() {
  kvr_has_event "$1" "$2" VirtualMachine "$3" || kvr_has_event "$1" "$2" VirtualMachineInstance "$3"
}

dry=$(setup dryrun '{"action": "DryRun"}') &&
none=$(setup noeligible '{}') &&
bad=$(setup invalid '{"weights": {"language": 0.3, "Language": 0.2, "database": 0.2, "webserver": 0.1}}') &&
members=$(setup badmember '{}') ||
  { t_fail "set up the namespaces" "kubectl failed"; t_summary; }
t_pass "the schema accepts a policy the controller must refuse (Language and language)"
# Two bad members in the pool: malformed features YAML (sorted first), and
# a member scoring 1.0 against vm-001 whose vm is not YAML.
kubectl create configmap -n "$members" vm-000 --from-literal=features='os: [ubuntu, {unclosed' \
  --from-literal=vm="$(kubectl get vm -n "$members" vm-005 -o json |
                       jq -c '{apiVersion, kind, metadata: {name: "vm-000"}, spec}')" >/dev/null &&
kubectl label configmap -n "$members" vm-000 kvrecover.io/pool=paper >/dev/null &&
kubectl create configmap -n "$members" vm-00a \
  --from-literal=features=$'os: ubuntu-20.04\nlanguage: nodejs\ndatabase: mysql\nwebserver: nginx' \
  --from-literal=vm='apiVersion: kubevirt.io/v1
kind: VirtualMachine
spec: {template: [unclosed' >/dev/null &&
kubectl label configmap -n "$members" vm-00a kvrecover.io/pool=paper >/dev/null ||
  t_fail "create the bad pool members" "kubectl failed"
# A twin of vm-002 on another OS: scores 1.0 but `required: [os]` rules it out.
kubectl get cm -n "$none" vm-002 -o json |
  jq '.metadata = {name: "vm-002-centos", namespace: .metadata.namespace,
                   labels: {"kvrecover.io/pool": "paper"}}
      | .data.features |= sub("ubuntu-20.04"; "centos-7")' | kubectl create -f - >/dev/null

kvr_start_or_give_up main --leader-elect=false

# ---- DryRun -------------------------------------------------------------------
kvr_check_wait "DryRun policy is Ready" 30 kvr_ready_current "$dry" paper True
uid=$(kvr_vmi_uid "$dry" vm-001)
kvr_vmi_fail "$dry" vm-001
kvr_check_wait "DryRun: Event DryRun on the policy" 30 kvr_has_event "$dry" DryRun RecoveryPolicy paper
kvr_check_wait "DryRun: Event DryRun on the failed VM (or its VMI)" 10 vm_event "$dry" DryRun vm-001
dry_status() {
  kvr_status "$dry" paper | t_jq --arg uid "$uid" '
    .recoveries == 1 and .recent[0].decision == "DryRun" and .recent[0].failedVM == "vm-001"
    and .recent[0].failedUID == $uid and .recent[0].template == "vm-005"
    and ((.recent[0].score - 0.6667) | fabs) < 0.0001
    and (.recent[0].replacement | length) > 0' >/dev/null
}
kvr_check_wait "DryRun: status recent[0] is the DryRun decision (vm-005, 0.6667, would-be name)" \
  15 dry_status
dry_status || t_note "status: $(kvr_status "$dry" paper)"
line=$(ctl_decisions_about main "$dry" vm-001 | head -n 1)
kvr_check_json "DryRun: the decision line says DryRun and vm-005" "${line:-null}" \
  '.decision == "DryRun" and .selected == "vm-005"'
kvr_check_wait "DryRun: KubeVirt restarts vm-001 (a new VMI runs)" 60 \
  kvr_vmi_restarted "$dry" vm-001 "$uid"
kvr_check_eq "DryRun: no replacement in any of this test's namespaces" \
  "$(kvr_replacements_in "$dry $none $bad $members" vm-001 | grep -c .)" 0
kvr_check_eq "DryRun: no VM created in the namespace" "$(vm_count "$dry")" 5
kvr_check_eq "DryRun: the failed VM is not halted (DryRun writes nothing)" \
  "$(kvr_run_strategy "$dry" vm-001)" Always

# ---- no eligible candidate ----------------------------------------------------
kvr_check_wait "the no-eligible policy is Ready" 30 kvr_ready_current "$none" paper True
uid=$(kvr_vmi_uid "$none" vm-004)
kvr_vmi_fail "$none" vm-004
kvr_check_wait "vm-004 fails (best 0.1667 < 0.5): Event NoEligibleCandidate on the policy" 30 \
  kvr_has_event "$none" NoEligibleCandidate RecoveryPolicy paper
kvr_check_wait "NoEligibleCandidate Event on the failed VM (or its VMI)" 10 \
  vm_event "$none" NoEligibleCandidate vm-004
kvr_check_eq "NoEligibleCandidate is a Warning" "$(event_type "$none" NoEligibleCandidate)" Warning
noel_status() {
  kvr_status "$none" paper | t_jq --arg uid "$uid" '
    .recent[0].decision == "NoEligibleCandidate" and .recent[0].failedVM == "vm-004"
    and .recent[0].failedUID == $uid and ((.recent[0].template // "") == "")
    and ((.recent[0].replacement // "") == "")' >/dev/null
}
kvr_check_wait "status recent[0] is NoEligibleCandidate, no template, no replacement" 15 noel_status
line=$(ctl_decisions_about main "$none" vm-004 | head -n 1)
kvr_check_json "the decision line says NoEligibleCandidate" "${line:-null}" \
  '.decision == "NoEligibleCandidate" and ((.replacement // "") == "")'
kvr_check_wait "no eligible: KubeVirt restarts vm-004 (a new VMI runs)" 60 \
  kvr_vmi_restarted "$none" vm-004 "$uid"
kvr_check_eq "no eligible: nothing created" "$(vm_count "$none")" 5
kvr_check_eq "no eligible: vm-004 is not halted (KubeVirt may still bring it back)" \
  "$(kvr_run_strategy "$none" vm-004)" Always
# required: [os]
kvr_vmi_fail "$none" vm-002
kvr_check_wait "vm-002 fails -> a replacement" 30 kvr_has_replacement "$none" vm-002
r=$(kvr_vm_json "$none" "$(kvr_replacements "$none" vm-002 | head -n 1)")
kvr_check_json "required [os]: vm-005 (0.6667) wins over an exact twin on centos-7" "${r:-null}" \
  '.metadata.labels["kvrecover.io/template"] == "vm-005" and
   .metadata.annotations["kvrecover.io/score"] == "0.6667"'

# ---- an invalid policy ----------------------------------------------------------
not_ready_named() {
  kubectl get rp -n "$bad" paper -o json | t_jq '
    .metadata.generation as $g
    | [.status.conditions[]? | select(.type == "Ready")][0] as $c
    | $c.status == "False" and ($c.message | test("spec\\.weights"))
      and (($c.observedGeneration // $g) == $g)' >/dev/null
}
kvr_check_wait "invalid policy: Ready=False with a message naming spec.weights" 30 not_ready_named
kvr_check_eq "invalid policy: the condition's reason is InvalidPolicy" \
  "$(kubectl get rp -n "$bad" paper -o json |
     jq -r '[.status.conditions[]? | select(.type == "Ready")][0].reason // ""')" InvalidPolicy
kvr_check_wait "invalid policy: Event InvalidPolicy on the policy" 15 \
  kvr_has_event "$bad" InvalidPolicy RecoveryPolicy paper
kvr_check_eq "InvalidPolicy is a Warning" "$(event_type "$bad" InvalidPolicy)" Warning
row=$(kubectl get rp -n "$bad" paper --no-headers | tr -s ' ')
if [[ "$row" == *" False "* ]]; then t_pass "kubectl get rp shows Ready False"
else t_fail "kubectl get rp shows Ready False" "row: '$row'"; fi
uid=$(kvr_vmi_uid "$bad" vm-001)
kvr_vmi_fail "$bad" vm-001
kvr_check_wait "invalid policy: KubeVirt restarts vm-001 (a new VMI runs)" 60 \
  kvr_vmi_restarted "$bad" vm-001 "$uid"
sleep 2
kvr_check_eq "invalid policy: a failed VMI is not acted on" "$(vm_count "$bad")" 5
kvr_check_eq "invalid policy: no decision is logged for it" \
  "$(ctl_decisions_about main "$bad" | grep -c .)" 0
kvr_check_eq "invalid policy: the failed VM is not halted or changed" \
  "$(kvr_run_strategy "$bad" vm-001)" Always
# Fixed, the policy is Ready again and acts.
kvr_policy "$bad" paper "$(kvr_paper_spec '{"capture": false}')"
kvr_check_wait "fixed policy: Ready=True for the new generation" 30 kvr_ready_current "$bad" paper True
kvr_vmi_fail "$bad" vm-002
kvr_check_wait "fixed policy: vm-002 fails -> a replacement" 30 kvr_has_replacement "$bad" vm-002

# ---- bad pool members ---------------------------------------------------------------
kvr_check_wait "bad member: Event InvalidPoolMember on the policy" 30 \
  kvr_has_event "$members" InvalidPoolMember RecoveryPolicy paper
msgs=$(kubectl get events -n "$members" -o json |
       jq -r '.items[] | select(.reason == "InvalidPoolMember") | .message')
if grep -q 'vm-000' <<<"$msgs"; then t_pass "the InvalidPoolMember Event names vm-000 (malformed features)"
else t_fail "the InvalidPoolMember Event names vm-000 (malformed features)" "messages: $msgs"; fi
kvr_check_eq "InvalidPoolMember is a Warning" "$(event_type "$members" InvalidPoolMember)" Warning
kvr_check_wait "status.poolSize counts every member, valid or not (7)" 30 \
  status_is "$members" paper .status.poolSize 7
kvr_vmi_fail "$members" vm-001
kvr_check_wait "bad members: vm-001 fails -> still recovered" 30 kvr_has_replacement "$members" vm-001
sleep 2
r=$(kvr_vm_json "$members" "$(kvr_replacements "$members" vm-001 | head -n 1)")
kvr_check_json "bad members skipped: built from vm-005 (not vm-00a, whose vm is malformed)" \
  "${r:-null}" '.metadata.labels["kvrecover.io/template"] == "vm-005" and
                .metadata.annotations["kvrecover.io/score"] == "0.6667"'
kvr_check_eq "bad members: exactly one replacement" "$(kvr_count_replacements "$members" vm-001)" 1

t_summary
