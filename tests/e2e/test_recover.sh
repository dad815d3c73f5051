#!/usr/bin/env bash
# The paper's case, end to end (issue 5): the example applied with kubectl,
# the controller running as its own identity, VM-001's guest crashes
# (tests/cluster/guest; `trigger: {immediate: true}`, the paper's
# behaviour), the failed VM is halted and a replacement built from VM-005's
# template appears, with the contract's labels, score and a clean template;
# the policy's status, its Events, its decision log line and `kubectl get
# rp` say so. Then spec capture: the pool ConfigMaps the controller keeps for
# protected VMs (labels, no owner, a clean VirtualMachine, rewritten only on
# change, outliving the VM) and a recovery from that captured pool alone.
# Only VirtualMachines are created; KubeVirt makes and restarts the VMIs.
# What KubeVirt's own restarts, crash loops and lost nodes lead to is in
# test_recover_kubevirt.sh and test_recover_nodes.sh.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
ctl_test_setup
t_check "the controller's identity may watch VMIs but is not an admin" ctl_identity_ok

vms=(vm-001 vm-002 vm-003 vm-004 vm-005)

# ---- the paper's case -------------------------------------------------------
ns=$(t_ns paper) || { t_fail "namespace" "cannot create one"; t_summary; }
kvr_paper "$ns" - && kvr_policy "$ns" paper "$(kvr_paper_spec)" ||
  { t_fail "apply examples/paper" "kubectl apply failed"; t_summary; }
for vm in "${vms[@]}"; do
  kvr_vmi_start "$ns" "$vm" || t_fail "start $vm's VMI" "failed"
done

kvr_start_or_give_up main --leader-elect=false

# Before any failure: Ready, counts, and which VMs have no eligible
# substitute (vm-003 and vm-004 score below 0.5 against every other member).
kvr_check_wait "policy paper becomes Ready=True for its generation" 30 \
  kvr_ready_current "$ns" paper True
pool_cms() { kubectl get cm -n "$ns" -l kvrecover.io/pool=paper -o name | grep -c .; }
pool_size_current() { [ "$(kvr_status "$ns" paper .status.poolSize)" = "$(pool_cms)" ]; }
kvr_check_wait "status.poolSize counts the pool's ConfigMaps" 30 pool_size_current
status_is() { [ "$(kvr_status "$1" "$2" "$3")" = "$4" ]; }
kvr_check_wait "status.protected is 5" 30 status_is "$ns" paper .status.protected 5
kvr_check_wait "status.unprotected is 2 (vm-003, vm-004) before any failure" 30 \
  status_is "$ns" paper .status.unprotected 2
kvr_check_eq "status.unprotectedVMs names them" \
  "$(kvr_status "$ns" paper '.status.unprotectedVMs // [] | join(",")')" '"vm-003,vm-004"'

uid=$(kvr_vmi_uid "$ns" vm-001)
kvr_vmi_fail "$ns" vm-001
kvr_check_wait "VM-001's guest crashes -> a replacement appears" 30 kvr_has_replacement "$ns" vm-001
sleep 2 # time for a duplicate to show up, if the controller made one
kvr_check_eq "exactly one replacement" "$(kvr_count_replacements "$ns" vm-001)" 1
rname=$(kvr_replacements "$ns" vm-001 | head -n 1)
r=$(kvr_vm_json "$ns" "$rname")
[ -n "$r" ] || r='{}'
tmpl=$(jq -r '.metadata.labels["kvrecover.io/template"] // ""' <<<"$r")
# The member it was built from is vm-005's: the ConfigMap vm-005 of the
# example, or the one capture keeps for vm-005.
tmpl_vm=$(kubectl get cm -n "$ns" "$tmpl" -o jsonpath='{.metadata.labels.kvrecover\.io/vm}' \
          2>/dev/null)
kvr_check_eq "built from VM-005's pool member (kvrecover.io/template)" "$tmpl_vm" vm-005
kvr_check_json "labels kvrecover.io/replaces=vm-001, kvrecover.io/policy=paper" "$r" \
  '.metadata.labels["kvrecover.io/replaces"] == "vm-001" and
   .metadata.labels["kvrecover.io/policy"] == "paper"'
kvr_check_json 'annotation kvrecover.io/score is "0.6667"' "$r" \
  '.metadata.annotations["kvrecover.io/score"] == "0.6667"'
