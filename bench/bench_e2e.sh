#!/usr/bin/env bash
# `make bench-e2e`: the controller against a real kube-apiserver. A benchmark,
# not a test: it prints figures (bench/README.md records them) and fails only
# when something breaks outright.
#
#   1. latency  failure -> replacement created, p50/p99 over 200 failures,
#               one at a time, with a 1,000-member pool. Two clocks: a client
#               watching VMIs and VMs (the Failed event's arrival to the
#               replacement's ADDED event's arrival, same process), and the
#               controller's own latency_ms from its decision lines.
#   2. burst    1,000 VMIs fail at once (1,000 PATCHes, 64 in flight, sent while
#               the controller is frozen with SIGSTOP; the clock starts at its
#               SIGCONT): seconds until all 1,000 replacements exist, and
#               duplicates (must be 0);
#               beside the API server's raw rate for creating 1,000 of the
#               same VMs, 64 in flight, in the same run. Run with the
#               controller's default flags and again unthrottled.
#   3. memory   controller RSS (VmRSS, VmHWM) with 10,000 VMIs and 10,000 pool
#               members cached (and, for reference, with nothing cached).
#
# Starts its own control plane (tests/cluster/up) and stops it at the end;
# BENCH_KUBECONFIG=FILE uses a running local cluster instead.
# BENCH_ONLY=latency|burst|memory runs one part.
# BENCH_WORKERS=N sets --workers for the unthrottled burst (default 16).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
only=${BENCH_ONLY:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/kvr-bench.XXXXXX")
kc=""
own_cluster=0

note() { echo "# $*" >&2; }
die() { echo "bench-e2e: $*" >&2; exit 1; }
cleanup() {
  declare -F ctl_cleanup >/dev/null && ctl_cleanup
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

# ---- raw API access (admin), for curl ----------------------------------------
server=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' |
  base64 -d >"$work/ca.crt"
kubectl config view --minify --raw -o jsonpath='{.users[0].user.client-certificate-data}' |
  base64 -d >"$work/admin.crt"
kubectl config view --minify --raw -o jsonpath='{.users[0].user.client-key-data}' |
  base64 -d >"$work/admin.key"
[ -s "$work/admin.crt" ] || die "the admin kubeconfig has no client certificate (local clusters only)"
api() { curl -sS --cacert "$work/ca.crt" --cert "$work/admin.crt" --key "$work/admin.key" "$@"; }
# api_parallel CONFIG CURL-ARGS...: the URLs of a curl config file, each with
# the same method and body, 64 in flight.
api_parallel() {
  local cfg=$1; shift
  curl -sS --no-progress-meter --parallel --parallel-max 64 --cacert "$work/ca.crt" --cert "$work/admin.crt" \
    --key "$work/admin.key" "$@" --config "$cfg"
}
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
  api -N "$server$2" >"$fifo" 2>/dev/null &
  echo "$! $reader"
}
# pct FILE P: the P-th percentile (nearest rank) of the numbers in FILE.
pct() {
  sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a"; exit }
    r = int((p / 100) * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR; print v[r] }'
}

# ---- generated objects ---------------------------------------------------------
# Feature sets from a fixed vocabulary: member i and VM j are deterministic.
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
  def vmspec(name; f): {apiVersion: "kubevirt.io/v1", kind: "VirtualMachine",
    metadata: {name: name, labels: {app: "bench"}},
    spec: {runStrategy: "Always", template: {
      metadata: {labels: {app: "bench"}, annotations: {"kvrecover.io/features": flow(f)}},
      spec: {domain: {cpu: {cores: 2}, memory: {guest: "2Gi"},
                      devices: {disks: [{name: "rootdisk", disk: {bus: "virtio"}}]}},
             volumes: [{name: "rootdisk",
                        containerDisk: {image: "quay.io/containerdisks/ubuntu:22.04"}}]}}}};
'
# create_jsonl FILE: creates the objects of FILE (one JSON object a line)
# with four kubectl processes in parallel (kubectl creates a List's items one
# by one).
create_jsonl() {
  local part
  split -n l/4 "$1" "$1.part."
  for part in "$1".part.*; do
    jq -s '{apiVersion: "v1", kind: "List", items: .}' "$part" | kubectl create -f - >/dev/null &
  done
  wait
  rm -f "$1".part.*
}
# pool NS N: N pool ConfigMaps (kvrecover.io/pool=bench), created 4 ways parallel.
make_pool() {
  local ns=$1 n=$2
  jq -c -n --arg ns "$ns" --argjson n "$n" "$jq_features"'
    range($n) as $i | feats($i) as $f | {apiVersion: "v1", kind: "ConfigMap",
      metadata: {name: "m-\($i)", namespace: $ns, labels: {"kvrecover.io/pool": "bench"}},
      data: {features: yaml($f), resources: "cpu: 2\nmemory: 2Gi\ndisk: 20Gi",
             vm: (vmspec("m-\($i)"; $f) | tojson)}}' >"$work/pool.jsonl"
  create_jsonl "$work/pool.jsonl"
}
# vms NS FROM N: VMs v-FROM.. with member ((j*7) % POOL)'s features (an exact
# match exists), and their VMIs, Running, as virt-controller and
# virt-handler would make them (the VMIs carry status: no subresource).
make_vms() {
  local ns=$1 from=$2 n=$3 pool=$4
  jq -c -n --arg ns "$ns" --argjson from "$from" --argjson n "$n" --argjson pool "$pool" \
    "$jq_features"'range($from; $from + $n) as $j | vmspec("v-\($j)"; feats(($j * 7) % $pool))
      | .metadata.namespace = $ns' >"$work/vms.jsonl"
  create_jsonl "$work/vms.jsonl"
  api "$server/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines?labelSelector=app%3Dbench" |
    jq -c '.items[] | select(.metadata.labels["kvrecover.io/replaces"] == null)
      | {apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance",
         metadata: {name: .metadata.name, namespace: .metadata.namespace,
                    labels: .spec.template.metadata.labels,
                    annotations: .spec.template.metadata.annotations,
                    ownerReferences: [{apiVersion: "kubevirt.io/v1", kind: "VirtualMachine",
                      name: .metadata.name, uid: .metadata.uid, controller: true,
                      blockOwnerDeletion: true}]},
         spec: .spec.template.spec, status: {phase: "Running"}}' >"$work/vmis.jsonl"
  create_jsonl "$work/vmis.jsonl"
}
policy() { # NS
  kvr_policy "$1" bench '{"selector": {"matchLabels": {"app": "bench"}},
    "poolSelector": {"matchLabels": {"kvrecover.io/pool": "bench"}},
    "weights": {"os": 0.1, "language": 0.3, "database": 0.2, "webserver": 0.1, "cache": 0.1},
    "threshold": 0.5, "capture": false}'
}
count_replacements() { # NS
  api "$server/apis/kubevirt.io/v1/namespaces/$1/virtualmachines?labelSelector=kvrecover.io%2Freplaces" |
    jq '.items | length'
}
rss() { # PID -> "VmRSS VmHWM" in kB
  awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r, h }' "/proc/$1/status"
}

