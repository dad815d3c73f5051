#!/usr/bin/env bash
# e2e: own-cluster (it stops kube-apiserver for five minutes)
# Never give up (issue 13a): a failure waits while the API server is gone
# for five minutes. A Manual VM's guest crashes (KubeVirt will not restart
# it) while the controller is frozen (SIGSTOP), the API server stops, the
# controller wakes to no API server and keeps retrying; five minutes later
# the API server returns and the VM is recovered, once, within the retry
# backoff's cap (30 s) plus a relist. Takes about seven minutes.
# KubeVirt's virt-controller exits when it loses its leader Lease during the
# outage; tests/cluster/supervise starts it again, as a kubelet would (its
# restarts.log), and the replacement's VMI is its work.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
if ! kvr_apiserver_pid >/dev/null 2>&1 || ! t_local_cluster; then
  t_skip "API server outage" "not the local control plane: its kube-apiserver cannot be stopped from here"
  t_summary
fi
ctl_test_setup
ns=$(t_ns outage) || { t_fail "namespace" "cannot create one"; t_summary; }
: "${KVR_OUTAGE_SECONDS:=300}"

kvr_paper_pool "$ns" || { t_fail "the pool" "kubectl failed"; t_summary; }
kvr_policy "$ns" paper "$(kvr_paper_spec '{"capture": false}')"
kvr_vm "$ns" o-1 "{os: ubuntu-20.04, language: nodejs, database: mysql, webserver: nginx}" ||
  { t_fail "create the VM" "kubectl failed"; t_summary; }
kvr_vm_manual "$ns" o-1 || t_fail "o-1 runs, then runStrategy Manual" "no Running VMI"

kvr_start_or_give_up main --leader-elect=false
kvr_check_wait "the policy is Ready" 30 kvr_ready_current "$ns" paper True

uid=$(kvr_vmi_uid "$ns" o-1)
pid=${CTL_PID[main]}
kill -STOP "$pid"
kvr_vmi_fail "$ns" o-1 || t_fail "crash o-1's guest" "tests/cluster/guest failed"
wake() { sleep 8; kill -CONT "$pid"; }
wake &
wake_pid=$!
t_note "kube-apiserver stops for $KVR_OUTAGE_SECONDS s"
if kvr_apiserver_restart "$KVR_OUTAGE_SECONDS"; then
  t_pass "kube-apiserver stopped for $KVR_OUTAGE_SECONDS s and came back"
else t_fail "kube-apiserver stopped for $KVR_OUTAGE_SECONDS s and came back" "see above"; fi
wait "$wake_pid"
t_note "virt-controller restarts during the outage: $(grep -c 'supervise: virt-controller started again' \
  "$(kvr_cluster_dir)/restarts.log" 2>/dev/null)"
t1=$(date +%s)
if ctl_alive main; then t_pass "the controller survived the outage"
else t_fail "the controller survived the outage" "it exited"; ctl_dump main 20; fi
kvr_check_wait "o-1 is recovered within 60 s of the API server's return" 60 \
  kvr_has_replacement "$ns" o-1
t_note "replaced $(($(date +%s) - t1)) s after the API server returned"
r=$(kvr_replacements "$ns" o-1 | head -n 1)
kvr_check_json "its failed-uid is o-1's crashed VMI" "$(kvr_vm_json "$ns" "$r")" \
  ".metadata.annotations[\"kvrecover.io/failed-uid\"] == \"$uid\""
kvr_check_wait "o-1 is Halted, replaced-by it, previous-run-strategy Manual" 30 \
  kvr_halted_for "$ns" o-1 Manual
# KubeVirt's part: the restarted virt-controller waits out its dead
# predecessor's leader Lease, syncs its informers, then makes the VMI;
# with two other clusters beside this one that has taken over a minute.
if t_wait 180 kvr__vmi_running "$ns" "$r"; then
  t_pass "the replacement runs"
else
  t_fail "the replacement runs" "not within 180 s: VM $(kubectl get vm -n "$ns" "$r" \
    -o jsonpath='{.status.printableStatus}' 2>&1), VMI phase '$(kubectl get vmi -n "$ns" "$r" \
    -o jsonpath='{.status.phase}' 2>&1)', virt-controller Lease held by '$(kubectl get lease -n \
    kubevirt virt-controller -o jsonpath='{.spec.holderIdentity}' 2>&1)'"
fi
sleep 3
kvr_check_eq "exactly one replacement" "$(kvr_count_replacements "$ns" o-1)" 1
ctl_stop main 20

t_summary
