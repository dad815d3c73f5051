#!/usr/bin/env bash
# `make bench-e2e`: the controller against the test cluster (tests/cluster/up:
# a real kube-apiserver, KubeVirt v1.8.4's own virt-controller and virt-api,
# KWOK nodes, a virt-handler stand-in). A benchmark, not a test: it prints
# figures (bench/README.md records them) and fails only when something breaks
# outright.
#
# It creates only VirtualMachines: KubeVirt makes their VMIs, and failures are
# played only through tests/cluster/guest, as the e2e tests do. It never
# creates a VMI nor writes a VMI's status.
#
#   1. latency    failure -> replacement created, p50/p99 over BENCH_N (30)
#                 guest crashes, one at a time, with a 1,000-member pool and
#                 `trigger: {immediate: true}`. Two clocks: a client watching
#                 VMIs and VMs (the crashed VMI's Failed event's arrival to the
#                 replacement's ADDED event's arrival, same process), and the
#                 controller's own latency_ms from its decision lines.
#   2. crashloop  KubeVirt's own restart vs kvrecover, one run each, side by
#                 side in one namespace: two VMs whose every start fails
#                 (guest failstart), one unprotected, one protected with the
#                 default trigger (crashLoopThreshold 3). From the first
#                 failure: KubeVirt's restart attempts
#                 (startFailure.consecutiveFailCount over time) and the time
#                 until the replacement's VMI is Running.
#   3. memory     controller RSS (VmRSS, VmHWM) with 10,000 VMs (runStrategy
#                 Halted, so KubeVirt makes no VMIs) and 10,000 pool members
#                 cached (5 s after the status is complete, and 11 s later,
#                 once the controller's heap check has run), and with
#                 nothing cached.
#
#   4. nodeloss   a host dies (tests/cluster/nodes kill, not fenced) under two
#                 protected VMs pinned to it, one under a policy with the
#                 default trigger (nodeLossSeconds 300), one with
#                 nodeLossSeconds BENCH_NODELOSS_SHORT (30). From the kill: the
#                 node NotReady, kvrecover's halt, the replacement created, its
#                 VMI Running (watch events' arrival times). The node is
#                 revived at the end. Takes about seven minutes.
#
# No burst part: a burst needs many guests failing at once, and
# `tests/cluster/guest crash` takes three kubectl processes per VMI, so 100
# crashes spread over many seconds on 2 cores and the figure would time the
# crash player, not the controller; 100 running VMs plus their replacements
# would also come close to what the three 8Gi KWOK nodes hold. (The old
# burst patched VMI phases itself, which only KubeVirt may do here.)
#
# Starts its own cluster (tests/cluster/up) and stops it at the end;
# BENCH_KUBECONFIG=FILE uses a running test cluster instead.
# BENCH_ONLY=latency|crashloop|memory|nodeloss runs one part. BENCH_N=N failures for
# latency (default 30); BENCH_LOOP_SECS=S the crash loop's window (default 150).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
only=${BENCH_ONLY:-}
bench_n=${BENCH_N:-30}
loop_secs=${BENCH_LOOP_SECS:-150}
nodeloss_short=${BENCH_NODELOSS_SHORT:-30}
nodeloss_node=${BENCH_NODELOSS_NODE:-node-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/kvr-bench.XXXXXX")
kc=""
own_cluster=0
made_ns="" # the namespaces this run made: deleted at exit, when a part dies too

note() { echo "# $*" >&2; }
die() { echo "bench-e2e: $*" >&2; exit 1; }
cleanup() {
  declare -F ctl_cleanup >/dev/null && ctl_cleanup
  # a node this run killed comes back, on a cluster it did not start too
  [ -n "${killed_node:-}" ] && tests/cluster/nodes "$kc" revive "$killed_node" >/dev/null 2>&1
  [ -n "${watch_pids:-}" ] && kill $watch_pids 2>/dev/null
  # shellcheck disable=SC2086
  [ "$own_cluster" = 0 ] && [ -n "$made_ns" ] &&
    kubectl --kubeconfig "$kc" delete namespace $made_ns --wait=false >/dev/null 2>&1
  [ "$own_cluster" = 1 ] && [ -n "$kc" ] && tests/cluster/down "$kc" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${BENCH_KUBECONFIG:-}" ]; then
  kc=$BENCH_KUBECONFIG
else
  tests/cluster/up >"$work/up.out" || die "tests/cluster/up failed"
  kc=$(tail -n 1 "$work/up.out"); own_cluster=1
fi
export KUBECONFIG=$kc
PATH=$(. tests/cluster/lib.sh && echo "$KVR_CACHE/k8s-$(cluster_modver k8s k8s.io/kubernetes)"):$PATH
KUBECACHEDIR=$(dirname "$kc")/kubectl-cache
export KUBECACHEDIR
export CTL_DIR=$work/ctl
mkdir -p "$CTL_DIR"
. tests/e2e/controller.sh
ctl_install || die "cannot install the CRD and RBAC"
ctl_kubeconfig >/dev/null || die "no kubeconfig for the controller"

# ---- raw API access (admin), for curl's watches and lists -------------------
server=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' |
  base64 -d >"$work/ca.crt"
kubectl config view --minify --raw -o jsonpath='{.users[0].user.client-certificate-data}' |
  base64 -d >"$work/admin.crt"
kubectl config view --minify --raw -o jsonpath='{.users[0].user.client-key-data}' |
  base64 -d >"$work/admin.key"
[ -s "$work/admin.crt" ] || die "the admin kubeconfig has no client certificate (local clusters only)"
api() { curl -sS --cacert "$work/ca.crt" --cert "$work/admin.crt" --key "$work/admin.key" "$@"; }
now() { echo "${EPOCHREALTIME/./}"; } # microseconds
# watch_to FILE PATH: streams a watch into FILE, each line prefixed with its
# arrival time in microseconds (python: bash reads a pipe a byte at a time,
# which would skew the times). Prints the pids to kill (curl and reader).
stamp='import sys, time
for line in sys.stdin:
    sys.stdout.write("%d %s" % (time.time() * 1e6, line))
    sys.stdout.flush()'
watch_to() {
  local fifo=$work/watch.$RANDOM
  mkfifo "$fifo"
  python3 -u -c "$stamp" <"$fifo" >"$1" 2>/dev/null &
  local reader=$!
  # curl itself, not the api function: a function would run in a subshell
  # of its own, and killing that would leave curl behind
  curl -sS --cacert "$work/ca.crt" --cert "$work/admin.crt" --key "$work/admin.key" -N \
    "$server$2" >"$fifo" 2>/dev/null &
  echo "$! $reader"
}
# events FILE JQ: the stamped watch lines of FILE as "TIME\tRESULT" for each
# event that JQ (applied to the event) yields.
events() {
  awk '{ t = $1; sub(/^[0-9]+ /, ""); print t "\t" $0 }' "$1" |
    jq -R -r "split(\"\\t\") as [\$t, \$j] | (\$j | fromjson? // empty) as \$e
      | (\$e | $2) as \$r | \"\\(\$t)\\t\\(\$r)\""
}
# pct FILE P: the P-th percentile (nearest rank) of the numbers in FILE.
pct() {
  sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a"; exit }
    r = int((p / 100) * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR; print v[r] }'
}

# ---- generated objects ---------------------------------------------------------
# Feature sets from a fixed vocabulary: member i and VM j are deterministic.
# Guests get 128Mi, as the e2e tests' do: a replacement must fit the test
# cluster's nodes (3 x 4 CPUs, 8Gi).
jq_features='
  def pick(a; i): a[i % (a | length)];
  def feats(i): {
    os: pick(["ubuntu-20.04", "ubuntu-22.04", "debian-12"]; i),
    language: pick(["nodejs", "python", "go", "java", "ruby", "php"]; (i / 3 | floor)),
    database: pick(["mysql", "postgresql", "mongodb", "redis", "mariadb", "sqlite"]; (i / 18 | floor)),
    webserver: pick(["nginx", "apache", "caddy", "haproxy"]; (i / 108 | floor)),
    cache: pick(["memcached", "redis", "varnish"]; (i * 7 + 1))};
  def yaml(f): [f | to_entries[] | "\(.key): \(.value)"] | join("\n");
  def flow(f): "{" + ([f | to_entries[] | "\(.key): \(.value)"] | join(", ")) + "}";
  def vmspec(name; f; app; strategy): {apiVersion: "kubevirt.io/v1", kind: "VirtualMachine",
    metadata: {name: name, labels: {app: app}},
    spec: {runStrategy: strategy, template: {
      metadata: {labels: {app: app}, annotations: {"kvrecover.io/features": flow(f)}},
      spec: {domain: {cpu: {cores: 2}, memory: {guest: "128Mi"},
                      devices: {disks: [{name: "rootdisk", disk: {bus: "virtio"}}]}},
             volumes: [{name: "rootdisk",
                        containerDisk: {image: "quay.io/containerdisks/ubuntu:22.04"}}]}}}};
'
# create_jsonl FILE: creates the objects of FILE (one JSON object a line)
# with four kubectl processes in parallel (kubectl creates a List's items one
# by one).
create_jsonl() {
  local part
  local -a pids=()
  split -n l/4 "$1" "$1.part."
  for part in "$1".part.*; do
    [ -s "$part" ] || continue # fewer lines than parts
    jq -s '{apiVersion: "v1", kind: "List", items: .}' "$part" | kubectl create -f - >/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}" # its own: a bare wait would wait for a running controller too
  rm -f "$1".part.*
}
# make_pool NS N: N pool ConfigMaps (kvrecover.io/pool=bench).
make_pool() {
  local ns=$1 n=$2
  jq -c -n --arg ns "$ns" --argjson n "$n" "$jq_features"'
    range($n) as $i | feats($i) as $f | {apiVersion: "v1", kind: "ConfigMap",
      metadata: {name: "m-\($i)", namespace: $ns, labels: {"kvrecover.io/pool": "bench"}},
      data: {features: yaml($f), resources: "cpu: 2\nmemory: 128Mi\ndisk: 20Gi",
             vm: (vmspec("m-\($i)"; $f; "bench"; "Always") | tojson)}}' >"$work/pool.jsonl"
  create_jsonl "$work/pool.jsonl"
}
# make_vms NS FROM N POOL STRATEGY: VirtualMachines v-FROM.. (label
# app=bench) with member ((j*7) % POOL)'s features (an exact match exists).
# Only VMs: KubeVirt makes their VMIs (none under Halted).
make_vms() {
  local ns=$1 from=$2 n=$3 pool=$4 strategy=$5
  jq -c -n --arg ns "$ns" --argjson from "$from" --argjson n "$n" --argjson pool "$pool" \
    --arg s "$strategy" "$jq_features"'range($from; $from + $n) as $j
      | vmspec("v-\($j)"; feats(($j * 7) % $pool); "bench"; $s) | .metadata.namespace = $ns' \
    >"$work/vms.jsonl"
  create_jsonl "$work/vms.jsonl"
}
# running NS: how many VMIs of NS are Running.
running() {
  api "$server/apis/kubevirt.io/v1/namespaces/$1/virtualmachineinstances" |
    jq '[.items[] | select(.status.phase == "Running")] | length'
}
# policy NS [SPEC-OVERRIDES-JSON]: RecoveryPolicy "bench" protecting app=bench.
policy() {
  kvr_policy "$1" bench "$(jq -cn --argjson o "${2:-{\}}" '{
    selector: {matchLabels: {app: "bench"}},
    poolSelector: {matchLabels: {"kvrecover.io/pool": "bench"}},
    weights: {os: 0.1, language: 0.3, database: 0.2, webserver: 0.1, cache: 0.1},
    threshold: 0.5, capture: false} * $o')"
}
count_replacements() { # NS
  api "$server/apis/kubevirt.io/v1/namespaces/$1/virtualmachines?labelSelector=kvrecover.io%2Freplaces" |
    jq '.items | length'
}
rss() { # PID -> "VmRSS VmHWM" in kB
  awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r, h }' "/proc/$1/status"
}
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; } # us, us -> s

