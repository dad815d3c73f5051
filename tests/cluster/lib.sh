# Shared by tests/cluster/{up,down,user,nodes,guest}; sourced, never run.
#
# Where things live, how the upstream binaries are built and cached, and the
# small process and certificate helpers. Nothing here starts a cluster.
#
#   .cache/k8s-<version>/   kube-apiserver, kube-controller-manager,
#                           kube-scheduler, kubectl
#   .cache/etcd-<version>/  etcd
#   .cache/kwok-<version>/  kwok and the KWOK stage files the cluster uses
#   .cache/kubevirt-<version>/  virt-controller, virt-api and the CRDs and
#                           webhook configurations KubeVirt's code generates
#   .cache/run/cluster-*/   one directory per running cluster (certificates,
#                           kubeconfigs, etcd data, logs, pids)
#
# Environment: KVR_CACHE (default <repo>/.cache), GO (default `go`).

cluster_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cluster_root=$(cd "$cluster_here/../.." && pwd)
KVR_CACHE=${KVR_CACHE:-$cluster_root/.cache}
cluster_runs=$KVR_CACHE/run

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

# The version a module pins for a dependency, read from its go.mod.
cluster_modver() {
  awk -v m="$2" '$1 == m { print $2; exit }' "$cluster_here/$1/go.mod"
}

