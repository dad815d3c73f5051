#!/usr/bin/env bash
# A policy acts only inside its own namespace (CONTRACT.md, issue 5): the
# controller watches every namespace, yet policy "paper" in namespace a
#   - never recovers a failing VMI of namespace b, although it matches a's
#     selector (app: paper);
#   - never reads b's pool, although b holds a member scoring 1.0 under the
#     same pool label;
#   - never writes in b (no VM, no captured ConfigMap, no Event);
# and a policy in b never reads a's pool either.
# Only VirtualMachines are created (KubeVirt makes their VMIs); a failure is
# a guest crash (tests/cluster/guest), acted on at once
# (`trigger: {immediate: true}`, the paper's behaviour).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
ctl_test_setup
a=$(t_ns iso-a) && b=$(t_ns iso-b) || { t_fail "namespaces" "cannot create them"; t_summary; }

# a: the paper's case (capture on, as in the example), acting on the first
# failure.
kvr_paper "$a" - && kvr_policy "$a" paper "$(kvr_paper_spec)" ||
  { t_fail "apply examples/paper in a" "kubectl failed"; t_summary; }
# b: VMs matching a's selector and a perfect twin of vm-001 under a's pool
# label, but no policy (yet).
kvr_vm "$b" vm-001 "{os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}" &&
kvr_vm "$b" vm-002 "{os: ubuntu-20.04, language: nodejs, database: postgresql, webserver: apache}" &&
kvr_member "$b" b-perfect paper \
  $'os: ubuntu-20.04\nlanguage: nodejs\ndatabase: mysql\nwebserver: nginx' ||
  { t_fail "set up namespace b" "kubectl failed"; t_summary; }
for vm in vm-001 vm-002 vm-003 vm-004 vm-005; do kvr_vmi_start "$a" "$vm"; done
kvr_vmi_start "$b" vm-001 && kvr_vmi_start "$b" vm-002
# kube-root-ca.crt is left out: kube-controller-manager publishes it into
# every namespace, at a moment of its own choosing.
b_cms() {
  kubectl get cm -n "$b" --field-selector metadata.name!=kube-root-ca.crt \
    -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}'
}
b_cms_before=$(b_cms)

kvr_start_or_give_up main --leader-elect=false

kvr_check_wait "a's policy is Ready" 30 kvr_ready_current "$a" paper True
a_pool() { kubectl get cm -n "$a" -l kvrecover.io/pool=paper -o name | grep -c .; }
pool_is_a() { [ "$(kvr_status "$a" paper .status.poolSize)" = "$(a_pool)" ]; }
kvr_check_wait "a's poolSize counts a's members only, not b's" 30 pool_is_a
kvr_check_eq "a's protected count ignores b's matching VMs" "$(kvr_status "$a" paper .status.protected)" 5