echo "bench-e2e: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "controller: $("$CTL_BIN" --version 2>&1 | head -n 1)"
echo "VirtualMachines only; KubeVirt v1.8.4 makes the VMIs, tests/cluster/guest plays the failures"

# ---- 1. latency ------------------------------------------------------------------
if [ -z "$only" ] || [ "$only" = latency ]; then
  ns=bench-latency-$RANDOM
  kubectl create namespace "$ns" >/dev/null
  made_ns="$made_ns $ns"
  t=$(now); make_pool "$ns" 1000; note "1,000 pool members in $((($(now) - t) / 1000)) ms"
  t=$(now); make_vms "$ns" 0 "$bench_n" 1000 Always
  kvr_poll 180 eval '[ "$(running "$ns")" -ge "$bench_n" ]' ||
    die "only $(running "$ns") of $bench_n VMs run"
  note "$bench_n VMs created and Running in $((($(now) - t) / 1000)) ms"
  policy "$ns" '{"trigger": {"immediate": true}}'
  ctl_start lat --leader-elect=false --namespace "$ns" && ctl_wait_synced lat 120 ||
    die "the controller did not start"
  kvr_poll 60 kvr_ready_current "$ns" bench True || die "policy not Ready"
  kvr_poll 120 eval '[ "$(kvr_status "$ns" bench .status.poolSize)" = 1000 ]' ||
    note "poolSize is $(kvr_status "$ns" bench .status.poolSize), not 1000"
  # The floor: the three writes of a recovery made by themselves, no failure
  # in progress, each kind BENCH_N times on one kept-alive connection (curl
  # --next): a dry-run create, the halt's JSON patch, a create (Halted VMs
  # named ref-*, deleted after).
  jq -c -n "$jq_features"'vmspec("ref-0"; feats(0); "ref"; "Halted")' >"$work/ref.json"
  api -X POST -H 'Content-Type: application/json' --data-binary @"$work/ref.json" -o /dev/null \
    "$server/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines"
  refs=()
  for ((j = 1; j <= bench_n; j++)); do
    jq -c --arg n "ref-x$j" '.metadata.name = $n' "$work/ref.json" >"$work/ref-x$j.json"
    jq -c --arg n "ref-$j" '.metadata.name = $n' "$work/ref.json" >"$work/ref-$j.json"
    refs+=(--cacert "$work/ca.crt" --cert "$work/admin.crt" --key "$work/admin.key"
      -X POST -H 'Content-Type: application/json' --data-binary @"$work/ref-x$j.json"
      -o /dev/null -w 'dryRun %{http_code} %{time_total}\n'
      "$server/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines?dryRun=All" --next
      --cacert "$work/ca.crt" --cert "$work/admin.crt" --key "$work/admin.key"
      -X PATCH -H 'Content-Type: application/json-patch+json'
      --data-binary "[{\"op\":\"test\",\"path\":\"/metadata/deletionTimestamp\",\"value\":null},{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{\"kvrecover.io/ref\":\"$j\"}}]"
      -o /dev/null -w 'halt %{http_code} %{time_total}\n'
      "$server/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines/ref-0" --next
      --cacert "$work/ca.crt" --cert "$work/admin.crt" --key "$work/admin.key"
      -X POST -H 'Content-Type: application/json' --data-binary @"$work/ref-$j.json"
      -o /dev/null -w 'create %{http_code} %{time_total}\n'
      "$server/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines" --next)
  done
  unset 'refs[-1]' # the last --next
  curl -sS "${refs[@]}" >"$work/ref.times"
  kubectl -n "$ns" delete vm -l app=ref --wait=false >/dev/null
  wv=$(watch_to "$work/lat-vmi.w" "/apis/kubevirt.io/v1/namespaces/$ns/virtualmachineinstances?watch=1")
  wr=$(watch_to "$work/lat-vm.w" "/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines?watch=1&labelSelector=kvrecover.io%2Freplaces")
  watch_pids="$wv $wr"
  sleep 1
  for ((j = 0; j < bench_n; j++)); do
    kvr_guest crash "$ns" "v-$j" || { note "could not crash v-$j"; continue; }
    # closed loop: the next failure once this one is replaced (10 s at most)
    for ((w = 0; w < 1000; w++)); do
      grep -q "\"kvrecover.io/replaces\":\"v-$j\"" "$work/lat-vm.w" && break
      sleep 0.01
    done
  done
  sleep 1
  kill $wv $wr 2>/dev/null; sleep 0.5; watch_pids= # not our children: no wait
  # the crash's Failed event (first per uid) -> the replacement's ADDED event
  events "$work/lat-vmi.w" 'select(.type == "MODIFIED" and .object.status.phase == "Failed")
    | .object.metadata.uid' | awk -F'\t' '{ print $2, $1 }' | sort -u -k1,1 >"$work/lat.failed"
  events "$work/lat-vm.w" 'select(.type == "ADDED")
    | .object.metadata.annotations["kvrecover.io/failed-uid"]' |
    awk -F'\t' '{ print $2, $1 }' | sort -k1,1 >"$work/lat.added"
  join "$work/lat.failed" "$work/lat.added" | awk '{ printf "%.3f\n", ($3 - $2) / 1000 }' \
    >"$work/lat.client"
  ctl_decisions lat 'select(.decision == "Recovered") | .latency_ms' >"$work/lat.ctl"
  n=$(grep -c . "$work/lat.client")
  echo
  echo "latency: guest crash -> replacement created, trigger.immediate, 1,000-member pool,"
  echo "         $bench_n VMs (runStrategy Always) crashed one at a time"
  printf '  %-44s n=%-4s p50 %8s ms   p99 %8s ms   max %8s ms\n' \
    "client (Failed event -> replacement ADDED)" "$n" "$(pct "$work/lat.client" 50)" \
    "$(pct "$work/lat.client" 99)" "$(pct "$work/lat.client" 100)"
  printf '  %-44s n=%-4s p50 %8s ms   p99 %8s ms   max %8s ms\n' \
    "controller (decision latency_ms)" "$(grep -c . "$work/lat.ctl")" \
    "$(pct "$work/lat.ctl" 50)" "$(pct "$work/lat.ctl" 99)" "$(pct "$work/lat.ctl" 100)"
  # where the controller's time went (its decision's steps_ms)
  for step in queued ranked dryRun halt create; do
    ctl_decisions lat "select(.decision == \"Recovered\") | .steps_ms.$step // empty" \
      >"$work/lat.$step"
    printf '    %-42s n=%-4s p50 %8s ms   p99 %8s ms   max %8s ms\n' "step $step" \
      "$(grep -c . "$work/lat.$step")" "$(pct "$work/lat.$step" 50)" \
      "$(pct "$work/lat.$step" 99)" "$(pct "$work/lat.$step" 100)"
  done
  echo "  replacements: $(count_replacements "$ns") for $bench_n crashes"
  echo "  the floor: each write by itself, no failure in progress (admin, curl, kept alive)"
  for step in dryRun halt create; do
    awk -v s="$step" '$1 == s && $2 ~ /^2/ { printf "%.1f\n", $3 * 1000 }' "$work/ref.times" \
      >"$work/ref.$step"
    printf '    %-42s n=%-4s p50 %8s ms   p99 %8s ms   max %8s ms\n' "$step alone" \
      "$(grep -c . "$work/ref.$step")" "$(pct "$work/ref.$step" 50)" \
      "$(pct "$work/ref.$step" 99)" "$(pct "$work/ref.$step" 100)"
  done
  ctl_stop lat >/dev/null
  kubectl delete namespace "$ns" --wait=false >/dev/null