echo "bench-e2e: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "controller: $("$CTL_BIN" --version 2>&1 | head -n 1)"

# ---- 1. latency ------------------------------------------------------------------
if [ -z "$only" ] || [ "$only" = latency ]; then
  ns=bench-latency-$RANDOM
  kubectl create namespace "$ns" >/dev/null
  t=$(now); make_pool "$ns" 1000; note "1,000 pool members in $((($(now) - t) / 1000)) ms"
  make_vms "$ns" 0 200 1000
  policy "$ns"
  ctl_start lat --leader-elect=false --namespace "$ns" && ctl_wait_synced lat 120 ||
    die "the controller did not start"
  kvr_poll 60 kvr_ready_current "$ns" bench True || die "policy not Ready"
  kvr_poll 120 eval '[ "$(kvr_status "$ns" bench .status.poolSize)" = 1000 ]' ||
    note "poolSize is $(kvr_status "$ns" bench .status.poolSize), not 1000"
  wv=$(watch_to "$work/lat-vmi.w" "/apis/kubevirt.io/v1/namespaces/$ns/virtualmachineinstances?watch=1")
  wr=$(watch_to "$work/lat-vm.w" "/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines?watch=1&labelSelector=kvrecover.io%2Freplaces")
  sleep 1
  : >"$work/lat.client"
  for ((j = 0; j < 200; j++)); do
    api -o /dev/null -X PATCH -H 'Content-Type: application/merge-patch+json' \
      -d '{"status":{"phase":"Failed"}}' \
      "$server/apis/kubevirt.io/v1/namespaces/$ns/virtualmachineinstances/v-$j"
    # closed loop: the next failure once this one is replaced (2 s at most)
    for ((w = 0; w < 400; w++)); do
      grep -q "\"kvrecover.io/replaces\":\"v-$j\"" "$work/lat-vm.w" && break
      sleep 0.005
    done
  done
  sleep 1
  kill $wv $wr 2>/dev/null; wait $wv $wr 2>/dev/null
  # failure seen (first MODIFIED with phase Failed per uid) -> replacement ADDED
  awk '{ t = $1; sub(/^[0-9]+ /, ""); print t "\t" $0 }' "$work/lat-vmi.w" |
    jq -R -r 'split("\t") as [$t, $j] | ($j | fromjson? // empty) as $e
      | select($e.type == "MODIFIED" and $e.object.status.phase == "Failed")
      | "\($e.object.metadata.uid) \($t)"' | sort -u -k1,1 >"$work/lat.failed"
  awk '{ t = $1; sub(/^[0-9]+ /, ""); print t "\t" $0 }' "$work/lat-vm.w" |
    jq -R -r 'split("\t") as [$t, $j] | ($j | fromjson? // empty) as $e
      | select($e.type == "ADDED")
      | "\($e.object.metadata.annotations["kvrecover.io/failed-uid"]) \($t)"' |
    sort -k1,1 >"$work/lat.added"
  join "$work/lat.failed" "$work/lat.added" | awk '{ printf "%.3f\n", ($3 - $2) / 1000 }' \
    >"$work/lat.client"
  ctl_decisions lat 'select(.decision == "Recovered") | .latency_ms' >"$work/lat.ctl"
  n=$(grep -c . "$work/lat.client")
  echo
  echo "latency: failure -> replacement created, 1,000-member pool, 200 failures one at a time"
  printf '  %-44s n=%-4s p50 %8s ms   p99 %8s ms   max %8s ms\n' \
    "client (Failed event -> replacement ADDED)" "$n" "$(pct "$work/lat.client" 50)" \
    "$(pct "$work/lat.client" 99)" "$(pct "$work/lat.client" 100)"
  printf '  %-44s n=%-4s p50 %8s ms   p99 %8s ms   max %8s ms\n' \
    "controller (decision latency_ms)" "$(grep -c . "$work/lat.ctl")" \
    "$(pct "$work/lat.ctl" 50)" "$(pct "$work/lat.ctl" 99)" "$(pct "$work/lat.ctl" 100)"
  echo "  replacements: $(count_replacements "$ns") for 200 failures"
  ctl_stop lat >/dev/null
  kubectl delete namespace "$ns" --wait=false >/dev/null
