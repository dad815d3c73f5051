# Shared by every end-to-end script (tests/e2e/test_*.sh); sourced, never run.
#
#   . "$(dirname "$0")/lib.sh"
#
# Safe with `set -euo pipefail` in the sourcing script.
#
# The scripts run against the cluster $KUBECONFIG names: normally the one
# tests/run started with tests/cluster/up, but any cluster works. Without
# KUBECONFIG, the only cluster tests/cluster/up has running is used. Checks
# are counted; the script's last line is "N passed, N failed" (t_summary).
#
# Counting
#   t_pass NAME            count NAME as passed
#   t_fail NAME MSG        count NAME as failed, with why
#   t_check NAME CMD...    run CMD; passed when it exits 0, else failed with
#                          the last lines of its output
#   t_skip NAME WHY        say that a check does not apply here (not counted)
#   t_summary              run the cleanups, print "N passed, N failed" and
#                          exit: 1 when something failed, else 0
# Helpers
#   t_wait SECONDS CMD...  run CMD every 0.2 s until it succeeds (its output
#                          discarded); status 1 when SECONDS pass first
#   t_ns PREFIX            create a namespace PREFIX-xxxxx and print its name;
#                          it is deleted when the script exits. Works inside
#                          $(...): ns=$(t_ns shop)
#   t_cleanup_add CMD...   run CMD when the script exits (last added runs
#                          first; also from subshells). One argument is shell
#                          code ("kill $pid"); several are one command, quoted.
#   t_note MSG             a progress line on stderr
#   t_root                 the repository's root
#   t_fixture NAME         the path of tests/e2e/fixtures/NAME
#   t_local_cluster        true when $KUBECONFIG belongs to a cluster that
#                          tests/cluster/up started (so tests/cluster/user works)
#   t_user NAME [GROUP...] issue a client certificate (tests/cluster/user) and
#                          print the path of its kubeconfig; local clusters only
# Environment set here
#   KVR_BIN       the built binaries (default <root>/bin)
#   PATH          starts with the kubectl built from the server's release
#                 ($KVR_CACHE/k8s-<version>/), built first if missing
#   KUBECACHEDIR  kubectl's discovery cache, per local cluster (ports are
#                 reused by later clusters that serve other API groups)

t__root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
t_root() { echo "$t__root"; }
t_fixture() { echo "$t__root/tests/e2e/fixtures/$1"; }
t_note() { echo "# $*" >&2; }

: "${KVR_BIN:=$t__root/bin}"
export KVR_BIN

# kubectl from the same Kubernetes release as the test API server; the
# version comes from tests/cluster/k8s/go.mod, without sourcing the cluster
# library's helpers into the test scripts.
t__k8s_bin=$(
  . "$t__root/tests/cluster/lib.sh"
  kv=$(cluster_modver k8s k8s.io/kubernetes)
  [ -x "$KVR_CACHE/k8s-$kv/kubectl" ] || cluster_build >&2 || exit 1
  echo "$KVR_CACHE/k8s-$kv"
) || { echo "e2e: cannot build kubectl (tests/cluster/lib.sh)" >&2; exit 1; }
PATH=$t__k8s_bin:$PATH
export PATH

if [ -z "${KUBECONFIG:-}" ]; then
  KUBECONFIG=$(. "$t__root/tests/cluster/lib.sh" && d=$(cluster_find_dir) && echo "$d/admin.kubeconfig") ||
    { echo "e2e: set KUBECONFIG, or start one cluster with tests/cluster/up" >&2; exit 1; }
fi
export KUBECONFIG

t_local_cluster() {
  [ -f "$(dirname "$KUBECONFIG")/ca.key" ] || [ -f "$(dirname "$(dirname "$KUBECONFIG")")/ca.key" ]
}
if t_local_cluster; then
  KUBECACHEDIR=$(dirname "$KUBECONFIG")/kubectl-cache
  [ -f "$(dirname "$KUBECONFIG")/ca.key" ] || KUBECACHEDIR=$(dirname "$(dirname "$KUBECONFIG")")/kubectl-cache
  export KUBECACHEDIR
fi

T_PASSED=0
T_FAILED=0
t_pass() {
  T_PASSED=$((T_PASSED + 1))
  echo "ok   $1"
}
t_fail() {
  T_FAILED=$((T_FAILED + 1))
  echo "FAIL $1: ${2:-}"
}
t_skip() { echo "skip $1: ${2:-}"; }

t_check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    t_pass "$name"
  else
    t_fail "$name" "\`$*\` failed: $(printf '%s\n' "$out" | tail -n 5)"
  fi
}

t_wait() {
  local secs=$1 deadline
  shift
  deadline=$(($(date +%s%N) / 1000000 + secs * 1000))
  until "$@" >/dev/null 2>&1; do
    [ $(($(date +%s%N) / 1000000)) -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# Cleanups are lines of shell code in a file, so that t_ns and
# t_cleanup_add work from command substitutions (subshells) too.
t__cleanups=$(mktemp "${TMPDIR:-/tmp}/kvr-e2e-cleanup.XXXXXX")
t_cleanup_add() {
  if [ $# -eq 1 ]; then
    printf '%s\n' "$1" >>"$t__cleanups"
  else
    printf '%q ' "$@" >>"$t__cleanups"
    echo >>"$t__cleanups"
  fi
}
t__run_cleanups() {
  [ -f "$t__cleanups" ] || return 0
  local line
  while IFS= read -r line; do
    [ -z "$line" ] || (eval "$line") >/dev/null 2>&1 || true
  done < <(tac "$t__cleanups")
  rm -f "$t__cleanups"
}
trap t__run_cleanups EXIT
trap 'exit 130' INT TERM

t_ns() {
  local name
  # No early-closing pipe (SIGPIPE) here: callers may run with pipefail.
  name=$1-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | cut -c1-5)
  kubectl create namespace "$name" >/dev/null || return 1
  t_cleanup_add kubectl delete namespace "$name" --wait=false --ignore-not-found
  echo "$name"
}

t_user() {
  t_local_cluster || { echo "t_user: only for clusters started by tests/cluster/up" >&2; return 1; }
  local out
  out=$("$t__root/tests/cluster/user" "$@") || return 1
  printf '%s\n' "$out" | tail -n 1
}

t_summary() {
  t__run_cleanups
  echo "$T_PASSED passed, $T_FAILED failed"
  [ "$T_FAILED" = 0 ] && exit 0
  exit 1
}