# b's VMI matches a's selector; it fails first, then a's: a's is recovered
# inside a, from a's pool, ignoring b's 1.0 twin; nobody acts on b's.
b_uid=$(kvr_vmi_uid "$b" vm-001)
kvr_vmi_fail "$b" vm-001
kvr_vmi_fail "$a" vm-001
kvr_check_wait "a's failing VMI is recovered" 30 kvr_has_replacement "$a" vm-001
kvr_check_wait "KubeVirt restarts b's vm-001 (a new VMI runs)" 60 kvr_vmi_restarted "$b" vm-001 "$b_uid"
sleep 2
for_b_uid() { # VMs in a and b made for b's failed VMI (kvrecover.io/failed-uid)
  for n in "$a" "$b"; do kubectl get vm -n "$n" -o json; done |
    jq -s --arg u "$b_uid" '[.[].items[] | select(.metadata.annotations["kvrecover.io/failed-uid"] == $u)] | length'
}
kvr_check_eq "b's failing VMI is not recovered by a's policy (no VM names its uid)" "$(for_b_uid)" 0
kvr_check_eq "no decision is logged for b's VMI" "$(ctl_decisions_about main "$b" vm-001 | grep -c .)" 0
kvr_check_eq "b's vm-001 is not halted" "$(kvr_run_strategy "$b" vm-001)" Always
kvr_check_eq "no Event is written in b" "$(kubectl get events -n "$b" -o json |
  jq '[.items[] | select((.reason | IN("Recovered", "NoEligibleCandidate", "DryRun", "Halted",
                                      "InvalidPolicy", "InvalidPoolMember")) or
                         ((.source.component // .reportingComponent // "") | test("kvrecover")))]
      | length')" 0
kvr_check_eq "the only replacement is in a" "$(kvr_replacements_in "$a $b" vm-001)" \
  "$a/$(kvr_replacements "$a" vm-001 | head -n 1)"
r=$(kvr_vm_json "$a" "$(kvr_replacements "$a" vm-001 | head -n 1)")
tmpl=$(jq -r '.metadata.labels["kvrecover.io/template"] // ""' <<<"${r:-{\}}")
kvr_check_eq "built from a's vm-005 member (b's b-perfect is never read)" \
  "$(kubectl get cm -n "$a" "$tmpl" -o jsonpath='{.metadata.labels.kvrecover\.io/vm}' 2>/dev/null)" vm-005
kvr_check_json "with score 0.6667, not b-perfect's 1.0" "${r:-null}" \
  '.metadata.annotations["kvrecover.io/score"] == "0.6667"'
kvr_check_eq "nothing is created in b" "$(kubectl get vm -n "$b" -o name | grep -c .)" 2
kvr_check_eq "b's ConfigMaps are untouched (no capture into b, no rewrite)" "$(b_cms)" "$b_cms_before"

# b's own policy reads only b's pool: vm-002's best member in b scores
# 0.3333 (b-perfect); a's vm-005 would score 0.6667 but is not b's.
kvr_policy "$b" other "$(kvr_paper_spec '{"capture": false}')"
kvr_check_wait "b's policy is Ready" 30 kvr_ready_current "$b" other True
kvr_vmi_fail "$b" vm-002
kvr_check_wait "b's vm-002 fails -> NoEligibleCandidate in b (a's pool is not read)" 30 \
  kvr_has_event "$b" NoEligibleCandidate RecoveryPolicy other
kvr_check_eq "and nothing is created for it in a or b" "$(kvr_replacements_in "$a $b" vm-002 | grep -c .)" 0
kvr_check_eq "a's policy made no decision about b's VMs" \
  "$(ctl_decisions_about main "$b" | jq -c "select(.policy == \"$a/paper\")" | grep -c .)" 0
kvr_check_eq "b's policy made no decision about a's VMs" \
  "$(ctl_decisions_about main "$a" | jq -c "select(.policy == \"$b/other\")" | grep -c .)" 0
kvr_check_eq "every replacement in a belongs to a's policy" \
  "$(kubectl get vm -n "$a" -l kvrecover.io/policy -o jsonpath='{.items[*].metadata.labels.kvrecover\.io/policy}' | tr ' ' '\n' | sort -u)" paper
kvr_check_eq "a's Events are about a's objects only" \
  "$(kubectl get events -n "$a" -o json | jq --arg b "$b" '[.items[] | select(.involvedObject.namespace == $b)] | length')" 0

# --policy-selector: every controller of these scripts serves only the
# policies labelled CTL_POLICY_LABEL (scripts share the cluster). c's
# policy lacks the label: its failing VM is KubeVirt's alone, nothing of c
# is written; labelled, the same policy is served.
c=$(t_ns iso-c) || { t_fail "namespace c" "cannot create it"; t_summary; }
kvr_vm "$c" vm-001 "{os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}" &&
kvr_member "$c" c-twin paper \
  $'os: ubuntu-20.04\nlanguage: nodejs\ndatabase: mysql\nwebserver: nginx' &&
CTL_POLICY_LABEL= kvr_policy "$c" unserved "$(kvr_paper_spec '{"capture": false}')" ||
  { t_fail "set up namespace c" "kubectl failed"; t_summary; }
kvr_vmi_start "$c" vm-001
c_uid=$(kvr_vmi_uid "$c" vm-001)
kvr_vmi_fail "$c" vm-001
kvr_check_wait "unlabelled: KubeVirt restarts c's vm-001 (a new VMI runs)" 60 \
  kvr_vmi_restarted "$c" vm-001 "$c_uid"
sleep 3
kvr_check_eq "unlabelled: no replacement, vm-001 not halted, no status, no decision" \
  "$(kvr_replacements_in "$c" vm-001 | grep -c .)/$(kvr_run_strategy "$c" vm-001)/$(
    kvr_status "$c" unserved '.status // {} | length')/$(ctl_decisions_about main "$c" | grep -c .)" \
  "0/Always/0/0"
kubectl label rp -n "$c" unserved "$CTL_POLICY_LABEL" >/dev/null
kvr_check_wait "labelled: the same policy is served (Ready)" 30 kvr_ready_current "$c" unserved True

t_summary