kvr_check_json "annotation kvrecover.io/failed-uid is the VMI's uid" "$r" \
  ".metadata.annotations[\"kvrecover.io/failed-uid\"] == \"$uid\""
kvr_check_json "created in the policy's namespace under a new name" "$r" \
  ".metadata.namespace == \"$ns\" and (.metadata.name | IN(\"vm-001\", \"vm-005\") | not)"
# KubeVirt's structural schema prunes what it does not know: the template's
# spec coming back field for field means the replacement is what KubeVirt
# accepts and will run. It is vm-005's spec without what identifies vm-005's
# machine (CONTRACT.md "The replacement" 5: KubeVirt wrote firmware.uuid
# into the live vm-005), and the labels are vm-001's (4).
clean='del(.domain.firmware.uuid, .domain.firmware.serial, .hostname, .subdomain,
           .domain.devices.interfaces[]?.macAddress)
       | if .domain.firmware == {} then del(.domain.firmware) else . end'
want=$(kvr_vm_json "$ns" vm-005 | jq -S ".spec.template.spec | $clean")
got=$(jq -S ".spec.template.spec | $clean" <<<"$r")
if [ -n "$want" ] && [ "$got" = "$want" ]; then
  t_pass "its template's spec is vm-005's, field for field, as KubeVirt's schema stored it"
else
  t_fail "its template's spec is vm-005's, field for field, as KubeVirt's schema stored it" \
    "$(diff <(echo "$want") <(echo "$got") | head -n 10)"
fi
# KubeVirt writes a firmware uuid into every VM it starts: the
# replacement's, when it has one, is its own, never vm-005's.
uuid5=$(kvr_vm_json "$ns" vm-005 | jq -r '.spec.template.spec.domain.firmware.uuid // ""')
uuid_r=$(kvr_vm_json "$ns" "$rname" | jq -r '.spec.template.spec.domain.firmware.uuid // ""')
if [ -n "$uuid5" ] && [ "$uuid_r" != "$uuid5" ]; then
  t_pass "the replacement does not carry vm-005's firmware uuid"
else t_fail "the replacement does not carry vm-005's firmware uuid" "vm-005 '$uuid5', replacement '$uuid_r'"; fi
# (Its template's labels being vm-001's is checked in test_recover_kubevirt.sh:
# here every VM's template has the same labels.)
kvr_check_json "it is set to run (runStrategy Always, as the template)" "$r" \
  '.spec.runStrategy == "Always" or .spec.running == true'
if kubectl get vm -n "$ns" "$rname" -o json |
   jq 'del(.metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp,
           .metadata.generation, .metadata.managedFields, .status)
       | .metadata.name = "schema-check"' |
   kubectl create --dry-run=server --validate=strict -f - >/dev/null 2>&1; then
  t_pass "the replacement passes KubeVirt's schema with strict field validation"
else
  t_fail "the replacement passes KubeVirt's schema with strict field validation" \
    "kubectl create --dry-run=server --validate=strict refused a copy"
fi
# Halt first (CONTRACT.md "The replacement" 1): KubeVirt never runs the
# original beside its replacement.
kvr_check_wait "the failed VM is Halted, previous-run-strategy Always, replaced-by the replacement" \
  30 kvr_halted_for "$ns" vm-001 Always
vmi_gone() { ! kubectl get vmi -n "$1" "$2" >/dev/null 2>&1; }
kvr_check_wait "the original runs no more (no VMI vm-001)" 30 vmi_gone "$ns" vm-001
kvr_check_wait "the replacement's VMI runs" 60 kvr__vmi_running "$ns" "$rname"

# The policy's status.
recovered_status() {
  kvr_status "$ns" paper | t_jq --arg uid "$uid" --arg r "$rname" --arg t "$tmpl" '
    .recoveries == 1 and (.recent | length) == 1 and .recent[0].failedVM == "vm-001"
    and .recent[0].failedUID == $uid and .recent[0].replacement == $r
    and .recent[0].template == $t and .recent[0].decision == "Recovered"
    and ((.recent[0].score - 0.6667) | fabs) < 0.0001
    and (.recent[0].time | test("^[0-9]{4}-"))
    and (.lastRecovery | test("^[0-9]{4}-"))' >/dev/null
}
kvr_check_wait "status: recoveries 1, recent[0] = vm-001 -> replacement, template, score, Recovered" \
  15 recovered_status
