#!/usr/bin/env bash
# Hostile tenants (issue 12, items 1 and 2), on the real-KubeVirt cluster:
#
#  1. The string bomb: a 300 KB pool ConfigMap whose data.vm anchors one
#     100 KB string and aliases it 38,000 times (3.8 GB expanded), applied in
#     a namespace with a policy and in one without, while the controller runs
#     under a memory limit like a 128Mi pod's. It stays the same process, the
#     bomb is reported (Event, Ready's message, log line: ConfigMap and
#     field), and another namespace's policy still recovers a failed VM.
#  2. The fat annotation: a VM whose template carries a 100 KB
#     kvrecover.io/features (KubeVirt copies it to the VMI; the API server's
#     limit is 256 KB in all, so nobody refuses it before us). Its failure
#     is refused with the VM and the field named; nothing is halted or made.
#  3. The confused deputy: writes for a policy are made as its
#     spec.serviceAccountName, so the API server judges the tenant's
#     identity: without the tenant's create right the incident is Blocked
#     Forbidden (although the controller itself may create VMs there), and
#     an admission policy that refuses VMs tolerating every taint to the
#     namespace's own ServiceAccounts refuses the best member for the
#     tenant, so the next one is used. With --default-service-account, a
#     policy naming no ServiceAccount writes nothing as the controller.
#
# Who wrote what: the API server records no user in managedFields (the
# manager is the client's field manager or User-Agent, "kvrecover" either
# way) and this cluster keeps no audit log, so identity is judged where the
# API server itself sees it, at admission: a ValidatingAdmissionPolicy bound
# to this script's namespaces refuses every VirtualMachine and ConfigMap
# write whose request.userInfo.username is the controller's. Each
# replacement that exists there was therefore written by someone else.
#
# Every check names, in a comment, what a controller without the protection
# would make fail. Only VirtualMachines are created (KubeVirt makes the
# VMIs); guests fail through tests/cluster/guest.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
if ! t_local_cluster; then
  t_skip "hostile input" "not a cluster from tests/cluster/up (no guest script, no user certificates)"
  t_summary
fi
ctl_test_setup
bomb=$(t_ns hbomb) && nopol=$(t_ns hnopol) && work=$(t_ns hwork) && dep=$(t_ns hdep) ||
  { t_fail "namespaces" "cannot create them"; t_summary; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvr-hostile.XXXXXX")
t_cleanup_add rm -rf "$tmp"
id=${work#hwork-}

# jq_true [JQ-ARGS...] FILTER: FILTER is true for the JSON on stdin. Not
# `jq -e`: jq 1.6 exits 0 on empty input, so a failed kubectl would pass.
jq_true() {
  local f=${*: -1}
  jq -en "${@:1:$#-1}" "input | ($f)" >/dev/null 2>&1
}

# ---- the hostile inputs (tests/fixtures/hostile.py, as bench/README.md) -----
python3 "$(t_root)/tests/fixtures/hostile.py" "$tmp" ||
  { t_fail "generate the hostile inputs" "tests/fixtures/hostile.py failed"; t_summary; }
# The fat annotation's text, 100,000 bytes: 1,000 values of 90 bytes,
# anchored, and 795 categories aliasing them (hostile.py's fat_annotation()).
fat=$(python3 - "$(t_root)/tests/fixtures" "$tmp/fat-annotation.yaml" <<'EOF'
import sys
t = open(sys.argv[2]).read()
key = "kvrecover.io/features: '"
s = t.index(key) + len(key)
sys.stdout.write(t[s:t.index("'\nspec:", s)])
EOF
) || { t_fail "read the fat annotation" "python3 failed"; t_summary; }
kvr_check_eq "precondition: the fat annotation is 100,000 bytes" "${#fat}" 100000

# ---- the namespaces ---------------------------------------------------------
# bomb:  the paper's pool and a policy (no ServiceAccount: --default-service-account)
# nopol: nothing but the bomb, a policy only at the end
# work:  the paper's pool, the tenant's grant (manifests/tenant/), a policy
#        without a ServiceAccount, capture on (capture writes too); VMs w-001
#        (vm-001's features; fails, must be replaced), fat (the fat
#        annotation) and w-ok (vm-002's features, never fails: with three
#        protected VMs, two down are within the default stormLimit of 50 %)
# dep:   a policy with serviceAccountName tenant-sa, the paper's pool plus
#        "grabby", a perfect twin of vm-001 whose VM tolerates every taint
feat1="{os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}"
feat2="{os: ubuntu-20.04, language: nodejs, database: postgresql, webserver: apache}"
kvr_paper_pool "$bomb" && kvr_policy "$bomb" paper "$(kvr_paper_spec '{"capture": false}')" &&
  kvr_paper_pool "$work" && kvr_paper_pool "$dep" &&
  kubectl apply -n "$work" -k "$(t_root)/manifests/tenant/" >/dev/null ||
  { t_fail "set up the namespaces" "kubectl failed"; t_summary; }

# dep: tenant-sa may read VMs, not create them (yet); the controller may act
# as tenant-sa and as no one else (the namespaced impersonate grant).
kubectl apply -n "$dep" -f - >/dev/null <<EOF || { t_fail "dep's RBAC" "kubectl failed"; t_summary; }
apiVersion: v1
kind: ServiceAccount
metadata: {name: tenant-sa}
automountServiceAccountToken: false
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: checker}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: tenant-vms}
rules:
- {apiGroups: [kubevirt.io], resources: [virtualmachines], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: tenant-vms}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant-vms}
subjects: [{kind: ServiceAccount, name: tenant-sa}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: checker}
rules:
- {apiGroups: [kubevirt.io], resources: [virtualmachines], verbs: [get, create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: checker}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: checker}
subjects: [{kind: ServiceAccount, name: checker}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: kvrecover-impersonate}
rules:
- {apiGroups: [""], resources: [serviceaccounts], resourceNames: [tenant-sa], verbs: [impersonate]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: kvrecover-impersonate}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: kvrecover-impersonate}
subjects: [{kind: ServiceAccount, name: kvrecover-controller, namespace: kvrecover-system}]
EOF

