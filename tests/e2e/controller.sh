# Sourced by the controller's end-to-end tests, tests/demo.sh and
# bench/bench_e2e.sh; never run. Needs KUBECONFIG (an admin's) and kubectl.
#
# Two groups of helpers:
#   ctl_*  the controller process: install what it needs (CRDs, RBAC), give it
#          its own identity (never admin), start / stop (SIGTERM) / kill -9 it,
#          and read its JSON log lines (wait for one, list the decisions);
#   kvr_*  the objects around it: the paper's example in a namespace,
#          VirtualMachines, failures through tests/cluster/guest and nodes,
#          replacements, Events, policy status, and the API server restart
#          and etcd compaction the exactly-once tests need.
#
# The cluster runs KubeVirt's own virt-controller and virt-api
# (tests/cluster/up): tests create only VirtualMachines, KubeVirt makes their
# VMIs, and only tests/cluster/guest and tests/cluster/nodes play
# virt-handler and the hosts (CONTRACT.md, "The test cluster").
#
# Each controller started here is named (ctl_start NAME ...); its stderr goes
# to $CTL_DIR/NAME.log, appended across restarts, and ctl_cleanup (to be run
# on exit) stops every one still running.

# t_jq ARGS...: jq -e ARGS on stdin, false on empty input (jq 1.6 -e exits 0
# when it reads nothing: a missing object must not pass a check).
t_jq() {
  local in
  in=$(cat)
  [ -n "${in//[[:space:]]/}" ] && jq -e "$@" <<<"$in"
}

ctl_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${KVR_BIN:=$ctl_root/bin}"
CTL_BIN=${CTL_BIN:-$KVR_BIN/kvrecover-controller}
CTL_SA_USER=system:serviceaccount:kvrecover-system:kvrecover-controller
if [ -z "${CTL_DIR:-}" ]; then
  CTL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kvr-e2e.XXXXXX")
  CTL_DIR_OWNED=1
fi
declare -A CTL_PID=() CTL_LOG=() CTL_OFF=()
# Scripts run side by side on one cluster, each with controllers of its own
# (leader election off): every controller started here serves only the
# policies its script makes, which kvr_policy and kvr_paper label with
# CTL_POLICY_LABEL (--policy-selector). Without it, another script's
# controller would halt, replace and write the status of this script's
# policies too, from caches of its own that may lag under load. Set it
# empty before sourcing (tests/demo.sh does) for a controller that serves
# every policy, as a deployed one does.
: "${CTL_POLICY_LABEL=e2e.kvrecover.io/run=$(basename "$0" .sh | tr -c 'A-Za-z0-9_.\n-' _)-$$}"

ctl_say() { echo "# $*" >&2; }

# ---- installation and identity --------------------------------------------

# The opening of every controller e2e script (after sourcing lib.sh and this
# file): stop its controllers at exit, and install; a failed install is
# reported as a failure and ends the script with its counts.
ctl_test_setup() {
  t_cleanup_add ctl_cleanup
  ctl_install || { t_fail "install CRDs and RBAC" "ctl_install failed"; t_summary; }
}

# Installs the CRD, the controller's namespace and RBAC. KubeVirt's CRDs
# must be there (tests/cluster/up installs KubeVirt). Idempotent; waits until
# the CRDs are served.
ctl_install() {
  # Twice at most: two scripts starting together on one cluster both find
  # the namespace missing and one of the creates meets AlreadyExists (client
  # apply is GET, then create); the second apply finds it.
  kubectl apply -f "$ctl_root/manifests/namespace.yaml" -f "$ctl_root/manifests/rbac.yaml" \
    >/dev/null 2>&1 ||
    kubectl apply -f "$ctl_root/manifests/namespace.yaml" -f "$ctl_root/manifests/rbac.yaml" \
      >/dev/null || return 1
  # Server-side apply: no last-applied annotation, and a re-run after the
  # CRD changed updates it instead of failing with AlreadyExists.
  kubectl apply --server-side --force-conflicts --field-manager=kvr-e2e \
    -f "$ctl_root/crds/recoverypolicies.kvrecover.io.yaml" >/dev/null || return 1
  local crd
  # Polled rather than `kubectl wait`, which fails on a CRD whose status
  # has no conditions yet.
  for crd in recoverypolicies.kvrecover.io virtualmachineinstances.kubevirt.io \
             virtualmachines.kubevirt.io; do
    kvr_poll 60 ctl__established "$crd" ||
      { ctl_say "CRD $crd not Established (is KubeVirt installed? tests/cluster/up)"; return 1; }
  done
}