recovered_status || t_note "status: $(kvr_status "$ns" paper)"
kvr_check_eq "status: Ready stays True" "$(kvr_ready "$ns" paper)" True

# Events on the policy and on the VMI.
kvr_check_wait "Event Recovered on the RecoveryPolicy" 15 \
  kvr_has_event "$ns" Recovered RecoveryPolicy paper
vm_event() {
  kvr_has_event "$1" "$2" VirtualMachine "$3" || kvr_has_event "$1" "$2" VirtualMachineInstance "$3"
}
kvr_check_wait "Event Recovered on the failed VM (or its VMI)" 15 vm_event "$ns" Recovered vm-001
msg=$(kubectl get events -n "$ns" -o json |
      jq -r '[.items[] | select(.reason == "Recovered" and
                                .involvedObject.kind == "RecoveryPolicy")][0].message // ""')
if [ -n "$rname" ] && grep -qF -- "$rname" <<<"$msg"; then
  t_pass "the Event names the replacement"
else t_fail "the Event names the replacement" "message: '$msg'"; fi
etype=$(kubectl get events -n "$ns" -o json |
        jq -r '[.items[] | select(.reason == "Recovered")][0].type // ""')
kvr_check_eq "Recovered is a Normal Event" "$etype" Normal

# The decision log line.
line=$(ctl_decisions_about main "$ns" vm-001 | head -n 1)
kvr_check_json "one JSON decision line with the facts" "${line:-null}" "
  .policy == \"$ns/paper\" and .uid == \"$uid\" and .decision == \"Recovered\"
  and .selected == \"$tmpl\" and .replacement == \"$rname\"
  and ((.score | tonumber) - 0.6667 | fabs) < 0.0001 and (.latency_ms | tonumber) >= 0"
kvr_check_eq "one decision line for that failure" \
  "$(ctl_decisions_about main "$ns" vm-001 | grep -c .)" 1

# kubectl get rp shows it.
rp_col() { # the column named $1 of `kubectl get rp -n $ns paper` (cells may be
  # empty: cut at the header's offsets, where kubectl aligns each column)
  kubectl get rp -n "$ns" paper 2>&1 | awk -v c="$1" '
    NR == 1 { h = $0; i = index(h, c); rest = substr(h, i + length(c));
              match(rest, /^ +/); w = length(c) + RLENGTH; if (rest !~ /[^ ]/) w = 1000; next }
    { v = substr($0, i, w); gsub(/ /, "", v); print v }'
}
kvr_check_eq "kubectl get rp shows RECOVERIES 1, LAST, READY True" \
  "$(rp_col RECOVERIES) $(rp_col LAST | grep -cE '^[0-9]+[smh]') $(rp_col READY)" "1 1 True"

# ---- a second failure ------------------------------------------------------
uid2=$(kvr_vmi_uid "$ns" vm-002)
kvr_vmi_fail "$ns" vm-002
kvr_check_wait "VM-002's guest crashes -> a replacement" 30 kvr_has_replacement "$ns" vm-002
r2=$(kvr_replacements "$ns" vm-002 | head -n 1)
kvr_check_wait "VM-002 is halted for it" 30 kvr_halted_for "$ns" vm-002 Always
kvr_check_eq "only the failed VMs are halted (vm-003, vm-004, vm-005 still Always)" \
  "$(kvr_run_strategy "$ns" vm-003)/$(kvr_run_strategy "$ns" vm-004)/$(kvr_run_strategy "$ns" vm-005)" \
  Always/Always/Always
kvr_check_eq "the replacement itself is not halted" "$(kvr_run_strategy "$ns" "$r2")" Always
kvr_check_json "its failed-uid is VM-002's crashed VMI" "$(kvr_vm_json "$ns" "$r2")" \
  ".metadata.annotations[\"kvrecover.io/failed-uid\"] == \"$uid2\""
recent_q='[.status.recoveries, .status.recent[].failedVM] | map(tostring) | join(",")'
if ! t_wait 15 status_is "$ns" paper "$recent_q" '"2,vm-002,vm-001"'; then
  t_fail "status: recoveries 2, newest first" \
    "after 15 s: $(kvr_status "$ns" paper "$recent_q"); recent: $(kvr_status "$ns" paper .status.recent)"
  ctl_dump main 80
