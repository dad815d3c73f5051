#!/usr/bin/env bash
# e2e: own-cluster (it kills KubeVirt's virt-controller and virt-api)
# The test control plane is what the other end-to-end tests take it for: a
# real kube-apiserver backed by etcd, enforcing KubeVirt's own schemas, with
# a garbage collector, RBAC, resource quotas and client-certificate users;
# on a cluster from tests/cluster/up also kube-scheduler, KWOK's nodes and
# KubeVirt's virt-controller and virt-api (test_kubevirt.sh takes those
# through VM lifecycles).
. "$(dirname "$0")/lib.sh"

# --- a real API server -------------------------------------------------
version=$(kubectl get --raw /version 2>&1 | jq -r .gitVersion 2>/dev/null)
if t_local_cluster; then
  # Exactly the release tests/cluster/k8s/go.mod pins.
  want=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$(t_root)/tests/cluster/k8s/go.mod")
  if [ "$version" = "$want" ]; then
    t_pass "server reports gitVersion $want"
  else
    t_fail "server reports gitVersion $want" "got '$version'"
  fi
else
  case "$version" in
    v1.3[0-9].*) t_pass "server reports gitVersion v1.3x ($version)" ;;
    *) t_fail "server reports gitVersion v1.3x" "got '$version'" ;;
  esac
fi
t_check "/readyz/etcd is ok" test "$(kubectl get --raw /readyz/etcd 2>&1)" = ok
t_check "kubectl is the server's release" \
  test "$(kubectl version -o json | jq -r .clientVersion.gitVersion)" = "$version"

ns=$(t_ns e2e-cluster) || { t_fail "create a namespace" "kubectl create namespace failed"; t_summary; }

# --- the components tests/cluster/up starts ------------------------------
if t_local_cluster; then
  # virt-api reads the front proxy's CA from here at start (it panics
  # without it): kube-apiserver's --requestheader-* flags.
  t_check "kube-apiserver publishes requestheader-client-ca-file (front proxy)" \
    test -n "$(kubectl get configmap extension-apiserver-authentication -n kube-system \
      -o jsonpath='{.data.requestheader-client-ca-file}')"
  ncrd=$(kubectl get crd -o json | jq '[.items[] | select(.spec.group | test("kubevirt\\.io$")) |
    select(any(.status.conditions[]?; .type == "Established" and .status == "True"))] | length')
  # KubeVirt v1.8.4's install strategy: 18 CRDs, plus the KubeVirt CRD.
  check_count() { if [ "$2" "${3:--eq}" "$4" ]; then t_pass "$1"; else t_fail "$1" "got $2"; fi; }
  check_count "all 19 of KubeVirt's CRDs are Established" "$ncrd" -eq 19
  nwh=$(kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations -o json |
    jq '[.items[].webhooks[] | select(.clientConfig.url // "" | startswith("https://127.0.0.1:"))] | length')
  check_count "virt-api's webhooks are registered by url (at least 20)" "$nwh" -ge 20
  check_count "at least 3 nodes are Ready" "$(kubectl get nodes -o json | jq '[.items[] |
    select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))] | length')" -ge 3
  t_check "virt-controller holds its leader Lease" test -n "$(kubectl get lease virt-controller -n kubevirt \
    -o jsonpath='{.spec.holderIdentity}')"
  t_check "the KubeVirt CR is Deployed with a default architecture" test "$(kubectl get kubevirt kubevirt -n kubevirt \
    -o jsonpath='{.status.phase}/{.status.defaultArchitecture}')" = Deployed/amd64
  # kube-scheduler binds a plain pod; KWOK (the kubelet) runs it.
  kubectl run e2e-pod -n "$ns" --image=registry.k8s.io/pause:3.10 --restart=Never >/dev/null
  running() { [ "$(kubectl get pod e2e-pod -n "$ns" -o jsonpath='{.status.phase}')" = Running ]; }
  t_check "a pod is bound to a node by kube-scheduler and Running (KWOK)" t_wait 30 running
  t_check "... on one of the nodes" kubectl get node "$(kubectl get pod e2e-pod -n "$ns" -o jsonpath='{.spec.nodeName}')"
else
  t_skip "the components of tests/cluster/up" "not a cluster from tests/cluster/up"
fi