ctl__established() {
  [ "$(kubectl get crd "$1" \
         -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" = True ]
}

# Prints the path of a kubeconfig for the controller's own identity, the
# ServiceAccount kvrecover-system/kvrecover-controller bound by
# manifests/rbac.yaml and nothing else. On the local control plane it is a
# client certificate for that user and its groups (tests/cluster/user); on
# any other cluster a token of the ServiceAccount itself. Made once per run.
ctl_kubeconfig() {
  local kc=$CTL_DIR/controller.kubeconfig out last
  if [ -s "$kc" ]; then echo "$kc"; return 0; fi
  # CTL_IDENTITY=token forces the ServiceAccount token (as on kind).
  if [ "${CTL_IDENTITY:-}" != token ] && [ -x "$ctl_root/tests/cluster/user" ] &&
     out=$("$ctl_root/tests/cluster/user" "$CTL_SA_USER" system:serviceaccounts \
             system:serviceaccounts:kvrecover-system system:authenticated 2>/dev/null); then
    last=$(printf '%s\n' "$out" | tail -n 1)
    if [ -f "$last" ]; then cp "$last" "$kc"; else printf '%s\n' "$out" >"$kc"; fi
  else
    local token server ca
    token=$(kubectl -n kvrecover-system create token kvrecover-controller --duration=4h) ||
      return 1
    server=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
    ca=$(kubectl config view --minify --raw \
           -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
    if [ -z "$ca" ]; then
      local caf
      caf=$(kubectl config view --minify --raw \
              -o jsonpath='{.clusters[0].cluster.certificate-authority}')
      [ -n "$caf" ] && ca=$(base64 -w0 "$caf")
    fi
    (umask 077
     cat >"$kc" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: kvrecover-controller
  user: {token: "$token"}
contexts:
- name: kvrecover-controller
  context: {cluster: e2e, user: kvrecover-controller}
current-context: kvrecover-controller
EOF
    )
  fi
  chmod 600 "$kc"
  echo "$kc"
}

# True when the identity ctl_kubeconfig gives is the controller's and not an
# admin: it may list VMIs but may not read Secrets nor delete VMs.
ctl_identity_ok() {
  local kc
  kc=$(ctl_kubeconfig) || return 1
  [ "$(KUBECONFIG=$kc kubectl auth can-i list virtualmachineinstances.kubevirt.io -A)" = yes ] &&
  [ "$(KUBECONFIG=$kc kubectl auth can-i list secrets -A 2>/dev/null)" = no ] &&
  [ "$(KUBECONFIG=$kc kubectl auth can-i delete virtualmachines.kubevirt.io -A 2>/dev/null)" = no ]
}

# ---- the controller process -------------------------------------------------

# ctl_start NAME [ARGS...]: starts bin/kvrecover-controller as the
# controller's identity, with its HTTP server and its probe listener each on
# a free loopback port ($CTL_HTTP_ADDR, $CTL_PROBE_ADDR override; scripts run
# side by side, so never the fixed default :8081) and
# the given extra arguments (--leader-elect=..., --id, --namespace ...).
# stderr and stdout go to $CTL_DIR/NAME.log (appended). Returns at once; use
# ctl_wait_synced. Starting a NAME that still runs is an error.
ctl_start() {
  local name=$1; shift
  local log=$CTL_DIR/$name.log kc
  if ctl_alive "$name"; then ctl_say "ctl_start: $name already runs"; return 1; fi
  kc=$(ctl_kubeconfig) || return 1
  touch "$log"
  CTL_LOG[$name]=$log
  CTL_OFF[$name]=$(stat -c %s "$log")
  echo "{\"msg\":\"e2e: start\",\"name\":\"$name\",\"args\":\"$*\"}" >>"$log"
  # CTL_SETSID=1: in a session of its own, so that a terminal's ^C reaches
  # only the script (which then stops it with SIGTERM). Without job control
  # setsid does not fork, so $! is the controller either way.
  local -a pre=()
  [ "${CTL_SETSID:-0}" = 1 ] && pre=(setsid)
  pre+=("$CTL_BIN")
  [ -z "$CTL_POLICY_LABEL" ] || pre+=(--policy-selector "$CTL_POLICY_LABEL")
  "${pre[@]}" --kubeconfig "$kc" --http-addr "${CTL_HTTP_ADDR:-127.0.0.1:0}" \
    --probe-addr "${CTL_PROBE_ADDR:-127.0.0.1:0}" --log-level info "$@" >>"$log" 2>&1 </dev/null &
  CTL_PID[$name]=$!
}

# True while the controller NAME runs.
ctl_alive() {
  local pid=${CTL_PID[$1]:-}
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

# The log lines NAME wrote since its last start.
ctl_log_since_start() {
  tail -c +"$((${CTL_OFF[$1]:-0} + 1))" "${CTL_LOG[$1]}" 2>/dev/null
}

# ctl_wait_log NAME ERE [SECONDS=30]: waits until a line written since
# NAME's last start matches ERE. Fails at once when the process has exited.
ctl_wait_log() {
  local name=$1 re=$2 secs=${3:-30} i
  for ((i = 0; i < secs * 10; i++)); do
    ctl_log_since_start "$name" | grep -qE -- "$re" && return 0
    if ! ctl_alive "$name"; then
      ctl_log_since_start "$name" | grep -qE -- "$re" && return 0
      ctl_say "$name exited while waiting for /$re/; its last lines:"
      ctl_log_since_start "$name" | tail -n 5 | sed 's/^/#   /' >&2
      return 1
    fi
    sleep 0.1
  done
  ctl_say "$name: no line matching /$re/ in ${secs}s; its last lines:"
  ctl_log_since_start "$name" | tail -n 5 | sed 's/^/#   /' >&2
  return 1
}

# ctl_wait_synced NAME [SECONDS=60]: until NAME logs "caches synced".
ctl_wait_synced() { ctl_wait_log "$1" '"msg": ?"caches synced"' "${2:-60}"; }

# The port NAME's HTTP server listens on (from its "http listening" line).
ctl_port() {
  ctl_log_since_start "$1" | grep -E '"msg": ?"http listening"' | tail -n 1 |
    jq -r '.port // empty' 2>/dev/null
}

# ctl_start_synced NAME [ARGS...]: ctl_start, then ctl_wait_synced.
ctl_start_synced() {
  local name=$1
  ctl_start "$@" && ctl_wait_synced "$name"
}

# ctl_stop NAME [GRACE=20]: SIGTERM, then waits GRACE seconds for a graceful
# exit. Returns the exit status; 124 when it had to be killed (printed).
ctl_stop() {
  local name=$1 grace=${2:-20} pid=${CTL_PID[$1]:-} i rc
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null && ! ctl_zombie "$pid"; then
    ctl_say "$name ignored SIGTERM for ${grace}s: killing it"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    unset "CTL_PID[$name]"
    return 124
  fi
  wait "$pid" 2>/dev/null; rc=$?
  unset "CTL_PID[$name]"
  return "$rc"
}

ctl_zombie() {
  [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# ctl_kill NAME: kill -9, as a crash or an OOM kill would.
ctl_kill() {
  local name=$1 pid=${CTL_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "CTL_PID[$name]"
  return 0
}

# Stops every controller still running (SIGTERM, then SIGKILL). For traps.
ctl_cleanup() {
  local name
  for name in "${!CTL_PID[@]}"; do
    ctl_stop "$name" 10 >/dev/null 2>&1
  done
  if [ -n "${CTL_DIR_OWNED:-}" ] && [ -z "${KVR_KEEP_LOGS:-}" ]; then
    rm -rf "$CTL_DIR"
  fi
}

# ctl_decisions NAME [JQ-FILTER]: the decision lines of NAME's whole log (all
# starts), as compact JSON objects, optionally filtered, e.g.
#   ctl_decisions c 'select(.vmi == "ns/vm-001")'
ctl_decisions() {
  local filter=${2:-.}
  grep -E '"msg": ?"decision"' "${CTL_LOG[$1]}" 2>/dev/null |
    jq -c "$filter" 2>/dev/null
}

# ctl_decisions_about NAME NS [VM]: NAME's decision lines about the VMs of
# namespace NS (and that VM). A line names its VM as "NS/VM" in .vmi or .vm,
# or as "VM" in .vm with the policy "NS/POLICY".
ctl_decisions_about() {
  grep -E '"msg": ?"decision"' "${CTL_LOG[$1]}" 2>/dev/null |
    jq -c --arg ns "$2" --arg vm "${3:-}" 'select(
    (((.vmi // .vm // "") | tostring) as $q
     | if ($q | test("/")) then $q else ((.policy // "") | split("/")[0]) + "/" + $q end)
    as $t | ($t | startswith($ns + "/")) and ($vm == "" or $t == $ns + "/" + $vm))' 2>/dev/null
}

# Copies NAME's log to the test output when KVR_SHOW_LOGS is set or a test
# wants to explain a failure.
ctl_dump() {
  ctl_say "---- $1's log (last ${2:-40} lines) ----"
  tail -n "${2:-40}" "${CTL_LOG[$1]}" 2>/dev/null | sed 's/^/#   /' >&2
}

# ---- objects ----------------------------------------------------------------

# kvr_poll SECONDS CMD...: runs CMD every 0.2 s until it succeeds or SECONDS
# pass. (The same as lib.sh's t_wait, for scripts that do not source lib.sh.)
kvr_poll() {
  local secs=$1 i; shift
  for ((i = 0; i < secs * 5; i++)); do
    "$@" && return 0
    sleep 0.2
  done
  "$@"
}

# kvr_paper NS [POLICY-FILE]: the paper's case study in NS: the pool
# ConfigMaps, the five VMs and the policy (examples/paper/policy.yaml unless
# another file is given; "-" leaves the policy out). The members' guests get
# 128Mi, as the VMs have: a replacement built from one must fit the test
# cluster's nodes (the weights ignore memory).
kvr_paper() {
  local ns=$1 policy=${2:-$ctl_root/examples/paper/policy.yaml}
  kvr_paper_pool "$ns" || return 1
  local -a files=(-f "$ctl_root/examples/paper/vms.yaml")
  [ "$policy" != - ] && files+=(-f "$policy")
  kubectl apply -n "$ns" "${files[@]}" >/dev/null || return 1
  [ "$policy" = - ] || [ -z "$CTL_POLICY_LABEL" ] ||
    kubectl label -n "$ns" -f "$policy" --overwrite "$CTL_POLICY_LABEL" >/dev/null
}

# kvr_paper_pool NS: the paper's pool ConfigMaps alone, with 128Mi guests.
kvr_paper_pool() {
  sed -E 's/^( +guest:) [0-9]+[GM]i$/\1 128Mi/' "$ctl_root/examples/paper/pool.yaml" |
    kubectl apply -n "$1" -f - >/dev/null
}

# kvr_policy NS NAME SPEC-JSON: creates (or replaces) RecoveryPolicy NAME with
# that spec, e.g. kvr_policy ns p '{"selector":{...},...}', labelled
# CTL_POLICY_LABEL (the controllers of this script serve it).
kvr_policy() {
  jq -n --arg ns "$1" --arg name "$2" --argjson spec "$3" --arg run "$CTL_POLICY_LABEL" \
    '{apiVersion: "kvrecover.io/v1alpha1", kind: "RecoveryPolicy",
      metadata: ({name: $name, namespace: $ns}
        + if $run == "" then {} else {labels: {($run | split("=")[0]): ($run | split("=")[1])}} end),
      spec: $spec}' |
    kubectl apply -f - >/dev/null
}

# The paper's policy spec as JSON, with overrides merged in:
#   kvr_paper_spec '{"action":"DryRun"}'
# With `trigger: {immediate: true}`, the paper's behaviour: the first Failed
# VMI is acted on, without waiting for KubeVirt's restart to fail.
kvr_paper_spec() {
  jq -cn --argjson o "${1:-{\}}" '{
    selector: {matchLabels: {app: "paper"}},
    poolSelector: {matchLabels: {"kvrecover.io/pool": "paper"}},
    weights: {language: 0.3, database: 0.2, webserver: 0.1},
    threshold: 0.5, mode: "Jaccard", required: ["os"], action: "Recreate",
    trigger: {immediate: true}} * $o'
}

# kvr_vm NS NAME FEATURES [LABEL-VALUE=paper]: a VirtualMachine like the
# paper's (2 vCPUs, 128Mi), with its own features annotation (flow YAML) and
# template label app=LABEL-VALUE.
kvr_vm() {
  local ns=$1 name=$2 features=$3 app=${4:-paper}
  jq -n --arg ns "$ns" --arg name "$name" --arg f "$features" --arg app "$app" '{
    apiVersion: "kubevirt.io/v1", kind: "VirtualMachine",
    metadata: {name: $name, namespace: $ns, labels: {app: $app}},
    spec: {runStrategy: "Always", template: {
      metadata: {labels: {app: $app}, annotations: {"kvrecover.io/features": $f}},
      spec: {domain: {cpu: {cores: 2}, memory: {guest: "128Mi"},
                      devices: {disks: [{name: "rootdisk", disk: {bus: "virtio"}}],
                                interfaces: [{name: "default", masquerade: {}}]}},
             networks: [{name: "default", pod: {}}],
             volumes: [{name: "rootdisk",
                        containerDisk: {image: "quay.io/containerdisks/ubuntu:20.04"}}]}}}}' |
    kubectl create -f - >/dev/null
}

# kvr_member NS NAME POOL FEATURES-YAML [VM-NAME]: a pool ConfigMap whose
# data.vm is a copy of VM VM-NAME's paper-like template (named NAME), with
# data.features as given (block YAML).
kvr_member() {
  local ns=$1 name=$2 pool=$3 features=$4 vmname=${5:-}
  local vm
  vm=$(jq -n --arg name "$name" '{
    apiVersion: "kubevirt.io/v1", kind: "VirtualMachine",
    metadata: {name: $name, labels: {app: "paper"}},
    spec: {runStrategy: "Always", template: {metadata: {labels: {app: "paper"}},
      spec: {domain: {cpu: {cores: 2}, memory: {guest: "128Mi"},
                      devices: {disks: [{name: "rootdisk", disk: {bus: "virtio"}}]}},
             volumes: [{name: "rootdisk",
                        containerDisk: {image: "quay.io/containerdisks/ubuntu:20.04"}}]}}}}')
  jq -n --arg ns "$ns" --arg name "$name" --arg pool "$pool" --arg f "$features" \
        --arg vm "$vm" --arg vmname "$vmname" '{
    apiVersion: "v1", kind: "ConfigMap",
    metadata: {name: $name, namespace: $ns,
               labels: ({"kvrecover.io/pool": $pool} +
                        (if $vmname == "" then {} else {"kvrecover.io/vm": $vmname} end))},
    data: {features: $f, vm: $vm}}' |
    kubectl apply -f - >/dev/null
}

# kvr_vmi_uid NS NAME: the VMI's uid (empty when there is none).
kvr_vmi_uid() {
  kubectl get vmi -n "$1" "$2" -o jsonpath='{.metadata.uid}' 2>/dev/null
}

# kvr_vmi_phase NS NAME
kvr_vmi_phase() {
  kubectl get vmi -n "$1" "$2" -o jsonpath='{.status.phase}' 2>/dev/null
}

# kvr_vmi_start NS VM: waits (up to 2 min) until KubeVirt runs VM's
# instance (a VMI named after it in phase Running). Tests create only
# VirtualMachines: KubeVirt's virt-controller makes the VMI, and the test
# cluster's virt-handler stand-in reports it Running.
kvr_vmi_start() {
  kvr_poll 120 kvr__vmi_running "$1" "$2"
}

kvr__vmi_running() { [ "$(kvr_vmi_phase "$1" "$2")" = Running ]; }

# kvr_vm_manual NS VM: once KubeVirt runs VM, runStrategy Manual: from then
# on KubeVirt neither restarts nor stops it, so a Failed VMI stays (a
# failure that must be acted on, however late the controller looks).
kvr_vm_manual() {
  kvr_vmi_start "$1" "$2" &&
    kubectl patch vm -n "$1" "$2" --type merge -p '{"spec":{"runStrategy":"Manual"}}' >/dev/null
}

# kvr_guest ARGS...: tests/cluster/guest on this cluster (crash NS VMI,
# failstart NS VM on|off): the only way a test fails a guest.
kvr_guest() { "$ctl_root/tests/cluster/guest" "$KUBECONFIG" "$@"; }

# kvr_nodes ARGS...: tests/cluster/nodes on this cluster (list, add, kill,
# fence, revive): the only way a test fails a host.
kvr_nodes() { "$ctl_root/tests/cluster/nodes" "$KUBECONFIG" "$@"; }

# kvr_vmi_fail NS VM: VM's running guest crashes (tests/cluster/guest crash):
# virt-handler reports its VMI Failed, and KubeVirt deletes that VMI within
# a second and, under runStrategy Always, starts a new one. Waits (up to
# 2 min) for the VMI to run first; the caller reads its uid before, when it
# needs it (kvr_vmi_uid).
kvr_vmi_fail() {
  kvr_vmi_start "$1" "$2" || { ctl_say "kvr_vmi_fail: $1/$2 has no Running VMI"; return 1; }
  kvr_guest crash "$1" "$2" >/dev/null
}

# kvr_vmi_restarted NS VM OLD-UID: KubeVirt runs VM again, as a VMI with
# another uid than OLD-UID.
kvr_vmi_restarted() {
  local u
  u=$(kvr_vmi_uid "$1" "$2")
  [ -n "$u" ] && [ "$u" != "$3" ] && kvr__vmi_running "$1" "$2"
}

# kvr_replacements NS VM: the names of the VMs in NS labelled
# kvrecover.io/replaces=VM, one a line ("-A" as NS: every namespace, as
# namespace/name).
kvr_replacements() {
  if [ "$1" = -A ]; then
    kubectl get vm -A -l "kvrecover.io/replaces=$2" \
      -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}'
  else
    kubectl get vm -n "$1" -l "kvrecover.io/replaces=$2" \
      -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
  fi
}

# kvr_replacements_in "NS..." VM: the replacements of VM in those namespaces,
# as namespace/name. (Tests look only in their own namespaces: -A would see
# the namespaces earlier tests are still deleting.)
kvr_replacements_in() {
  local ns
  for ns in $1; do kvr_replacements "$ns" "$2" | sed "s|^|$ns/|"; done
}

# kvr_count_replacements NS VM
kvr_count_replacements() { kvr_replacements "$@" | grep -c .; }

# kvr_has_replacement NS VM: true when at least one exists.
kvr_has_replacement() { [ "$(kvr_count_replacements "$1" "$2")" -ge 1 ]; }

# kvr_events NS REASON [KIND [NAME]]: how many Events in NS have that reason
# (and, when given, that involved object), counting both core and
# events.k8s.io Events (the core API lists both).
kvr_events() {
  kubectl get events -n "$1" -o json 2>/dev/null |
    jq --arg r "$2" --arg k "${3:-}" --arg n "${4:-}" '
      [.items[] | select(.reason == $r)
       | select($k == "" or .involvedObject.kind == $k)
       | select($n == "" or .involvedObject.name == $n)] | length'
}

# kvr_has_event NS REASON [KIND [NAME]]
kvr_has_event() { [ "$(kvr_events "$@")" -ge 1 ]; }

# kvr_status NS POLICY [JQ-FILTER]: the policy's status (or a field of it).
kvr_status() {
  kubectl get rp -n "$1" "$2" -o json 2>/dev/null | jq -c "${3:-.status}"
}

# kvr_ready NS POLICY: the Ready condition's status ("True", "False", "").
kvr_ready() {
  kubectl get rp -n "$1" "$2" -o json 2>/dev/null |
    jq -r '[.status.conditions[]? | select(.type == "Ready")][0].status // ""'
}

# kvr_ready_current NS POLICY STATUS: Ready has that status and was computed
# from the current generation (observedGeneration).
kvr_ready_current() {
  kubectl get rp -n "$1" "$2" -o json 2>/dev/null | t_jq --arg s "$3" '
    .metadata.generation as $g
    | [.status.conditions[]? | select(.type == "Ready")][0] as $c
    | $c.status == $s and ((.status.observedGeneration // $c.observedGeneration) == $g)' \
    >/dev/null
}

# ---- the API server and etcd (local control plane only) ----------------------

# The local cluster's state directory (certificates, pids), or failure when
# KUBECONFIG names another cluster.
kvr_cluster_dir() {
  local d
  [ -n "${KUBECONFIG:-}" ] || return 1
  d=$(dirname "$KUBECONFIG")
  [ -f "$d/ca.key" ] && [ -f "$d/pids" ] || return 1
  (cd "$d" && pwd)
}

# The pid of the local cluster's kube-apiserver.
kvr_apiserver_pid() {
  local d
  d=$(kvr_cluster_dir) || return 1
  awk '$2 == "kube-apiserver" { p = $1 } END { if (p) print p; else exit 1 }' "$d/pids"
}

# kvr_apiserver_arg NAME: the value of the running apiserver's --NAME flag.
kvr_apiserver_arg() {
  local pid
  pid=$(kvr_apiserver_pid) || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | awk -v f="--$1" '
    index($0, f "=") == 1 { print substr($0, length(f) + 2); found = 1; exit }
    prev == f { print; found = 1; exit } { prev = $0 } END { exit !found }'
}

# True when the API server answers /readyz.
kvr_apiserver_ready() {
  kubectl get --raw /readyz >/dev/null 2>&1
}

# kvr_apiserver_restart [DOWN-SECONDS=0] [CMD...]: stops the local cluster's
# kube-apiserver (SIGTERM, SIGKILL after 5 s), runs CMD while it is down, and
# starts it again with the same command line. Waits for /readyz, then (up to
# 60 s) for virt-controller to lead again: it exits when it cannot renew its
# leader Lease, and tests/cluster/supervise starts it again, as the kubelet
# restarts its pod.
kvr_apiserver_restart() {
  local down=${1:-0} back; shift || true
  kvr__apiserver_restart_here "$down" "$@" || return 1
  back=$(date +%s)
  kvr_poll 60 kvr_apiserver_ready || return 1
  kvr_poll 60 kvr__vc_leads "$back"
}

# kvr__vc_leads SINCE: virt-controller's Lease was renewed at or after SINCE
# (epoch seconds).
kvr__vc_leads() {
  local t
  t=$(kubectl get lease -n kubevirt virt-controller -o jsonpath='{.spec.renewTime}' 2>/dev/null) &&
    [ -n "$t" ] && [ "$(date -d "$t" +%s 2>/dev/null || echo 0)" -ge "$1" ]
}

# tests/cluster has no restart command: the pid and command line come from
# the cluster's pids file and /proc; the new pid replaces the old in the pids
# file, so that tests/cluster/down stops it.
kvr__apiserver_restart_here() {
  local down=$1; shift
  local d pid i
  d=$(kvr_cluster_dir) || { ctl_say "no local cluster directory"; return 1; }
  pid=$(kvr_apiserver_pid) || return 1
  local -a argv=()
  mapfile -d '' argv <"/proc/$pid/cmdline"
  local cwd
  cwd=$(readlink "/proc/$pid/cwd")
  # TERM, then KILL after 5 s: kube-apiserver's graceful shutdown waits for
  # its long-running requests far longer than a test should.
  kill -TERM "$pid" || return 1
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; sleep 0.5; }
  sleep "$down"
  [ $# -gt 0 ] && "$@"
  # exec: $! is then kube-apiserver itself (setsid does not fork when, as
  # here without job control, it is not a process group leader).
  (cd "$cwd" && exec setsid "${argv[@]}") >>"$d/kube-apiserver.log" 2>&1 </dev/null &
  local new=$!
  disown "$new" 2>/dev/null # not this script's job: no "Killed" notice later
  awk -v old="$pid" -v new="$new" '$1 == old && $2 == "kube-apiserver" { $1 = new } { print }' \
    "$d/pids" >"$d/pids.tmp" && mv "$d/pids.tmp" "$d/pids"
}

# kvr_etcd CURL-ARGS...: curl to the local cluster's etcd, with the client
# certificate the API server uses. PATH is the v3 gRPC gateway's
# (/v3/kv/range, /v3/kv/compaction).
kvr_etcd() {
  local url path=$1; shift
  local server ca cert key
  server=$(kvr_apiserver_arg etcd-servers) || return 1
  url=${server%%,*}
  ca=$(kvr_apiserver_arg etcd-cafile 2>/dev/null || true)
  cert=$(kvr_apiserver_arg etcd-certfile 2>/dev/null || true)
  key=$(kvr_apiserver_arg etcd-keyfile 2>/dev/null || true)
  local -a tls=()
  [ -n "$ca" ] && tls+=(--cacert "$ca")
  [ -n "$cert" ] && tls+=(--cert "$cert" --key "$key")
  curl -sS --fail-with-body --max-time 10 "${tls[@]}" "$url$path" "$@"
}

# The current etcd revision.
kvr_etcd_revision() {
  kvr_etcd /v3/kv/range -X POST -d '{"key":"AA==","limit":1}' | jq -r '.header.revision'
}

# kvr_etcd_compact [REVISION=current]: compacts etcd's history (physical),
# so that a watch from an older resourceVersion is answered 410 Gone.
kvr_etcd_compact() {
  local rev=${1:-}
  [ -n "$rev" ] || rev=$(kvr_etcd_revision) || return 1
  kvr_etcd /v3/kv/compaction -X POST -d "{\"revision\":\"$rev\",\"physical\":true}" >/dev/null
}

# ---- checks (need lib.sh's t_pass / t_fail) ---------------------------------

# kvr_check_wait NAME SECONDS CMD...: passes NAME when CMD succeeds within
# SECONDS (polled), else fails it.
kvr_check_wait() {
  local name=$1 secs=$2; shift 2
  if t_wait "$secs" "$@"; then t_pass "$name"
  else t_fail "$name" "not within ${secs}s: $*"; fi
}

# kvr_check_json NAME JSON JQ-FILTER: passes NAME when the filter is true
# for JSON; on failure shows the JSON.
kvr_check_json() {
  if t_jq "$3" >/dev/null 2>&1 <<<"$2"; then t_pass "$1"
  else t_fail "$1" "jq '$3' is false for: $(head -c 600 <<<"$2")"; fi
}

# kvr_check_eq NAME GOT WANT
kvr_check_eq() {
  if [ "$2" = "$3" ]; then t_pass "$1"; else t_fail "$1" "got '$2', want '$3'"; fi
}

# kvr_start_or_give_up NAME ARGS...: starts the controller and waits for its
# caches; when it cannot start, says so as one failure and ends the script
# (every later check depends on it).
kvr_start_or_give_up() {
  local name=$1
  if ctl_start_synced "$@"; then
    t_pass "the controller ($name) starts as its own identity and syncs its caches"
  else
    t_fail "the controller ($name) starts as its own identity and syncs its caches" \
      "see the log lines above; nothing else can be checked"
    ctl_dump "$name" 20
    t_summary
  fi
}

# kvr_vm_json NS NAME: the VM as JSON ("" when absent).
kvr_vm_json() { kubectl get vm -n "$1" "$2" -o json 2>/dev/null; }

# kvr_halted_for NS VM [PREVIOUS]: kvrecover halted VM for its one
# replacement (CONTRACT.md "The replacement" 1): runStrategy Halted,
# kvrecover.io/replaced-by names the VM labelled kvrecover.io/replaces=VM,
# kvrecover.io/previous-run-strategy is PREVIOUS (when given; else not empty).
kvr_halted_for() {
  kvr_vm_json "$1" "$2" | t_jq --arg r "$(kvr_replacements "$1" "$2" | head -n 1)" \
    --arg p "${3:-}" '$r != "" and .spec.runStrategy == "Halted"
      and .metadata.annotations["kvrecover.io/replaced-by"] == $r
      and (.metadata.annotations["kvrecover.io/previous-run-strategy"] // "") as $was
      | $was != "" and ($p == "" or $was == $p)' >/dev/null
}

# kvr_run_strategy NS VM
kvr_run_strategy() {
  kubectl get vm -n "$1" "$2" -o jsonpath='{.spec.runStrategy}' 2>/dev/null
}