fi

# ---- 2. burst ----------------------------------------------------------------------
# burst LABEL CONTROLLER-ARGS...
burst() {
  local label=$1; shift
  local ns=bench-burst-$label-$RANDOM t0 t1 tl n dup pid
  kubectl create namespace "$ns" >/dev/null
  make_pool "$ns" 1000
  make_vms "$ns" 0 1000 1000
  policy "$ns"
  ctl_start "burst-$label" --leader-elect=false --namespace "$ns" "$@" &&
    ctl_wait_synced "burst-$label" 120 || die "the controller did not start"
  kvr_poll 60 kvr_ready_current "$ns" bench True || die "policy not Ready"
  kvr_poll 120 eval '[ "$(kvr_status "$ns" bench .status.protected)" = 1000 ]' ||
    note "protected is $(kvr_status "$ns" bench .status.protected), not 1000"
  pid=$(watch_to "$work/burst-$label.w" "/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines?watch=1&labelSelector=kvrecover.io%2Freplaces")
  sleep 1
  for ((j = 0; j < 1000; j++)); do
    printf 'url = "%s/apis/kubevirt.io/v1/namespaces/%s/virtualmachineinstances/v-%d"\noutput = "/dev/null"\n' \
      "$server" "$ns" "$j"
  done >"$work/burst.cfg"
  # The controller is frozen while the 1,000 PATCHes go in (the API server
  # takes seconds for them), so that all the failures are there at once when
  # it resumes; the clock starts then.
  kill -STOP "${CTL_PID[burst-$label]}"
  t1=$(now)
  api_parallel "$work/burst.cfg" -X PATCH -H 'Content-Type: application/merge-patch+json' \
    -d '{"status":{"phase":"Failed"}}'
  t0=$(now)
  kill -CONT "${CTL_PID[burst-$label]}"
  for ((w = 0; w < 1200; w++)); do
    [ "$(grep -c '^[0-9]* {"type":"ADDED"' "$work/burst-$label.w")" -ge 1000 ] && break
    sleep 0.1
  done
  tl=$(grep '^[0-9]* {"type":"ADDED"' "$work/burst-$label.w" | sed -n '1000p' | cut -d' ' -f1)
  kill $pid 2>/dev/null; wait $pid 2>/dev/null
  sleep 2
  n=$(count_replacements "$ns")
  dup=$(api "$server/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines?labelSelector=kvrecover.io%2Freplaces" |
        jq '[.items[].metadata.annotations["kvrecover.io/failed-uid"]] | length - (unique | length)')
  local secs rate
  if [ -n "$tl" ]; then
    secs=$(awk -v a="$t0" -v b="$tl" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
    rate=$(awk -v s="$secs" 'BEGIN { printf "%.0f", 1000 / s }')
  else secs="n/a (only $n within 120 s)"; rate=0; fi
  printf '  %-34s %s s for 1,000 (%s replacements/s); %s replacements, %s duplicates\n' \
    "controller, $label:" "$secs" "$rate" "$n" "$dup"
  note "($label: the 1,000 PATCHes took $(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.2f", (b - a) / 1e6 }') s with the controller frozen)"
  echo "$rate" >"$work/burst-$label.rate"
  ctl_stop "burst-$label" >/dev/null
  kubectl delete namespace "$ns" --wait=false >/dev/null
}
# raw LABEL: the API server's raw rate, 1,000 creates of the same VM, 64 in
# flight, in a namespace of its own; sets raw_rate.
raw() {
  local ns=bench-raw-$1-$RANDOM t0 t1 n raw_secs
  kubectl create namespace "$ns" >/dev/null
  jq -c -n "$jq_features"'vmspec("x"; feats(1)) | del(.metadata.name)
    | .metadata.generateName = "raw-"' >"$work/raw.json"
  for ((j = 0; j < 1000; j++)); do
    printf 'url = "%s/apis/kubevirt.io/v1/namespaces/%s/virtualmachines"\noutput = "/dev/null"\n' \
      "$server" "$ns"
  done >"$work/raw.cfg"
  t0=$(now)
  api_parallel "$work/raw.cfg" -X POST -H 'Content-Type: application/json' -d "@$work/raw.json"
  t1=$(now)
  n=$(api "$server/apis/kubevirt.io/v1/namespaces/$ns/virtualmachines" | jq '.items | length')
  raw_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
  raw_rate=$(awk -v s="$raw_secs" 'BEGIN { printf "%.0f", 1000 / s }')
  printf '  %-34s %s s for 1,000 (%s VMs/s); %s created\n' "API server raw (curl, 64 in flight):" \
    "$raw_secs" "$raw_rate" "$n"
  kubectl delete namespace "$ns" --wait=false >/dev/null
}
if [ -z "$only" ] || [ "$only" = burst ]; then
  echo
  echo "burst: 1,000 VMIs fail at once (1,000 PATCHes, 64 in flight), 1,000-member pool"
  # Each controller run right after a raw measurement: the machine's load
  # changes from minute to minute.
  for label in defaults unthrottled; do
    raw "$label"
    if [ "$label" = defaults ]; then burst defaults
    else burst unthrottled --qps -1 --burst 1000 --workers "${BENCH_WORKERS:-16}"; fi
    r=$(cat "$work/burst-$label.rate" 2>/dev/null || echo 0)
    printf '  %-34s %s %% of the raw rate measured just before\n' "=> $label:" \
      "$(awk -v a="$r" -v b="$raw_rate" 'BEGIN { printf "%.0f", 100 * a / b }')"
  done
