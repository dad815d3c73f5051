#!/usr/bin/env bash
# When KubeVirt cannot bring a VM back, and only then (issue 11, CONTRACT.md
# "When kvrecover acts", "The replacement"), on the test cluster's real
# KubeVirt, failures through tests/cluster/guest only:
#   - one guest crash of an Always VM: KubeVirt restarts it, kvrecover never
#     replaces it;
#   - a VM whose every start fails (guest failstart): after
#     crashLoopThreshold start failures the original is Halted (annotations)
#     and exactly one replacement exists, whose VMI runs; the replacement
#     carries neither the member's firmware uuid nor its MAC (compared with
#     what KubeVirt wrote into the member's own VM), its labels are the
#     failed VM's, and a Service selecting the failed VM's template labels
#     selects the replacement's VMI and launcher pod;
#   - a Manual VM whose guest crashes (KubeVirt will not restart it) is
#     replaced at once, and the replacement runs;
#   - two VMs replaced from one member with a dataVolumeTemplate: two
#     distinct DataVolume names, each volume rewritten to its own;
#   - a member whose disk is a plain PVC is never selected (SharedDisk).
# Only VirtualMachines (and pool ConfigMaps, a Service) are created here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
if ! t_local_cluster; then
  t_skip "recovery on KubeVirt" "not a cluster from tests/cluster/up (no guest script)"
  t_summary
fi
ctl_test_setup
ns=$(t_ns kv-recover) || { t_fail "namespace" "cannot create one"; t_summary; }

# vm NAME FEATURES [RUNSTRATEGY=Always] [APP=kv] [EXTRA-SPEC-JSON]: a small
# VM (1 vCPU, 128Mi) labelled app=APP, vm=NAME (its template too), with its
# features (flow YAML) on the template, printed as JSON.
vm() {
  jq -n --arg name "$1" --arg f "$2" --arg rs "${3:-Always}" --arg app "${4:-kv}" \
        --argjson extra "${5:-{\}}" '{
    apiVersion: "kubevirt.io/v1", kind: "VirtualMachine",
    metadata: {name: $name, labels: {app: $app, vm: $name, team: "e2e"}},
    spec: {runStrategy: $rs, template: {
      metadata: {labels: {app: $app, vm: $name}, annotations: {"kvrecover.io/features": $f}},
      spec: ({domain: {cpu: {cores: 1}, memory: {guest: "128Mi"},
                       devices: {interfaces: [{name: "default", masquerade: {}}]}},
              networks: [{name: "default", pod: {}}]} * $extra)}}}'
}
mkvm() { vm "$@" | kubectl create -n "$ns" -f - >/dev/null; }
# member NAME FEATURES-BLOCK-YAML VM-JSON: a pool ConfigMap (pool kv).
member() {
  jq -n --arg name "$1" --arg f "$2" --arg vm "$3" '{
    apiVersion: "v1", kind: "ConfigMap",
    metadata: {name: $name, labels: {"kvrecover.io/pool": "kv"}},
    data: {features: $f, vm: $vm}}' | kubectl apply -n "$ns" -f - >/dev/null
}
jget() { kubectl get "$1" "$2" -n "$ns" -o json 2>/dev/null | jq -r "$3"; }
replaced() { kvr_has_replacement "$ns" "$1"; }
one_replacement() { kvr_replacements "$ns" "$1" | head -n 1; }
vmi_gone() { ! kubectl get vmi -n "$ns" "$1" >/dev/null 2>&1; }
fail_count() { jget vm "$1" '.status.startFailure.consecutiveFailCount // 0'; }
fail_count_at_least() { [ "$(fail_count "$1")" -ge "$2" ]; }

# ---- the pool --------------------------------------------------------------
# web-src runs (unprotected: app=src) so that KubeVirt writes its firmware
# uuid; its member is a copy of that live VM, MAC address included.
mkvm web-src "{app: nginx, tier: web}" Always src \
  '{"domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}, "macAddress": "02:00:00:aa:bb:cc"}]}}}' ||
  { t_fail "create web-src" "kubectl failed"; t_summary; }
kvr_vmi_start "$ns" web-src || t_fail "web-src runs" "no Running VMI"
has_uuid() { [ -n "$(jget vm web-src '.spec.template.spec.domain.firmware.uuid // ""')" ]; }
kvr_check_wait "KubeVirt wrote a firmware uuid into the member's VM" 30 has_uuid
src=$(kvr_vm_json "$ns" web-src | jq -c '{apiVersion, kind, metadata: {name: .metadata.name,
  labels: .metadata.labels}, spec: {runStrategy: .spec.runStrategy, template: .spec.template}}')