# grabby: vm-001's features (scores 1.0 for vm-001, above vm-005's 0.6667),
# and a VM that tolerates every taint: it would run on any node, control
# plane included. Written by whoever may write ConfigMaps in dep.
grabby_vm() { # NAME
  jq -n --arg name "$1" '{
    apiVersion: "kubevirt.io/v1", kind: "VirtualMachine",
    metadata: {name: $name, labels: {app: "paper"}},
    spec: {runStrategy: "Always", template: {metadata: {labels: {app: "paper"}},
      spec: {tolerations: [{operator: "Exists"}],
             domain: {cpu: {cores: 2}, memory: {guest: "128Mi"},
                      devices: {disks: [{name: "rootdisk", disk: {bus: "virtio"}}]}},
             volumes: [{name: "rootdisk",
                        containerDisk: {image: "quay.io/containerdisks/ubuntu:20.04"}}]}}}}'
}
jq -n --arg ns "$dep" --arg vm "$(grabby_vm grabby)" '{
  apiVersion: "v1", kind: "ConfigMap",
  metadata: {name: "grabby", namespace: $ns, labels: {"kvrecover.io/pool": "paper"}},
  data: {features: "os: ubuntu-20.04\nlanguage: nodejs\ndatabase: mysql\nwebserver: nginx\n",
         vm: $vm}}' | kubectl create -f - >/dev/null ||
  { t_fail "the grabby member" "kubectl failed"; t_summary; }

# The admission policies, bound to this script's namespaces only.
#  not-as-controller: no VirtualMachine or ConfigMap of work or dep is written
#    as the controller's own identity ($CTL_SA_USER).
#  no-tolerate-all: a namespace's own ServiceAccounts (group
#    system:serviceaccounts:NS: its automation, and tenant-sa) may not create
#    a VM that tolerates every taint. An admission rule keyed on the
#    requester, as cluster admins write them; the controller, a
#    ServiceAccount of kvrecover-system, is not in that group.
vap=kvr-e2e-hostile-$id
vap_binding() { # POLICY "NS, NS...": POLICY denies in those namespaces
  cat <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: $1}
spec:
  policyName: $1
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchExpressions:
      - {key: kubernetes.io/metadata.name, operator: In, values: [$2]}