fi

# ---- 3. memory ---------------------------------------------------------------------
if [ -z "$only" ] || [ "$only" = memory ]; then
  echo
  echo "memory: controller RSS (one policy protecting every VMI, capture off)"
  ns=bench-memory-$RANDOM
  kubectl create namespace "$ns" >/dev/null
  policy "$ns"
  ctl_start mem0 --leader-elect=false --namespace "$ns" && ctl_wait_synced mem0 60 ||
    die "the controller did not start"
  sleep 2
  read -r r0 h0 < <(rss "${CTL_PID[mem0]}")
  ctl_stop mem0 >/dev/null
  t=$(now); make_pool "$ns" 10000; note "10,000 pool members in $((($(now) - t) / 1000000)) s"
  # 10,000 bare VMIs (no VM: KubeVirt allows them), protected by the policy.
  jq -c -n --arg ns "$ns" "$jq_features"'range(10000) as $j | vmspec("i-\($j)"; feats(($j * 7) % 10000))
    | {apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance",
       metadata: {name: .metadata.name, namespace: $ns, labels: .spec.template.metadata.labels,
                  annotations: .spec.template.metadata.annotations},
       spec: .spec.template.spec, status: {phase: "Running"}}' >"$work/vmis.jsonl"
  t=$(now)
  create_jsonl "$work/vmis.jsonl"
  note "10,000 VMIs in $((($(now) - t) / 1000000)) s"
  t=$(now)
  ctl_start mem --leader-elect=false --namespace "$ns" && ctl_wait_synced mem 300 ||
    die "the controller did not start"
  synced_ms=$((($(now) - t) / 1000))
  kvr_poll 300 eval '[ "$(kvr_status "$ns" bench .status.protected)" = 10000 ] &&
                     [ "$(kvr_status "$ns" bench .status.poolSize)" = 10000 ]' ||
    note "status: protected $(kvr_status "$ns" bench .status.protected), poolSize $(kvr_status "$ns" bench .status.poolSize)"
  status_ms=$((($(now) - t) / 1000))
  sleep 5
  read -r r1 h1 < <(rss "${CTL_PID[mem]}")
  printf '  %-44s VmRSS %6.1f MB   VmHWM %6.1f MB\n' "nothing cached:" \
    "$(awk -v k="$r0" 'BEGIN { print k / 1024 }')" "$(awk -v k="$h0" 'BEGIN { print k / 1024 }')"
  printf '  %-44s VmRSS %6.1f MB   VmHWM %6.1f MB\n' "10,000 VMIs + 10,000 pool members cached:" \
    "$(awk -v k="$r1" 'BEGIN { print k / 1024 }')" "$(awk -v k="$h1" 'BEGIN { print k / 1024 }')"
  printf '  %-44s %s bytes per cached object (VMI or member)\n' "difference / 20,000:" \
    "$(( (r1 - r0) * 1024 / 20000 ))"
  printf '  %-44s caches synced %.1f s after start, status complete %.1f s\n' "cold start:" \
    "$(awk -v m="$synced_ms" 'BEGIN { print m / 1000 }')" "$(awk -v m="$status_ms" 'BEGIN { print m / 1000 }')"
  ctl_stop mem >/dev/null
  kubectl delete namespace "$ns" --wait=false >/dev/null
fi