fi

# ---- 2. crash loop: KubeVirt's own restart vs kvrecover ------------------------------
if [ -z "$only" ] || [ "$only" = crashloop ]; then
  ns=bench-loop-$RANDOM
  kubectl create namespace "$ns" >/dev/null
  made_ns="$made_ns $ns"
  make_pool "$ns" 100
  policy "$ns" # the default trigger: crashLoopThreshold 3
  ctl_start loop --leader-elect=false --namespace "$ns" && ctl_wait_synced loop 120 ||
    die "the controller did not start"
  kvr_poll 60 kvr_ready_current "$ns" bench True || die "policy not Ready"
  # Two VMs with the same features and a broken start: "alone" is not
  # protected (label app=alone), v-0 is.
  kvr_guest failstart "$ns" alone on && kvr_guest failstart "$ns" v-0 on ||
    die "guest failstart failed"
  wv=$(watch_to "$work/loop-vmi.w" "/apis/kubevirt.io/v1/namespaces/$ns/virtualmachineinstances?watch=1")
  wm=$(watch_to "$work/loop-vm.w" "/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines?watch=1")
  watch_pids="$wv $wm"
  sleep 1
  t0=$(now)
  jq -c -n --arg ns "$ns" "$jq_features"'
    (vmspec("alone"; feats(7); "alone"; "Always"), vmspec("v-0"; feats(7); "bench"; "Always"))
    | .metadata.namespace = $ns' >"$work/loop.jsonl"
  create_jsonl "$work/loop.jsonl"
  # the window, and beyond it (up to twice) until the replacement runs
  # the replacement's VMI carries the original's template labels, not
  # kvrecover.io/replaces: found by the replacement VM's name
  rep_running() {
    local r
    r=$(api "$server/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines?labelSelector=kvrecover.io%2Freplaces%3Dv-0" |
          jq -r '.items[0].metadata.name // empty')
    [ -n "$r" ] && [ "$(kvr_vmi_phase "$ns" "$r")" = Running ]
  }
  while :; do
    el=$((($(now) - t0) / 1000000))
    { [ "$el" -ge "$loop_secs" ] && rep_running; } || [ "$el" -ge $((2 * loop_secs)) ] && break
    sleep 1
  done
  t1=$(now)
  kill $wv $wm 2>/dev/null; sleep 0.5; watch_pids= # not our children: no wait
  events "$work/loop-vmi.w" 'select(.object.status.phase == "Failed")
    | .object.metadata.name' | awk -F'\t' '!s[$2]++ { print $2, $1 }' >"$work/loop.failed"
  events "$work/loop-vm.w" '.object.metadata.name + " "
    + (.object.status.startFailure.consecutiveFailCount // 0 | tostring)' |
    awk -F'\t' '!s[$2]++ { print $2, $1 }' >"$work/loop.counts"
  events "$work/loop-vm.w" 'select(.type == "ADDED" and .object.metadata.labels["kvrecover.io/replaces"] == "v-0")
    | .object.metadata.name' | head -n 1 >"$work/loop.rep"
  rep=$(cut -f2 "$work/loop.rep"); trep=$(cut -f1 "$work/loop.rep")
  trun=""
  [ -n "$rep" ] && trun=$(events "$work/loop-vmi.w" "select(.object.metadata.name == \"$rep\"
    and .object.status.phase == \"Running\") | 1" | head -n 1 | cut -f1)
  # loop_line VM: KubeVirt's attempts for VM, from its first failure
  loop_line() {
    local f
    f=$(awk -v v="$1" '$1 == v { print $2 }' "$work/loop.failed")
    [ -n "$f" ] || { echo "no failure seen"; return; }
    awk -v v="$1" -v f="$f" '$1 == v && $2 > 0 { printf "%s%d at +%.1f s", sep, $2, ($3 - f) / 1e6; sep = ", " }' \
      "$work/loop.counts"
  }
  fa=$(awk '$1 == "alone" { print $2 }' "$work/loop.failed")
  fv=$(awk '$1 == "v-0" { print $2 }' "$work/loop.failed")
  arun=$(events "$work/loop-vmi.w" 'select(.object.metadata.name == "alone"
    and .object.status.phase == "Running") | 1' | head -n 1 | cut -f1)
  echo
  echo "crash loop: every start fails (guest failstart), both VMs created together, watched"
  echo "            for $(ms "$t0" "$t1") s; times from each VM's first failure (its VMI's Failed event)"
  printf '  %-30s consecutiveFailCount %s\n' "KubeVirt alone (unprotected):" "$(loop_line alone)"
  printf '  %-30s %s\n' "" "$([ -n "$arun" ] && echo "a Running VMI at +$(ms "$fa" "$arun") s" ||
    echo "no Running VMI within $(ms "${fa:-$t0}" "$t1") s")"
  printf '  %-30s consecutiveFailCount %s\n' "kvrecover (crashLoopThreshold 3):" "$(loop_line v-0)"
  if [ -n "$rep" ] && [ -n "$fv" ]; then
    printf '  %-30s replacement %s created at +%s s, its VMI Running at +%s s\n' "" "$rep" \
      "$(ms "$fv" "$trep")" "$([ -n "$trun" ] && ms "$fv" "$trun" || echo "(not within the window)")"
  else
    printf '  %-30s no replacement within %s s\n' "" "$(ms "$t0" "$t1")"
  fi
  ctl_decisions loop 'select(.decision == "Recovered") | "  controller: trigger \(.trigger), signal \(.signal), latency_ms \(.latency_ms)"' |
    jq -r . | head -n 1
  ctl_stop loop >/dev/null
  kvr_guest failstart "$ns" alone off; kvr_guest failstart "$ns" v-0 off
  kubectl delete namespace "$ns" --wait=false >/dev/null