src_uuid=$(jq -r '.spec.template.spec.domain.firmware.uuid // ""' <<<"$src")
member web-src $'app: nginx\ntier: web' "$src"
# db-src: its disk is a dataVolumeTemplate (CDI is not installed: such a VM
# cannot run here, only its name and volumes are checked).
member db-src $'app: postgres\ntier: db' "$(vm db-src "{app: postgres, tier: db}" Always src '{
  "domain": {"devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}]}},
  "volumes": [{"name": "root", "dataVolume": {"name": "root"}}]}' |
  jq -c '.spec.dataVolumeTemplates = [{metadata: {name: "root"},
           spec: {source: {blank: {}}, storage: {resources: {requests: {storage: "1Gi"}}}}}]')"
# pvc-src: scores 1.0 for sh-1 but its disk is a PVC it does not own
# (SharedDisk); mysql-any scores 1/3 (weighted Jaccard: app in common, the
# two tiers apart: 0.5 / 1.5), above the policy's threshold 0.3: eligible.
member pvc-src $'app: mysql\ntier: store' "$(vm pvc-src "{app: mysql, tier: store}" Always src '{
  "domain": {"devices": {"disks": [{"name": "data", "disk": {"bus": "virtio"}}]}},
  "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared-data"}}]}')"
member mysql-any $'app: mysql\ntier: other' "$(vm mysql-any "{app: mysql, tier: other}" Always src)"

# ---- the protected VMs and the policy ----------------------------------------
# solo has an eligible member (web-src, 1.0): only the policy's trigger
# keeps it from being replaced.
for v in solo:"{app: nginx, tier: web}" web-1:"{app: nginx, tier: web}" \
         db-1:"{app: postgres, tier: db}" db-2:"{app: postgres, tier: db}" \
         sh-1:"{app: mysql, tier: store}" man-1:"{app: nginx, tier: web}"; do
  mkvm "${v%%:*}" "${v#*:}" || t_fail "create ${v%%:*}" "kubectl failed"
done
kvr_policy "$ns" kv '{"selector": {"matchLabels": {"app": "kv"}},
  "poolSelector": {"matchLabels": {"kvrecover.io/pool": "kv"}},
  "weights": {"app": 0.5, "tier": 0.5}, "threshold": 0.3, "mode": "Jaccard",
  "action": "Recreate", "capture": false, "stormLimit": 10,
  "trigger": {"crashLoopThreshold": 2, "restartTimeoutSeconds": 600, "nodeLossSeconds": 0}}' ||
  { t_fail "create the policy" "kubectl failed"; t_summary; }
for v in solo web-1 db-1 db-2 sh-1 man-1; do
  kvr_vmi_start "$ns" "$v" || t_fail "$v runs" "no Running VMI"
done
kvr_vm_manual "$ns" man-1 || t_fail "man-1 becomes Manual" "kubectl failed"

kvr_start_or_give_up main --leader-elect=false
kvr_check_wait "the policy is Ready" 30 kvr_ready_current "$ns" kv True

# ---- one crash of an Always VM: KubeVirt's to restart ------------------------
solo_uid=$(kvr_vmi_uid "$ns" solo)
kvr_vmi_fail "$ns" solo
kvr_check_wait "solo crashes once: KubeVirt runs it again (new VMI uid)" 60 \
  kvr_vmi_restarted "$ns" solo "$solo_uid"

# ---- a crash loop: halt, then exactly one replacement ------------------------
for v in web-1 db-1 db-2 sh-1; do
  kvr_guest failstart "$ns" "$v" on
  t_cleanup_add "$(t_root)/tests/cluster/guest" "$KUBECONFIG" failstart "$ns" "$v" off
done
for v in db-1 db-2 sh-1 web-1; do kvr_vmi_fail "$ns" "$v"; done # web-1 last: t0 is its crash
t0=$(date +%s)
# Until startFailure reaches 2, web-1 must have no replacement. Replacements
# first, then the count. KubeVirt clears startFailure when the VM is halted,
# so a replacement seen beside a count below 2 is too early only while web-1
# is not halted for it; when it is, the looks missed the moment (a skip).
too_early="" polls=0 max_f=0 missed=0
while :; do
  c=$(kvr_count_replacements "$ns" web-1); f=$(fail_count web-1)
  [ "$f" -gt "$max_f" ] && max_f=$f
  [ "$f" -ge 2 ] && break
  if [ "$c" -gt 0 ]; then
    if kvr_halted_for "$ns" web-1 && [ "$max_f" -ge 1 ]; then missed=1
    else too_early="replaced with startFailure $f"; fi
    break
  fi
  polls=$((polls + 1))
  [ $(($(date +%s) - t0)) -gt 120 ] && { too_early="startFailure never reached 2 (now $f)"; break; }
  sleep 0.2