# Builds the tool binaries of one Go module into $KVR_CACHE/<name>-<version>/
# unless they are there already, built from the same go.mod, go.sum, flags
# and Go. Concurrent callers wait on a lock rather than build twice. Go's
# output goes to a log; its tail is printed on failure.
#   [cluster_post=FUNCTION] cluster_build_module NAME VERSION LDFLAGS OUT=PKG...
# FUNCTION, if given, runs after the build (in the module's directory, with
# the new cache directory as its argument) to add files made from the
# module, such as generated manifests; its code is part of the cache key.
cluster_build_module() {
  local name=$1 version=$2 ldflags=$3; shift 3
  local dir=$KVR_CACHE/$name-$version go=${GO:-go} stamp want post=${cluster_post:-}
  command -v "$go" >/dev/null || die "no Go toolchain ('$go'): Go >= 1.25 (1.26 for KWOK) builds the test cluster"
  mkdir -p "$KVR_CACHE"
  want=$({ cat "$cluster_here/$name/go.mod" "$cluster_here/$name/go.sum"
           find "$cluster_here/$name" -name '*.go' -type f | sort | xargs -r cat
           [ -z "$post" ] || declare -f "$post"
           echo "$ldflags $*"; "$go" version; } | sha256sum | cut -c1-16)
  stamp=$(cat "$dir/.stamp" 2>/dev/null || true)
  [ "$stamp" = "$want" ] && return 0
  (
    flock 9
    stamp=$(cat "$dir/.stamp" 2>/dev/null || true)
    [ "$stamp" = "$want" ] && exit 0
    local log=$KVR_CACHE/build-$name.log out pkg t0=$SECONDS
    say "building $name $version from the Go module proxy (first run only; log: $log)"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    for spec in "$@"; do
      out=${spec%%=*} pkg=${spec#*=}
      if ! (cd "$cluster_here/$name" &&
            CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
              "$go" build -trimpath -ldflags "$ldflags" -o "$dir.tmp/$out" "$pkg") \
            >>"$log" 2>&1 </dev/null; then
        tail -n 30 "$log" >&2
        die "building $out failed (log: $log)"
      fi
    done
    if [ -n "$post" ] && ! (cd "$cluster_here/$name" && "$post" "$dir.tmp") >>"$log" 2>&1 </dev/null; then
      tail -n 30 "$log" >&2
      die "preparing $name's files failed (log: $log)"
    fi
    echo "$want" >"$dir.tmp/.stamp"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    say "built $name $version in $((SECONDS - t0))s"
  ) 9>"$KVR_CACHE/.build-$name.lock" || exit 1
}

# Builds (or finds cached) etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, virt-controller and virt-api; sets ETCD_BIN,
# K8S_BIN, KWOK_DIR, KUBEVIRT_DIR (directories) and KUBECTL. kubectl is built
# from the same release as the server rather than taken from PATH, so that
# client and server never drift apart.
cluster_build() {
  local kv ev wv vv kminor x=k8s.io/component-base/version c=k8s.io/client-go/pkg/version
  kv=$(cluster_modver k8s k8s.io/kubernetes)
  ev=$(cluster_modver etcd go.etcd.io/etcd/server/v3)
  wv=$(cluster_modver kwok sigs.k8s.io/kwok)
  vv=$(cluster_modver kubevirt kubevirt.io/kubevirt)
  [ -n "$kv" ] && [ -n "$ev" ] && [ -n "$wv" ] && [ -n "$vv" ] ||
    die "cannot read the pinned versions from tests/cluster/*/go.mod"
  kminor=${kv#v1.}; kminor=${kminor%%.*}
  # Without these, /version reports v0.0.0-master like any `go build`.
  local vflags="-X $x.gitVersion=$kv -X $x.gitMajor=1 -X $x.gitMinor=$kminor -X $x.gitTreeState=clean"
  vflags+=" -X $c.gitVersion=$kv -X $c.gitMajor=1 -X $c.gitMinor=$kminor -X $c.gitTreeState=clean"
  cluster_build_module etcd "$ev" "-s -w" etcd=go.etcd.io/etcd/server/v3
  cluster_build_module k8s "$kv" "-s -w $vflags" \
    kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
    kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
    kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
    kubectl=k8s.io/kubernetes/cmd/kubectl
  cluster_post=cluster_kwok_stages cluster_build_module kwok "$wv" \
    "-s -w" kwok=sigs.k8s.io/kwok/cmd/kwok
  local kvv=kubevirt.io/client-go/version
  cluster_post=cluster_kubevirt_manifests cluster_build_module kubevirt "$vv" \
    "-s -w -X $kvv.gitVersion=$vv -X $kvv.gitTreeState=clean" \
    virt-controller=kubevirt.io/kubevirt/cmd/virt-controller \
    virt-api=kubevirt.io/kubevirt/cmd/virt-api \
    kubevirt-manifests=./manifests
  ETCD_BIN=$KVR_CACHE/etcd-$ev/etcd
  K8S_BIN=$KVR_CACHE/k8s-$kv
  KUBECTL=$K8S_BIN/kubectl
  KWOK_DIR=$KVR_CACHE/kwok-$wv
  KUBEVIRT_DIR=$KVR_CACHE/kubevirt-$vv
}

# cluster_build_module's post step for KWOK: its stage files (the behaviour
# of simulated nodes and pods) ship in its Go module, not in the binary.
# Copied, unchanged, from the module cache next to the binary; tests/cluster/up
# adapts the node stages when it starts a cluster. These are KWOK's own
# (Apache License 2.0, https://github.com/kubernetes-sigs/kwok).
cluster_kwok_stages() {
  local src
  src=$(GOFLAGS=-mod=readonly "${GO:-go}" list -m -f '{{.Dir}}' sigs.k8s.io/kwok) && [ -d "$src" ] || return 1
  mkdir -p "$1/stages"
  cp "$src/kustomize/stage/node/fast/node-initialize.yaml" \
    "$src/kustomize/stage/node/heartbeat/node-heartbeat.yaml" \
    "$src/kustomize/stage/pod/fast/pod-ready.yaml" \
    "$src/kustomize/stage/pod/fast/pod-complete.yaml" \
    "$src/kustomize/stage/pod/fast/pod-delete.yaml" \
    "$src/LICENSE" "$1/stages/" && chmod -R u+w "$1/stages"
}

# cluster_build_module's post step for KubeVirt: its CRDs and virt-api's
# webhook configurations, made by KubeVirt's own code (manifests/main.go).
cluster_kubevirt_manifests() {
  mkdir -p "$1/manifests" && "$1/kubevirt-manifests" "$1/manifests"
}

# True when some socket on this machine uses local TCP port $1 (any state,
# IPv4 or IPv6), read from /proc so that no extra tool is needed.
cluster_port_used() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Prints a TCP port that nothing uses, below the kernel's ephemeral range so
# that outgoing connections do not take it between the check and the bind.
# Ports named in $cluster_taken are skipped (several picks before any bind).
cluster_taken=""
cluster_free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12000))
    case " $cluster_taken " in *" $p "*) continue ;; esac
    cluster_port_used "$p" && continue
    cluster_taken+=" $p"
    echo "$p"; return 0
  done
  die "no free TCP port found"
}