else t_pass "status: recoveries 2, newest first"; fi
kvr_check_eq "exactly one replacement for vm-001 still" "$(kvr_count_replacements "$ns" vm-001)" 1

# ---- spec capture -------------------------------------------------------------
# The VMs and the policy, no pool: the controller builds it.
cap=$(t_ns capture) || { t_fail "namespace" "cannot create one"; t_summary; }
kubectl apply -n "$cap" -f "$(t_root)/examples/paper/vms.yaml" >/dev/null
kvr_policy "$cap" paper "$(kvr_paper_spec)"
for vm in "${vms[@]}"; do kvr_vmi_start "$cap" "$vm"; done

captured() { # NS VM: the name of the captured ConfigMap for VM
  kubectl get cm -n "$1" -l "kvrecover.io/pool=paper,kvrecover.io/vm=$2" \
    -o jsonpath='{.items[0].metadata.name}' 2>/dev/null
}
all_captured() {
  local vm
  for vm in "${vms[@]}"; do [ -n "$(captured "$cap" "$vm")" ] || return 1; done
}
kvr_check_wait "capture: a pool ConfigMap appears for each protected VM" 30 all_captured
for vm in "${vms[@]}"; do
  name=$(captured "$cap" "$vm")
  cm=$(kubectl get cm -n "$cap" "$name" -o json 2>/dev/null || echo '{}')
  kvr_check_json "capture $vm: labels kvrecover.io/pool=paper, kvrecover.io/vm=$vm, no owner" "$cm" \
    ".metadata.labels[\"kvrecover.io/pool\"] == \"paper\" and
     .metadata.labels[\"kvrecover.io/vm\"] == \"$vm\" and
     ((.metadata.ownerReferences // []) | length) == 0"
  # Every value of the VM's features annotation is in data.features.
  feats=$(kubectl get vm -n "$cap" "$vm" \
            -o jsonpath='{.spec.template.metadata.annotations.kvrecover\.io/features}')
  data=$(jq -r '.data.features // ""' <<<"$cm")
  ok=1
  for word in $(tr '{}[],:' '      ' <<<"$feats"); do
    case "$word" in os|language|database|webserver) continue ;; esac
    grep -qiF -- "$word" <<<"$data" || { ok=0; break; }
  done
  if [ "$ok" = 1 ] && [ -n "$data" ]; then t_pass "capture $vm: data.features holds its features"
  else t_fail "capture $vm: data.features holds its features" "want $feats, got: $data"; fi
  res=$(jq -r '.data.resources // ""' <<<"$cm")
  if grep -q cpu <<<"$res" && grep -q memory <<<"$res"; then
    t_pass "capture $vm: data.resources holds cpu and memory"
  else t_fail "capture $vm: data.resources holds cpu and memory" "got: $res"; fi
  vmdata=$(jq -r '.data.vm // ""' <<<"$cm")
  if grep -qE 'kind"?: *"?VirtualMachine' <<<"$vmdata" && grep -qF "$vm" <<<"$vmdata" &&
     ! grep -qE '(resourceVersion|creationTimestamp|managedFields|(^|[[:space:]{,"])uid"?:|"?generation"?:|(^|[[:space:]{,"])status"?:|kubevirt.io/latest-observed-api-version|kubevirt.io/storage-observed-api-version)' <<<"$vmdata"
  then t_pass "capture $vm: data.vm is a clean VirtualMachine (no status, uid, resourceVersion...)"
  else t_fail "capture $vm: data.vm is a clean VirtualMachine" "$(head -c 400 <<<"$vmdata")"; fi
  # ...that KubeVirt's schema accepts as a new VM (YAML to JSON by kubectl).
  if [ -n "$vmdata" ] &&
     kubectl create --dry-run=client -o json -f - <<<"$vmdata" 2>/dev/null |
     jq ".metadata.name = \"copy-of-$vm\" | del(.metadata.namespace)" |
     kubectl create -n "$cap" --dry-run=server --validate=strict -f - >/dev/null 2>&1; then
    t_pass "capture $vm: data.vm passes KubeVirt's schema (server dry-run, strict)"
  else t_fail "capture $vm: data.vm passes KubeVirt's schema (server dry-run, strict)" "refused"; fi
done
rvs() { kubectl get cm -n "$cap" -l kvrecover.io/vm -o jsonpath='{.items[*].metadata.resourceVersion}'; }
sleep 2 # the first writes settle
before=$(rvs); sleep 5
kvr_check_eq "capture writes only on change (resourceVersions unchanged over 5 s)" "$(rvs)" "$before"
# A changed VM is captured again.
kubectl patch vm -n "$cap" vm-003 --type merge -p \
  '{"spec":{"template":{"metadata":{"annotations":{"kvrecover.io/features":"{os: ubuntu-20.04, database: postgresql, cache: redis}"}}}}}' \
  >/dev/null
has_redis() {
  kubectl get cm -n "$cap" "$(captured "$cap" vm-003)" -o jsonpath='{.data.features}' |
    grep -q redis
}
kvr_check_wait "capture follows a changed VM (vm-003 gains cache: redis)" 30 has_redis
# The ConfigMaps outlive their VM.
gone=$(captured "$cap" vm-004)
kubectl delete vm -n "$cap" vm-004 --wait=true >/dev/null
sleep 3
if [ -n "$gone" ] && kubectl get cm -n "$cap" "$gone" >/dev/null 2>&1; then
  t_pass "capture: the ConfigMap outlives the deleted VM"
else t_fail "capture: the ConfigMap outlives the deleted VM" "ConfigMap '$gone' is gone"; fi
# A recovery from the captured pool alone.
kvr_vmi_fail "$cap" vm-001
kvr_check_wait "capture: VM-001 fails -> replaced from the captured pool" 30 \
  kvr_has_replacement "$cap" vm-001
r=$(kvr_vm_json "$cap" "$(kvr_replacements "$cap" vm-001 | head -n 1)")
kvr_check_json "capture: built from vm-005's captured member, score 0.6667" "${r:-null}" \
  ".metadata.labels[\"kvrecover.io/template\"] == \"$(captured "$cap" vm-005)\" and
   .metadata.annotations[\"kvrecover.io/score\"] == \"0.6667\""

# A VMI without the features annotation (an admin removed it from the
# running instance): its features come from the VM's captured entry (or its
# VM), so it still ranks vm-005 at 0.6667 rather than scoring nothing.
kubectl annotate vmi -n "$cap" vm-002 kvrecover.io/features- >/dev/null
kvr_vmi_fail "$cap" vm-002
kvr_check_wait "a VMI without features: VM-002 fails -> replaced" 30 kvr_has_replacement "$cap" vm-002
# vm-001's replacement is a protected VM too, captured with vm-005's
# features: it ties with vm-005 at 0.6667 and wins on name. Either is right.
r=$(kvr_vm_json "$cap" "$(kvr_replacements "$cap" vm-002 | head -n 1)")
tmpl=$(jq -r '.metadata.labels["kvrecover.io/template"] // ""' <<<"${r:-{\}}")
feats_of() { kubectl get cm -n "$cap" "$1" -o jsonpath='{.data.features}' 2>/dev/null; }
if [ -n "$tmpl" ] && [ "$(feats_of "$tmpl")" = "$(feats_of "$(captured "$cap" vm-005)")" ] &&
   jq -e '.metadata.annotations["kvrecover.io/score"] == "0.6667"' >/dev/null <<<"${r:-null}"; then
  t_pass "a VMI without features is ranked with its VM's captured features (vm-005's set, 0.6667)"
else
  t_fail "a VMI without features is ranked with its VM's captured features (vm-005's set, 0.6667)" \
    "template '$tmpl' (features: $(feats_of "$tmpl" | tr '\n' ' ')), score $(jq -r '.metadata.annotations["kvrecover.io/score"]' <<<"${r:-null}")"
fi

# capture: false keeps the controller's hands off the ConfigMaps.
off=$(t_ns nocapture) || { t_fail "namespace" "cannot create one"; t_summary; }
kubectl apply -n "$off" -f "$(t_root)/examples/paper/vms.yaml" >/dev/null
kvr_policy "$off" paper "$(kvr_paper_spec '{"capture": false}')"
for vm in "${vms[@]}"; do kvr_vmi_start "$off" "$vm"; done
kvr_check_wait "capture: false: the policy is Ready" 30 kvr_ready_current "$off" paper True
sleep 3
kvr_check_eq "capture: false: no ConfigMap is written" \
  "$(kubectl get cm -n "$off" -l kvrecover.io/pool -o name | grep -c .)" 0

ctl_stop main 20; rc=$?
kvr_check_eq "SIGTERM: the controller exits 0 within 20 s" "$rc" 0

t_summary