done
if [ "$missed" = 1 ]; then
  t_skip "no replacement while KubeVirt is still retrying" \
    "the halt cleared startFailure before a look saw 2 (the last look saw $max_f)"
elif [ -z "$too_early" ] && [ "$polls" -gt 0 ]; then
  t_pass "no replacement while KubeVirt is still retrying (startFailure < 2, $polls looks)"
else t_fail "no replacement while KubeVirt is still retrying" "${too_early:-startFailure was 2 at the first look}"; fi
kvr_check_wait "startFailure reaches crashLoopThreshold 2 -> web-1 is replaced" 120 replaced web-1
t_note "web-1 replaced $(($(date +%s) - t0)) s after its first crash"
r=$(one_replacement web-1)
kvr_check_wait "web-1 is Halted, previous-run-strategy Always, replaced-by its replacement" 30 \
  kvr_halted_for "$ns" web-1 Always
kvr_check_wait "the replacement's VMI runs" 60 kvr__vmi_running "$ns" "$r"
stopped() { [ "$(jget vm "$1" '.status.printableStatus // ""')" = Stopped ] && vmi_gone "$1"; }
kvr_check_wait "KubeVirt reports the original Stopped, with no VMI" 60 stopped web-1
rj=$(kvr_vm_json "$ns" "$r")
kvr_check_json "built from web-src's member, score 1.0000, failed-uid set" "${rj:-null}" '
  .metadata.labels["kvrecover.io/template"] == "web-src"
  and .metadata.annotations["kvrecover.io/score"] == "1.0000"
  and (.metadata.annotations["kvrecover.io/failed-uid"] // "") != ""'
r_uuid=$(jq -r '.spec.template.spec.domain.firmware.uuid // ""' <<<"${rj:-{\}}")
if [ -n "$src_uuid" ] && [ "$r_uuid" != "$src_uuid" ]; then
  t_pass "no firmware uuid of the member's VM in the replacement ('$r_uuid' != '$src_uuid')"
else t_fail "no firmware uuid of the member's VM in the replacement" "both '$src_uuid'"; fi
kvr_check_eq "no MAC address of the member in the replacement" \
  "$(jq -r '[.spec.template.spec.domain.devices.interfaces[]?.macAddress // empty] | join(",")' <<<"${rj:-{\}}")" ""
kvr_check_eq "its VMI does not carry the member's MAC either" \
  "$(jget vmi "$r" '[.spec.domain.devices.interfaces[]?.macAddress // empty] | join(",")')" ""
kvr_check_json "its labels are web-1's, plus replaces/policy/template" "${rj:-null}" "
  .metadata.labels == ($(kvr_vm_json "$ns" web-1 | jq -c '.metadata.labels')
    + {\"kvrecover.io/replaces\": \"web-1\", \"kvrecover.io/policy\": \"kv\",
       \"kvrecover.io/template\": \"web-src\"})"
kvr_check_eq "its template's labels are web-1's" "$(jq -cS '.spec.template.metadata.labels' <<<"${rj:-{\}}")" \
  "$(kvr_vm_json "$ns" web-1 | jq -cS '.spec.template.metadata.labels')"
# A Service for web-1, by its template labels: it now selects the replacement.
kubectl create -n "$ns" -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: web-1}
spec:
  selector: {app: kv, vm: web-1}
  ports: [{port: 80}]
EOF
sel=$(kubectl get svc -n "$ns" web-1 -o json | jq -r '.spec.selector | to_entries | map("\(.key)=\(.value)") | join(",")')
kvr_check_eq "the Service's selector selects the replacement's VMI" \
  "$(kubectl get vmi -n "$ns" -l "$sel" -o jsonpath='{.items[*].metadata.name}')" "$r"
kvr_check_eq "and its launcher pod (the Service's endpoint)" \
  "$(kubectl get pods -n "$ns" -l "$sel" --field-selector status.phase=Running -o json |
     jq -r '[.items[].metadata.labels["kubevirt.io/created-by"]] | join(",")')" \
  "$(jget vmi "$r" .metadata.uid)"

# ---- two replacements from one member with a dataVolumeTemplate ---------------
kvr_check_wait "db-1 and db-2 crash-loop -> both replaced" 120 eval 'replaced db-1 && replaced db-2'
d1=$(kvr_vm_json "$ns" "$(one_replacement db-1)")
d2=$(kvr_vm_json "$ns" "$(one_replacement db-2)")
dv_ok() { # JSON REPLACEMENT-NAME: one DV template <name>-root, the volume uses it
  jq -e --arg n "$2" '[.spec.dataVolumeTemplates[]?.metadata.name] == [$n + "-root"]
    and ([.spec.template.spec.volumes[]? | select(.dataVolume) | .dataVolume.name] == [$n + "-root"])
    and .metadata.labels["kvrecover.io/template"] == "db-src"' >/dev/null <<<"$1"
}
if dv_ok "${d1:-null}" "$(one_replacement db-1)" && dv_ok "${d2:-null}" "$(one_replacement db-2)"; then
  t_pass "each replacement from db-src has its own DataVolume <replacement>-root, its volume rewritten"
else t_fail "each replacement from db-src has its own DataVolume <replacement>-root" \
       "$(jq -c '[.metadata.name, .spec.dataVolumeTemplates, .spec.template.spec.volumes]' <<<"${d1:-null}") $(jq -c '[.metadata.name, .spec.dataVolumeTemplates]' <<<"${d2:-null}")"; fi
n1=$(jq -r '.spec.dataVolumeTemplates[0].metadata.name // ""' <<<"${d1:-{\}}")
n2=$(jq -r '.spec.dataVolumeTemplates[0].metadata.name // ""' <<<"${d2:-{\}}")
if [ -n "$n1" ] && [ -n "$n2" ] && [ "$n1" != "$n2" ]; then t_pass "two distinct DataVolume names ($n1, $n2)"
else t_fail "two distinct DataVolume names" "'$n1' and '$n2'"; fi

# ---- a member with a plain PVC: SharedDisk ------------------------------------
kvr_check_wait "sh-1 crash-loops -> replaced" 120 replaced sh-1
kvr_check_eq "not from pvc-src (its PVC is not its own: SharedDisk), from mysql-any" \
  "$(jget vm "$(one_replacement sh-1)" '.metadata.labels["kvrecover.io/template"] // ""')" mysql-any
says_shared() {
  ctl_log_since_start main | grep -F pvc-src | grep -qF SharedDisk ||
    kubectl get events -n "$ns" -o json | t_jq '[.items[].message | select(test("pvc-src.*SharedDisk|SharedDisk.*pvc-src"))] | length > 0' >/dev/null
}
kvr_check_wait "the controller says why pvc-src was refused (SharedDisk, log or Event)" 10 says_shared

# ---- a Manual VM: KubeVirt does not restart it, kvrecover replaces it --------
kvr_vmi_fail "$ns" man-1
kvr_check_wait "man-1 (Manual) crashes -> replaced at once" 30 replaced man-1
kvr_check_wait "man-1 is Halted, previous-run-strategy Manual, replaced-by its replacement" 30 \
  kvr_halted_for "$ns" man-1 Manual
kvr_check_wait "KubeVirt reports man-1 Stopped, with no VMI (its Failed VMI removed)" 60 stopped man-1
kvr_check_wait "man-1's replacement runs" 60 kvr__vmi_running "$ns" "$(one_replacement man-1)"

# ---- exactly once, and solo never ----------------------------------------------
sleep 3
for v in web-1 db-1 db-2 sh-1 man-1; do
  kvr_check_eq "exactly one replacement for $v" "$(kvr_count_replacements "$ns" "$v")" 1
done
kvr_check_eq "solo, crashed once and restarted by KubeVirt, was never replaced" \
  "$(kvr_count_replacements "$ns" solo)" 0
kvr_check_eq "solo still runs as Always" "$(kvr_run_strategy "$ns" solo)/$(kvr_vmi_phase "$ns" solo)" Always/Running
kvr_check_eq "no decision about solo" "$(ctl_decisions_about main "$ns" solo | grep -c .)" 0
if ctl_alive main; then t_pass "the controller ran throughout"
else t_fail "the controller ran throughout" "it exited"; ctl_dump main 20; fi
ctl_stop main 20

t_summary