EOF
}
kubectl apply -f - >/dev/null <<EOF || { t_fail "the admission policies" "kubectl failed"; t_summary; }
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: $vap-not-as-controller}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [kubevirt.io], apiVersions: ["*"], operations: [CREATE, UPDATE], resources: [virtualmachines]}
    - {apiGroups: [""], apiVersions: ["*"], operations: [CREATE, UPDATE], resources: [configmaps]}
  validations:
  - expression: "request.userInfo.username != '$CTL_SA_USER'"
    messageExpression: "'hostile-e2e: written as ' + request.userInfo.username"
    reason: Forbidden
---
$(vap_binding "$vap-not-as-controller" "$work, $dep")
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: $vap-no-tolerate-all}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [kubevirt.io], apiVersions: ["*"], operations: [CREATE, UPDATE], resources: [virtualmachines]}
  matchConditions:
  - name: the-namespaces-own-serviceaccounts
    expression: "request.userInfo.groups.exists(g, g == 'system:serviceaccounts:' + request.namespace)"
  validations:
  - expression: >-
      !has(object.spec.template.spec.tolerations) ||
      !object.spec.template.spec.tolerations.exists(t,
        has(t.operator) && t.operator == 'Exists' && (!has(t.key) || t.key == ''))
    message: "hostile-e2e: a VirtualMachine that tolerates every taint is not for this namespace's ServiceAccounts"
---
$(vap_binding "$vap-no-tolerate-all" "$dep")
EOF
t_cleanup_add kubectl delete validatingadmissionpolicybinding "$vap-not-as-controller" "$vap-no-tolerate-all" --ignore-not-found
t_cleanup_add kubectl delete validatingadmissionpolicy "$vap-not-as-controller" "$vap-no-tolerate-all" --ignore-not-found

# A dry-run create of VM NAME (grabby's spec) in NS, as USER (kubectl --as;
# an admin impersonating a ServiceAccount gets its groups too): prints the
# API server's answer.
dry_create_as() { # NS NAME USER
  grabby_vm "$2" | kubectl create -n "$1" --as="$3" --dry-run=server -f - 2>&1
}
as_ctl_refused() { dry_create_as "$work" probe "$CTL_SA_USER" | grep -q 'hostile-e2e: written as'; }
# Both admission policies must bite, or the identity checks below prove
# nothing: the controller itself may create VMs in work and dep (RBAC,
# kvrecover-controller-as-itself), and is refused there by admission only.
kvr_check_eq "precondition: RBAC lets the controller itself create VMs in dep" \
  "$(kubectl auth can-i create virtualmachines.kubevirt.io -n "$dep" --as="$CTL_SA_USER")" yes
kvr_check_wait "precondition: a write as the controller itself is refused in work (admission)" 30 as_ctl_refused
checker_refused() {
  dry_create_as "$dep" probe "system:serviceaccount:$dep:checker" | grep -q 'tolerates every taint'
}
kvr_check_wait "precondition: a tolerate-all VM is refused to dep's own ServiceAccounts" 30 checker_refused
if out=$(grabby_vm probe | kubectl create -n "$dep" --dry-run=server -f - 2>&1); then
  t_pass "precondition: ... and admitted for others (the admin)"
else t_fail "precondition: ... and admitted for others (the admin)" "$out"; fi

# ---- the VMs ---------------------------------------------------------------
kvr_vm "$work" w-001 "$feat1" && kvr_vm "$work" fat "$fat" && kvr_vm "$work" w-ok "$feat2" &&
  kvr_vm "$dep" vm-001 "$feat1" ||
  { t_fail "create the VMs" "kubectl failed"; t_summary; }
# w-001 and vm-001: Manual once running (KubeVirt will not restart a failed
# one: the failure stays for the controller however late it acts). fat and
# w-ok: Always.
kvr_vm_manual "$work" w-001 && kvr_vm_manual "$dep" vm-001 && kvr_vmi_start "$work" fat &&
  kvr_vmi_start "$work" w-ok ||
  t_fail "the VMs run" "no Running VMI"
vmi_fat() { kubectl get vmi -n "$work" fat -o json | jq -r '.metadata.annotations["kvrecover.io/features"] | length'; }
kvr_check_eq "KubeVirt copies the 100 KB annotation to fat's VMI (nothing refuses it before us)" \
  "$(vmi_fat)" 100000