fi
# ---- 3. memory ---------------------------------------------------------------------
if [ -z "$only" ] || [ "$only" = memory ]; then
  echo
  echo "memory: controller RSS (one policy protecting every VM, capture off)"
  ns=bench-memory-$RANDOM
  kubectl create namespace "$ns" >/dev/null
  made_ns="$made_ns $ns"
  policy "$ns"
  ctl_start mem0 --leader-elect=false --namespace "$ns" && ctl_wait_synced mem0 60 ||
    die "the controller did not start"
  sleep 2
  read -r r0 h0 < <(rss "${CTL_PID[mem0]}")
  ctl_stop mem0 >/dev/null
  t=$(now); make_pool "$ns" 10000; note "10,000 pool members in $((($(now) - t) / 1000000)) s"
  # 10,000 VMs, runStrategy Halted: KubeVirt makes no VMIs for them, so the
  # controller caches 10,000 VMs (and no VMI); a running VM would need room
  # the three KWOK nodes do not have.
  t=$(now)
  make_vms "$ns" 0 10000 10000 Halted
  note "10,000 VMs (Halted) in $((($(now) - t) / 1000000)) s"
  t=$(now)
  ctl_start mem --leader-elect=false --namespace "$ns" && ctl_wait_synced mem 300 ||
    die "the controller did not start"
  synced_ms=$((($(now) - t) / 1000))
  kvr_poll 300 eval '[ "$(kvr_status "$ns" bench .status.poolSize)" = 10000 ]' ||
    note "status: protected $(kvr_status "$ns" bench .status.protected), poolSize $(kvr_status "$ns" bench .status.poolSize)"
  status_ms=$((($(now) - t) / 1000))
  sleep 5
  read -r r1 h1 < <(rss "${CTL_PID[mem]}")
  # and once the heap check after those passes has run (every 10 s,
  # MANAGER_HEAP_TRIM_MS): what the controller keeps while nothing happens
  sleep 11
  read -r r2 h2 < <(rss "${CTL_PID[mem]}")
  printf '  %-44s VmRSS %6.1f MB   VmHWM %6.1f MB\n' "nothing cached:" \
    "$(awk -v k="$r0" 'BEGIN { print k / 1024 }')" "$(awk -v k="$h0" 'BEGIN { print k / 1024 }')"
  printf '  %-44s VmRSS %6.1f MB   VmHWM %6.1f MB\n' "10,000 VMs (Halted) + 10,000 members cached:" \
    "$(awk -v k="$r1" 'BEGIN { print k / 1024 }')" "$(awk -v k="$h1" 'BEGIN { print k / 1024 }')"
  printf '  %-44s VmRSS %6.1f MB   VmHWM %6.1f MB\n' "the same, 11 s later (after the heap check):" \
    "$(awk -v k="$r2" 'BEGIN { print k / 1024 }')" "$(awk -v k="$h2" 'BEGIN { print k / 1024 }')"
  printf '  %-44s %s bytes per cached object (VM or member)\n' "difference / 20,000:" \
    "$(( (r2 - r0) * 1024 / 20000 ))"
  printf '  %-44s caches synced %.1f s after start, status complete %.1f s\n' "cold start:" \
    "$(awk -v m="$synced_ms" 'BEGIN { print m / 1000 }')" "$(awk -v m="$status_ms" 'BEGIN { print m / 1000 }')"
  ctl_stop mem >/dev/null
  kubectl delete namespace "$ns" --wait=false >/dev/null