# True while process $1 runs and is the program named $2 (the pid was not
# reused). A zombie counts as gone.
cluster_alive() {
  local state comm
  [ -r "/proc/$1/stat" ] || return 1
  comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 1
  [ "$comm" = "${2:0:15}" ] || return 1
  state=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

# Waits up to $3 tenths of a second for process $1 (named $2) to be gone.
cluster_wait_gone() {
  local t
  for ((t = 0; t < $3; t++)); do
    cluster_alive "$1" "$2" || return 0
    sleep 0.1
  done
  ! cluster_alive "$1" "$2"
}

# The process NAME of the cluster in DIR runs as now, as "PID COMM": from
# DIR/pids, or for a supervised component (a "PID COMM NAME supervisor"
# line, tests/cluster/supervise) from DIR/NAME.pid, which its supervisor
# rewrites on every restart. Fails when NAME is unknown.
cluster_proc() {
  local dir=$1 name=$2 pid comm kind
  read -r pid comm _ kind < <(awk -v n="$name" '($2 == n && $3 == "") || $3 == n { l = $0 }
    END { print l }' "$dir/pids")
  [ -n "$pid" ] || return 1
  if [ "${kind:-}" = supervisor ]; then
    [ -f "$dir/$name.pid" ] || return 1
    cat "$dir/$name.pid"
  else
    echo "$pid $comm"
  fi
}

# Stops process $1 (named $2): TERM, then KILL if it is still there after
# $3 seconds. $4 names the cluster in messages.
cluster__stop_pid() {
  local pid=$1 name=$2 grace=$3
  cluster_alive "$pid" "$name" || return 0
  kill -TERM "$pid" 2>/dev/null
  cluster_wait_gone "$pid" "$name" $((grace * 10)) && return 0
  say "$name ($4) ignored TERM for ${grace}s: killing it"
  kill -KILL "$pid" 2>/dev/null
  cluster_wait_gone "$pid" "$name" 50 || say "$name (pid $pid) survived KILL"
}

# Stops the processes listed in DIR/pids ("pid comm ..." lines, in start order)
# one at a time, newest first: each gets TERM, then KILL if it is still there
# after GRACE seconds (default 15). One at a time, because kube-apiserver's
# graceful shutdown talks to etcd: with etcd stopping too, both hang until
# killed. The supervisors (tests/cluster/supervise) go first, so that
# nothing is started again meanwhile; the process each supervised stops in
# the supervisor's place in the order. Silent and successful when nothing
# runs.
cluster_stop_dir() {
  local dir=$1 grace=${2:-15} pid comm name kind i
  [ -f "$dir/pids" ] || return 0
  local -a pids=() names=()
  while read -r pid comm name kind; do
    if [ "${kind:-}" = supervisor ]; then cluster__stop_pid "$pid" "$comm" "$grace" "$dir"; fi
  done <"$dir/pids"
  while read -r pid comm name kind; do
    [ -n "$pid" ] || continue
    if [ "${kind:-}" = supervisor ]; then
      [ -f "$dir/$name.pid" ] || continue
      read -r pid comm <"$dir/$name.pid"
    fi
    pids=("$pid" "${pids[@]}"); names=("$comm" "${names[@]}")
  done <"$dir/pids"
  for i in "${!pids[@]}"; do
    cluster__stop_pid "${pids[$i]}" "${names[$i]}" "$grace" "$dir"
  done
  # A process that has exited stays a zombie until its parent reaps it: once
  # up has exited that is init, which may take a second. Wait (up to 3 s)
  # so that nothing of the cluster is listed, not even as <defunct>.
  local t
  for i in "${!pids[@]}"; do
    for ((t = 0; t < 30; t++)); do
      [ "$(cat "/proc/${pids[$i]}/comm" 2>/dev/null)" = "${names[$i]:0:15}" ] || break
      sleep 0.1
    done
  done
  return 0
}

# Issues a certificate signed by the cluster CA in DIR (or by DIR/CA.crt).
#   cluster_cert DIR BASENAME SUBJECT EXTENSIONS [CA]
# writes DIR/BASENAME.key and DIR/BASENAME.crt. EC P-256 keys: quick to make.
cluster_cert() {
  local dir=$1 base=$2 subj=$3 ext=$4 ca=${5:-ca}
  mkdir -p "$(dirname "$dir/$base")"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/$base.key" -out "$dir/$base.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$dir/$base.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 30 -sha256 \
    -extfile <(printf '%s\n' "basicConstraints=critical,CA:FALSE" \
                 "keyUsage=critical,digitalSignature,keyEncipherment" "$ext") \
    -out "$dir/$base.crt" 2>/dev/null
  rm -f "$dir/$base.csr"
  chmod 600 "$dir/$base.key"
}

# The subject of a client certificate: CN=user, O=each group.
cluster_subject() {
  local s="/CN=$1" g; shift
  for g in "$@"; do s+="/O=$g"; done
  echo "$s"
}

# Writes a self-contained kubeconfig (certificates embedded, as kubeadm and
# kind write them) for the client certificate DIR/BASENAME.{crt,key}.
#   cluster_kubeconfig FILE DIR BASENAME USER SERVER
cluster_kubeconfig() {
  local file=$1 dir=$2 base=$3 user=$4 server=$5
  (
    umask 077
    cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kvrecover-test
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$dir/ca.crt")
users:
- name: "$user"
  user:
    client-certificate-data: $(base64 -w0 "$dir/$base.crt")
    client-key-data: $(base64 -w0 "$dir/$base.key")
contexts:
- name: "$user@kvrecover-test"
  context:
    cluster: kvrecover-test
    user: "$user"
current-context: "$user@kvrecover-test"
EOF
    mv "$file.tmp" "$file"
  )
}

# The state directory of a cluster, given the directory itself or any file
# in it or in its users/ folder (such as a kubeconfig). Fails for paths that
# belong to no cluster started by tests/cluster/up. With "running", only a
# cluster that started (a failed start leaves its logs, not its CA key).
cluster_dir_of() {
  local d f=pids
  [ "${2:-}" = running ] && f=ca.key
  [ -d "$1" ] && d=$1 || d=$(dirname "$1")
  [ -f "$d/$f" ] || d=$(dirname "$d")
  [ -f "$d/$f" ] || return 1
  (cd "$d" && pwd)
}

# The state directory of the cluster a kubeconfig or directory names, or, with
# no argument, of the one $KUBECONFIG names or else the only one running.
cluster_find_dir() {
  local arg=${1:-} d
  [ -n "$arg" ] && { cluster_dir_of "$arg" running; return; }
  if [ -n "${KUBECONFIG:-}" ] && cluster_dir_of "$KUBECONFIG" running >/dev/null; then
    cluster_dir_of "$KUBECONFIG" running; return
  fi
  local -a all=()
  for d in "$cluster_runs"/cluster-*; do [ -f "$d/ca.key" ] && all+=("$d"); done
  [ ${#all[@]} -eq 1 ] || return 1
  echo "${all[0]}"
}

# --- simulated nodes (tests/cluster/up and tests/cluster/nodes) ---------
# KWOK plays the kubelet, and handler-standin plays virt-handler, of every
# node carrying this label with the value "up"; `nodes kill` removes it.
cluster_host_label=test-cluster.kvrecover.io/host

# A Node object as a kubelet with KubeVirt's virt-handler would register it,
# as JSON: capacity (cpu, memory, 100Gi of ephemeral storage, 110 pods and
# KubeVirt's device-plugin resources, 1k each as virt-handler advertises
# them), the labels virt-handler's node labeller would set (schedulable,
# the q35 machine type the launcher pods select on) and the KWOK label.
#   cluster_node_json NAME CPU MEMORY
cluster_node_json() {
  jq -n --arg name "$1" --arg cpu "$2" --arg mem "$3" --arg host "$cluster_host_label" '
    {cpu: $cpu, memory: $mem, "ephemeral-storage": "100Gi", pods: "110",
     "devices.kubevirt.io/kvm": "1k", "devices.kubevirt.io/tun": "1k",
     "devices.kubevirt.io/vhost-net": "1k"} as $res |
    {apiVersion: "v1", kind: "Node",
     metadata: {name: $name,
       labels: {"kubernetes.io/hostname": $name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", type: "kwok",
                "kubevirt.io/schedulable": "true",
                "machine-type.node.kubevirt.io/q35": "true",
                ($host): "up"},
       annotations: {"node.alpha.kubernetes.io/ttl": "0"}},
     spec: {},
     status: {capacity: $res, allocatable: $res}}'
}

# For tests/cluster/nodes and guest: the cluster directory of the admin
# kubeconfig $1 (or die), and kubectl from the cache without building it.
# Sets dir and KUBECTL; kubectl_admin runs it as that cluster's admin.
cluster_open() {
  [ -n "${1:-}" ] && [ -e "$1" ] || die "no such kubeconfig: '${1:-}' (the last line tests/cluster/up printed)"
  dir=$(cluster_dir_of "$1" running) || die "$1 does not belong to a running cluster started by tests/cluster/up"
  KUBECTL=$KVR_CACHE/k8s-$(cluster_modver k8s k8s.io/kubernetes)/kubectl
  [ -x "$KUBECTL" ] || die "no kubectl at $KUBECTL (tests/cluster/up builds it)"
}
kubectl_admin() {
  "$KUBECTL" --kubeconfig "$dir/admin.kubeconfig" --cache-dir "$dir/kubectl-cache" "$@"
}