kvr_policy "$work" paper "$(kvr_paper_spec)" &&
  kvr_policy "$dep" paper "$(kvr_paper_spec '{"capture": false, "serviceAccountName": "tenant-sa"}')" ||
  { t_fail "the policies" "kubectl failed"; t_summary; }

# ---- the controller, under a pod's memory limit ------------------------------
# The model of a 128Mi pod limit: RLIMIT_AS (prlimit), set on the running
# controller once its caches are synced. A cgroup would be the pod's own
# mechanism, but this machine's memory cgroups (v1) belong to whoever runs
# the tests. A pod's limit counts resident memory; the address space holds
# every resident byte and more (reserved thread stacks and malloc arenas),
# so capping new address space at 128 MiB minus what is resident now is at
# least as strict as the pod: the controller may grow its memory by less
# than that pod would let it. (A flat --as=128Mi would not even start it:
# 15 threads reserve 8 MiB of stack each.) An allocation past the limit
# fails; xmalloc() aborts, as the OOM killer would end it.
kvr_start_or_give_up main --leader-elect=false --default-service-account kvrecover-recoverer
pid=${CTL_PID[main]}
vm_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status"; }
as_bytes=$(( ($(vm_kb VmSize) + (128 << 10) - $(vm_kb VmRSS)) << 10 ))
prlimit --pid "$pid" --as="$as_bytes" ||
  { t_fail "limit the controller's memory" "prlimit failed"; t_summary; }
t_note "controller $pid: VmSize $(vm_kb VmSize) kB, VmRSS $(vm_kb VmRSS) kB; RLIMIT_AS $((as_bytes >> 10)) kB"
kvr_check_eq "the controller runs under its address-space limit" \
  "$(prlimit --pid "$pid" --as --noheadings --raw -o SOFT)" "$as_bytes"
for ns in "$bomb" "$work" "$dep"; do
  kvr_check_wait "$ns's policy is Ready" 30 kvr_ready_current "$ns" paper True
done

# ---- 1. the string bomb --------------------------------------------------------
# kubectl create: apply would copy the 300 KB into a last-applied annotation
# (over the API server's 256 KB).
kubectl create -n "$bomb" -f "$tmp/string-bomb.yaml" >/dev/null &&
  kubectl create -n "$nopol" -f "$tmp/string-bomb.yaml" >/dev/null ||
  { t_fail "apply the string bomb" "kubectl failed"; t_summary; }
# event_msg NS REASON ERE: an Event with that reason whose message matches.
event_msg() {
  kubectl get events -n "$1" -o json 2>/dev/null | jq_true --arg r "$2" --arg m "$3" \
    'any(.items[]; .reason == $r and (.message | test($m)))'
}
bomb_re='ConfigMap string-bomb: data\.vm: aliases are not allowed'
# A controller that expands the aliases never gets here (it allocates
# 3.8 GB: killed by the limit, no Event); one that skips it silently fails
# the three checks below.
kvr_check_wait "bomb (policy): Event InvalidPoolMember names the ConfigMap and data.vm" 60 \
  event_msg "$bomb" InvalidPoolMember "$bomb_re"
ready_names_bomb() {
  kubectl get rp -n "$bomb" paper -o json |
    jq_true --arg m "$bomb_re" '[.status.conditions[]? | select(.type == "Ready")][0]
      | .status == "True" and (.message | test($m))' >/dev/null
}
kvr_check_wait "bomb (policy): Ready stays True, its message names the skipped member" 30 ready_names_bomb
log_names_bomb() { ctl_log_since_start main | grep -F "policy $bomb/paper" | grep -qE "$bomb_re"; }
t_check "bomb (policy): a log line names the namespace, ConfigMap and field" log_names_bomb
kvr_check_eq "bomb (policy): the other five members still count" \
  "$(kvr_status "$bomb" paper .status.poolSize)" 6
# same_process WHEN: the controller started above still runs (no crash, no
# restart); when it does not, nothing else can be checked: the counts so far.
same_process() {
  if ctl_alive main && [ "${CTL_PID[main]}" = "$pid" ]; then
    t_pass "$1 the controller is the same process ($pid)"
  else
    t_fail "$1 the controller is the same process ($pid)" "it exited; nothing else can be checked"
    ctl_dump main 20
    t_summary
  fi
}
sleep 2
# Expanded, either bomb is 3.8 GB: the controller dies (no Event above, and
# these two fail). A controller built to expand them died here, "out of
# memory allocating 100001 bytes", under the limit.
same_process "after both bombs"
kvr_check_eq "it started once (no restart in its log)" \
  "$(ctl_log_since_start main | grep -cE '"msg": ?"started"')" 1