# --- KubeVirt's components come back when they die ----------------------
# In a real cluster they are pods, and the kubelet restarts them; here
# tests/cluster/supervise does (virt-controller exits when it loses its
# leader Lease, so an API outage would otherwise end KubeVirt). kill -9, as
# an OOM kill would; without the supervisor neither comes back, and no VMI
# is made for a VM created afterwards.
if t_local_cluster; then
  cdir=$(dirname "$KUBECONFIG")
  [ -f "$cdir/ca.key" ] || cdir=$(dirname "$cdir")
  # proc_new NAME OLD-PID: NAME.pid names a live process of its name, not OLD-PID.
  proc_new() {
    local pid comm
    [ -f "$cdir/$1.pid" ] && read -r pid comm <"$cdir/$1.pid" || return 1
    [ "$pid" != "$2" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
  }
  if [ -f "$cdir/virt-controller.pid" ] && [ -f "$cdir/virt-api.pid" ]; then
    read -r vc_pid _ <"$cdir/virt-controller.pid"
    read -r va_pid _ <"$cdir/virt-api.pid"
    kill -KILL "$vc_pid" "$va_pid"
    t_check "kill -9 virt-controller: a new one runs within 20 s" t_wait 20 proc_new virt-controller "$vc_pid"
    t_check "kill -9 virt-api: a new one runs within 20 s" t_wait 20 proc_new virt-api "$va_pid"
    t_check "the restarts are logged in the cluster's restarts.log" grep -q \
      "virt-controller (pid $vc_pid) exited with status 137" "$cdir/restarts.log"
    va_answers() {
      curl -fsS --cacert "$cdir/ca.crt" \
        "https://127.0.0.1:$(cat "$cdir/virt-api.port")/apis/subresources.kubevirt.io/v1/healthz" | grep -q .
    }
    t_check "the new virt-api answers on its port" t_wait 60 va_answers
    # Through virt-api's webhooks (mutating, validating) and the new
    # virt-controller (VM -> VMI -> launcher pod), handler-standin (Running).
    jq -n --arg ns "$ns" '{apiVersion: "kubevirt.io/v1", kind: "VirtualMachine",
      metadata: {name: "after-kill", namespace: $ns},
      spec: {runStrategy: "Always", template: {spec: {
        domain: {cpu: {cores: 1}, memory: {guest: "128Mi"}, devices: {}}}}}}' |
      kubectl create -f - >/dev/null
    vmi_running() {
      [ "$(kubectl get vmi after-kill -n "$ns" -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]
    }
    t_check "after the kill -9s KubeVirt still starts a new VM (its VMI Running)" t_wait 90 vmi_running
    kubectl delete vm after-kill -n "$ns" --wait=false >/dev/null 2>&1
  else
    t_fail "virt-controller and virt-api are supervised" "no virt-controller.pid or virt-api.pid in $cdir"
  fi
fi

# --- resource quota is enforced (kube-controller-manager) -----------------
# Admission counts against status.hard, which only the resource quota
# controller fills in: without it a quota limits nothing.
kubectl create quota e2e-quota -n "$ns" --hard=count/configmaps=3 >/dev/null
quota_ready() { [ -n "$(kubectl get quota e2e-quota -n "$ns" -o jsonpath='{.status.hard}')" ]; }
t_check "the resource quota controller fills in a quota's status" t_wait 30 quota_ready
# kube-root-ca.crt is the first of the three.
kubectl create configmap e2e-q1 -n "$ns" >/dev/null 2>&1 || true
kubectl create configmap e2e-q2 -n "$ns" >/dev/null 2>&1 || true
out=$(kubectl create configmap e2e-q3 -n "$ns" 2>&1)
case "$out" in
  *"exceeded quota"*) t_pass "a create beyond the quota is refused (exceeded quota)" ;;
  *) t_fail "a create beyond the quota is refused (exceeded quota)" "got: $out" ;;
esac
kubectl delete quota e2e-quota -n "$ns" >/dev/null

# --- KubeVirt's schemas are enforced -----------------------------------
t_check "a valid VirtualMachine is created" kubectl create -n "$ns" -f "$(t_fixture vm-valid.yaml)"
t_check "the VirtualMachine reads back" \
  test "$(kubectl get vm vm-valid -n "$ns" -o jsonpath='{.spec.template.spec.domain.cpu.cores}')" = 1

# kubectl must fail, and the server's message must name the field (an
# extended regular expression). Where KubeVirt's virt-api runs, its
# mutating webhook checks the object against KubeVirt's OpenAPI schema first
# and words it "... in body is required"; the CRD schema says "Required
# value".
refused() {
  local name=$1 file=$2 field=$3 out
  if out=$(kubectl create -n "$ns" -f "$(t_fixture "$file")" 2>&1); then
    t_fail "$name" "the server accepted $file"
  elif printf '%s' "$out" | grep -Eq -- "$field"; then
    t_pass "$name"
  else
    t_fail "$name" "refused, but the error does not name $field: $out"
  fi
}
refused "a VM without spec.template.spec.domain is refused" vm-no-domain.yaml \
  'spec\.template\.spec\.domain(: Required value| in body is required)'