fi

# ---- 4. node loss: a host dies, not fenced ---------------------------------------------
if [ -z "$only" ] || [ "$only" = nodeloss ]; then
  ns=bench-nodeloss-$RANDOM
  node=$nodeloss_node
  kubectl create namespace "$ns" >/dev/null
  made_ns="$made_ns $ns"
  make_pool "$ns" 100
  # two policies, one VM each, both VMs pinned to the node that dies; the
  # replacements (built from pool members) may run anywhere
  for p in default short; do
    trig='{}'
    [ "$p" = short ] && trig="{\"nodeLossSeconds\": $nodeloss_short}"
    kvr_policy "$ns" "$p" "$(jq -cn --arg p "$p" --argjson t "$trig" '{
      selector: {matchLabels: {app: ("loss-" + $p)}},
      poolSelector: {matchLabels: {"kvrecover.io/pool": "bench"}},
      weights: {os: 0.1, language: 0.3, database: 0.2, webserver: 0.1, cache: 0.1},
      threshold: 0.5, capture: false, trigger: $t}')"
  done
  jq -c -n --arg ns "$ns" --arg node "$node" "$jq_features"'
    (["default", 7], ["short", 14]) as [$p, $m]
    | vmspec("loss-\($p)"; feats($m); "loss-\($p)"; "Always") | .metadata.namespace = $ns
    | .spec.template.spec.nodeSelector = {"kubernetes.io/hostname": $node}' >"$work/loss.jsonl"
  create_jsonl "$work/loss.jsonl"
  for v in loss-default loss-short; do
    kvr_poll 120 eval '[ "$(kvr_vmi_phase "$ns" "$v")" = Running ]' || die "$v does not run"
  done
  ctl_start loss --leader-elect=false --namespace "$ns" && ctl_wait_synced loss 120 ||
    die "the controller did not start"
  for p in default short; do
    kvr_poll 60 kvr_ready_current "$ns" "$p" True || die "policy $p not Ready"
  done
  wn=$(watch_to "$work/loss-node.w" "/api/v1/nodes?watch=1&fieldSelector=metadata.name%3D$node")
  wm=$(watch_to "$work/loss-vm.w" "/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines?watch=1")
  wi=$(watch_to "$work/loss-vmi.w" "/apis/kubevirt.io/v1/namespaces/$ns/virtualmachineinstances?watch=1")
  watch_pids="$wn $wm $wi"
  sleep 1
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  t0=$(now)
  kvr_nodes kill "$node" >/dev/null || die "tests/cluster/nodes kill $node failed"
  killed_node=$node
  # until both replacements run, or the default's trigger is long past
  rep_of() { # VM -> its replacement's name, from the VM watch
    events "$work/loss-vm.w" "select(.type == \"ADDED\" and
      .object.metadata.labels[\"kvrecover.io/replaces\"] == \"$1\") | .object.metadata.name" |
      head -n 1 | cut -f2
  }
  runs() { local r; r=$(rep_of "$1"); [ -n "$r" ] && [ "$(kvr_vmi_phase "$ns" "$r")" = Running ]; }
  kvr_poll 600 eval 'runs loss-default && runs loss-short' ||
    note "not both replacements Running within 600 s of the kill"
  t1=$(now)
  load1=$(cut -d' ' -f1-3 /proc/loadavg)
  sleep 1
  kill $wn $wm $wi 2>/dev/null; sleep 0.5; watch_pids= # not our children: no wait
  notready=$(events "$work/loss-node.w" '[.object.status.conditions[]? | select(.type == "Ready")][0].status
    | select(. != "True")' | head -n 1 | cut -f1)
  at() { [ -n "$1" ] && echo "+$(ms "$t0" "$1") s" || echo "—"; }
  echo
  echo "node loss: $node killed (not fenced) under loss-default (nodeLossSeconds 300, the"
  echo "           default) and loss-short (nodeLossSeconds $nodeloss_short); times from the kill"
  echo "           (watch events' arrival); load average $load0 at the kill, $load1 at the end"
  printf '  %-34s %s\n' "node $node NotReady (Ready != True)" "$(at "$notready")"
  for v in loss-default loss-short; do
    halt=$(events "$work/loss-vm.w" "select(.object.metadata.name == \"$v\"
      and .object.spec.runStrategy == \"Halted\") | 1" | head -n 1 | cut -f1)
    r=$(rep_of "$v")
    created=$(events "$work/loss-vm.w" "select(.type == \"ADDED\"
      and .object.metadata.name == \"$r\") | 1" | head -n 1 | cut -f1)
    running=""
    [ -n "$r" ] && running=$(events "$work/loss-vmi.w" "select(.object.metadata.name == \"$r\"
      and .object.status.phase == \"Running\") | 1" | head -n 1 | cut -f1)
    printf '  %-34s halted %-10s replacement created %-10s its VMI Running %s\n' "$v:" \
      "$(at "$halt")" "$(at "$created")" "$(at "$running")"
  done
  ctl_decisions loss 'select(.decision == "Recovered") | "  controller: \(.vm // .vmi) trigger \(.trigger), latency_ms \(.latency_ms)"' |
    jq -r .
  printf '  %-34s %s s\n' "watched for" "$(ms "$t0" "$t1")"
  ctl_stop loss >/dev/null
  kvr_nodes revive "$node" >/dev/null && killed_node= || note "could not revive $node"
  kubectl delete namespace "$ns" --wait=false >/dev/null
fi