kvr_check_eq "bomb (no policy): nothing is written in its namespace" \
  "$(kubectl get events -n "$nopol" -o json | jq '[.items[] | select((.source.component // .reportingComponent // "") | test("kvrecover"))] | length')" 0
t_note "controller VmHWM after the bombs: $(vm_kb VmHWM) kB (limit: 128 MiB resident)"

# ---- 2. the fat annotation, and another policy recovering ------------------------
fat_uid=$(kvr_vmi_uid "$work" fat)
w_uid=$(kvr_vmi_uid "$work" w-001)
kvr_vmi_fail "$work" fat
kvr_vmi_fail "$work" w-001
fat_re='metadata\.annotations\[kvrecover\.io/features\]: too large: 100000 bytes'
# A controller that parses the annotation (1 GB in the issue) is killed by
# the limit; one that reads a truncated or empty feature set and moves on
# names no field.
kvr_check_wait "fat: the refusal names VM fat and the annotation (Event on the VM)" 60 \
  event_msg "$work" NoEligibleCandidate "^VM fat .*features: $fat_re"
same_process "after the fat annotation"
fat_blocked() {
  kubectl get rp -n "$work" paper -o json 2>/dev/null |
    jq_true 'any(.status.incidents[]?; .vm == "fat" and .state == "Blocked")'
}
kvr_check_wait "fat: its incident is Blocked in the policy's status" 30 fat_blocked
kvr_check_wait "KubeVirt restarts fat (a new VMI)" 60 kvr_vmi_restarted "$work" fat "$fat_uid"
# another namespace's policy (work, w-001) recovers, while bomb holds the
# bomb and fat was refused: a dead or stuck controller fails these.
kvr_check_wait "work: w-001 is replaced" 60 kvr_has_replacement "$work" w-001
kvr_check_wait "work: w-001 is Halted, replaced-by its replacement" 30 kvr_halted_for "$work" w-001 Manual
sleep 3
kvr_check_eq "work: exactly one replacement of w-001" "$(kvr_count_replacements "$work" w-001)" 1
r=$(kvr_vm_json "$work" "$(kvr_replacements "$work" w-001 | head -n 1)")
kvr_check_json "work: built from vm-001 (1.0), for the crashed VMI" "${r:-null}" \
  ".metadata.labels[\"kvrecover.io/template\"] == \"vm-001\" and
   .metadata.annotations[\"kvrecover.io/score\"] == \"1.0000\" and
   .metadata.annotations[\"kvrecover.io/failed-uid\"] == \"$w_uid\""
kvr_check_eq "fat: nothing is made for it" "$(kvr_count_replacements "$work" fat)" 0
kvr_check_eq "fat: it is not halted" "$(kvr_run_strategy "$work" fat)" Always
kvr_check_eq "w-ok: untouched, runs" "$(kvr_run_strategy "$work" w-ok)/$(kvr_vmi_phase "$work" w-ok)" Always/Running
# --default-service-account: work's policy names no ServiceAccount, and the
# admission policy refuses every write there as the controller itself; the
# halt and the create above went through, so neither was the controller's.
# Capture writes too: its ConfigMap for w-001, named after the VM and
# carrying capture's digest (made as kvrecover-recoverer).
captured() {
  kubectl get cm -n "$work" w-001 -o json 2>/dev/null | jq_true '
    .metadata.labels["kvrecover.io/vm"] == "w-001"
    and (.metadata.annotations["kvrecover.io/capture-digest"] // "") != ""'
}
kvr_check_wait "work: capture's ConfigMap for w-001 exists (written as kvrecover-recoverer)" 30 captured
fat_capture_refused() {
  ctl_log_since_start main | grep -F "not capturing VirtualMachine $work/fat" |
    grep -qF 'spec.template.metadata.annotations[kvrecover.io/features]: too large'
}
t_check "fat: capture refuses it too, naming the VM and the field (log)" fat_capture_refused
kvr_check_eq "work: no write was refused as the controller's (its log)" \
  "$(ctl_log_since_start main | grep -c 'hostile-e2e: written as')" 0

# ---- 3. the confused deputy ----------------------------------------------------
d_uid=$(kvr_vmi_uid "$dep" vm-001)
kvr_vmi_fail "$dep" vm-001
tenant_user=system:serviceaccount:$dep:tenant-sa
# A controller writing as itself is allowed by RBAC here: it would not be
# refused by RBAC (the admission policy would refuse it, but with a message
# that names the controller, not tenant-sa).
dep_blocked() {
  kubectl get rp -n "$dep" paper -o json 2>/dev/null | jq_true '
    [.status.conditions[]? | select(.type == "Blocked")][0] as $c
    | $c.status == "True" and ($c.message | test("vm-001: Forbidden"))'
}
kvr_check_wait "dep: Blocked True, vm-001: Forbidden" 60 dep_blocked
dep_blocked || t_note "conditions: $(kvr_status "$dep" paper '.status.conditions')"
tenant_re="User \"$tenant_user\" cannot create resource \"virtualmachines\""
kvr_check_wait "dep: Event RecoveryBlocked: $tenant_user may not create (not the controller)" 15 \
  event_msg "$dep" RecoveryBlocked "$tenant_re"
kvr_check_eq "dep: blocked: nothing created" "$(kvr_count_replacements "$dep" vm-001)" 0
kvr_check_eq "dep: blocked: vm-001 is not halted" "$(kvr_run_strategy "$dep" vm-001)" Manual

# The tenant grants create and patch: the incident goes on within the
# retry backoff's cap (30 s). grabby (1.0) is refused for tenant-sa by
# admission, so vm-005 (0.6667) is next. A controller writing as itself
# would be refused everything here (no replacement) or, without the first
# admission policy, would create grabby's tolerate-all VM.
kubectl apply -n "$dep" -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: tenant-vms}
rules:
- {apiGroups: [kubevirt.io], resources: [virtualmachines], verbs: [get, create, patch]}
EOF
kvr_check_wait "dep: granted, vm-001 is replaced" 60 kvr_has_replacement "$dep" vm-001
kvr_check_wait "dep: vm-001 is Halted, replaced-by it" 30 kvr_halted_for "$dep" vm-001 Manual
kvr_check_wait "dep: grabby is skipped with the admission's refusal (Event InvalidPoolMember)" 15 \
  event_msg "$dep" InvalidPoolMember "grabby.*tolerates every taint"
sleep 3
kvr_check_eq "dep: exactly one replacement" "$(kvr_count_replacements "$dep" vm-001)" 1
r=$(kvr_vm_json "$dep" "$(kvr_replacements "$dep" vm-001 | head -n 1)")
kvr_check_json "dep: built from vm-005 for the crashed VMI, tolerating nothing" "${r:-null}" \
  ".metadata.labels[\"kvrecover.io/template\"] == \"vm-005\" and
   .metadata.annotations[\"kvrecover.io/failed-uid\"] == \"$d_uid\" and
   ((.spec.template.spec.tolerations // []) | length) == 0"
kvr_check_eq "dep: nothing else was created (grabby's VM never exists)" \
  "$(kubectl get vm -n "$dep" -o name | sort | tr '\n' ' ')" \
  "$(printf '%s\n' virtualmachine.kubevirt.io/vm-001 "virtualmachine.kubevirt.io/$(kvr_replacements "$dep" vm-001 | head -n 1)" | sort | tr '\n' ' ')"
kvr_check_json "dep: Blocked is False again" "$(kvr_status "$dep" paper)" \
  '([.conditions[]? | select(.type == "Blocked")][0].status // "False") == "False"'

# ---- the bomb's namespace gets a policy: its first policy reads the pool -----
kvr_paper_pool "$nopol" && kvr_policy "$nopol" paper "$(kvr_paper_spec '{"capture": false}')"
kvr_check_wait "nopol: its first policy reports the bomb (Event InvalidPoolMember)" 60 \
  event_msg "$nopol" InvalidPoolMember "$bomb_re"
same_process "at the end"
t_note "controller VmHWM at the end: $(vm_kb VmHWM) kB"
ctl_stop main 20

t_summary