refused "a VM with a string for cpu.cores is refused" vm-bad-cores.yaml \
  'spec\.template\.spec\.domain\.cpu\.cores(: Invalid value| in body must be of type integer)'

# --- status: the VM has a status subresource, the VMI has none ----------
t_check "the VM CRD has a status subresource" test "$(kubectl get crd virtualmachines.kubevirt.io \
  -o jsonpath='{.spec.versions[?(@.name=="v1")].subresources.status}')" = '{}'
t_check "the VMI CRD has no status subresource" test -z "$(kubectl get crd virtualmachineinstances.kubevirt.io \
  -o jsonpath='{.spec.versions[?(@.name=="v1")].subresources}')"
# Through the main resource the server drops status changes of a VM; the
# status subresource takes them.
kubectl patch vm vm-valid -n "$ns" --type merge -p '{"status":{"printableStatus":"Main"}}' >/dev/null 2>&1
t_check "a VM's status ignores patches to the main resource" \
  test "$(kubectl get vm vm-valid -n "$ns" -o jsonpath='{.status.printableStatus}')" != Main

# virt-controller owns a VM's status: it writes printableStatus itself (and
# virt-handler, here tests/cluster/handler-standin, a VMI's).
stopped() { [ "$(kubectl get vm vm-valid -n "$ns" -o jsonpath='{.status.printableStatus}')" = Stopped ]; }
t_check "virt-controller writes a Halted VM's printableStatus (Stopped)" t_wait 30 stopped

# --- garbage collection (kube-controller-manager) ----------------------
uid=$(kubectl get vm vm-valid -n "$ns" -o jsonpath='{.metadata.uid}')
kubectl apply -n "$ns" -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: owned-by-vm
  ownerReferences:
  - {apiVersion: kubevirt.io/v1, kind: VirtualMachine, name: vm-valid, uid: "$uid"}
data: {k: v}
EOF
t_check "a ConfigMap owned by the VM exists" kubectl get configmap owned-by-vm -n "$ns"
kubectl delete vm vm-valid -n "$ns" --wait=false >/dev/null
gone() { ! kubectl get configmap owned-by-vm -n "$ns" >/dev/null 2>&1; }
if t_wait 60 gone; then
  t_pass "the garbage collector deletes what a deleted VM owned"
else
  t_fail "the garbage collector deletes what a deleted VM owned" "owned-by-vm still there after 60s"
fi

# --- RBAC and client-certificate users (tests/cluster/user) ------------
if t_local_cluster; then
  # A user named like a ServiceAccount is bound by ServiceAccount subjects,
  # which is how the controller runs as manifests/rbac.yaml's identity.
  sa=system:serviceaccount:$ns:tester
  if kc=$(t_user "$sa" system:serviceaccounts "system:serviceaccounts:$ns" system:authenticated); then
    t_pass "tests/cluster/user issues a kubeconfig"
    t_check "the user is who the certificate says" test "$(KUBECONFIG=$kc kubectl auth whoami -o json |
      jq -r '.status.userInfo | [.username] + .groups | join(" ")')" = \
      "$sa system:serviceaccounts system:serviceaccounts:$ns system:authenticated"
    kubectl create role reader -n "$ns" --verb get,list --resource configmaps >/dev/null
    kubectl create rolebinding reader -n "$ns" --role reader --serviceaccount "$ns:tester" >/dev/null
    t_wait 10 env KUBECONFIG="$kc" kubectl get configmaps -n "$ns"
    t_check "RBAC grants the user what its ServiceAccount binding says" \
      env KUBECONFIG="$kc" kubectl get configmaps -n "$ns"
    out=$(KUBECONFIG=$kc kubectl get configmaps -n default 2>&1)
    case "$out" in
      *Forbidden*|*forbidden*) t_pass "RBAC refuses the user what no binding grants" ;;
      *) t_fail "RBAC refuses the user what no binding grants" "got: $out" ;;
    esac
  else
    t_fail "tests/cluster/user issues a kubeconfig" "tests/cluster/user failed (see above)"
  fi
else
  t_skip "client-certificate users" "not a cluster from tests/cluster/up"
fi

t_summary
