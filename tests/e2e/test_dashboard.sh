#!/usr/bin/env bash
# The dashboard (issue 6, section 4) and /metrics (section 5), end to end:
# the controller runs against the cluster with the paper's example; a real
# headless Chromium (Debian's chromium, driven over the DevTools protocol by
# tests/e2e/dashboard/cdp.py) opens the dashboard, which shows every
# protected VM with its best substitute (vm-003 and vm-004 have none); then
# vm-001's guest crashes (tests/cluster/guest; KubeVirt makes every VMI)
# and, under a policy with `trigger: {immediate: true}`, the same page,
# without a reload, shows the paper's ranking with vm-005 selected at
# 0.6667 and each category's contribution.
# A screenshot is saved as tests/artifacts/dashboard.png. /metrics counts the
# recovery, and the probes answer. Before that, the page alone is checked
# against a stub server (tests/e2e/dashboard_stub.c): hostile strings stay
# text, empty states, and reconnecting after the server restarts.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
. "$here/dashboard/cdp.sh"
t_cleanup_add ctl_cleanup

artifacts=$(t_root)/tests/artifacts
mkdir -p "$artifacts"

if ! command -v chromium >/dev/null; then
  t_fail "chromium is installed" "apt-get install --no-install-recommends chromium (make deps)"
  t_summary
fi

# ---- the browser ---------------------------------------------------------------
if ! cdp_start; then
  t_fail "headless chromium starts" "$CDP_ERR"
  t_summary
fi
t_pass "headless chromium starts (--headless=new --no-sandbox)"

# ---- the page itself, fed by a stub server ----------------------------------------
# tests/e2e/dashboard_stub.c: the same HTTP server (httpd.c) without the
# controller, publishing the state files it is given: hostile strings that
# no Kubernetes name could carry, an empty state, and a restart for the
# reconnect.
stub_bin=${KVR_E2E_BIN:-$(t_root)/build/e2e}/dashboard_stub
stub_fd=""
stub_start() { # PORT
  rm -f "$CTL_DIR/stub.in"
  mkfifo "$CTL_DIR/stub.in" || return 1
  "$stub_bin" "$1" <"$CTL_DIR/stub.in" >"$CTL_DIR/stub.out" 2>&1 &
  stub_pid=$!
  t_cleanup_add "kill $stub_pid"
  exec {stub_fd}>"$CTL_DIR/stub.in"
  t_wait 10 grep -q '^port ' "$CTL_DIR/stub.out" || return 1
  stub_port=$(awk '/^port / { print $2; exit }' "$CTL_DIR/stub.out")
}
stub_published() { [ "$(grep -c '^published ' "$CTL_DIR/stub.out")" -gt "$1" ]; }
stub_publish() { # FILE
  local n
  n=$(grep -c '^published ' "$CTL_DIR/stub.out")
  echo "$1" >&"$stub_fd"
  t_wait 10 stub_published "$n"
}
stub_stop() {
  echo quit >&"$stub_fd"
  exec {stub_fd}>&-
  wait "$stub_pid" 2>/dev/null
}

if [ -x "$stub_bin" ] && stub_start 0; then
  sbase=http://127.0.0.1:$stub_port
  cdp_check "the dashboard loads from the stub server and goes live" open "$sbase/"
  cdp_check "it connects to the WebSocket" \
    wait 20 "document.getElementById('conn').textContent === 'live'"
  stub_publish "$here/dashboard/hostile.json"
  cdp_check "strings from the cluster are shown as text: markup in them is neither parsed nor run" \
    wait 20 "document.querySelector('section.policy') !== null &&
      document.body.textContent.includes('<img src=x onerror=\"window.__pwned=1\">') &&
      document.body.textContent.includes('</td><b>x</b>') &&
      window.__pwned === undefined &&
      document.querySelectorAll('main img, main script, main svg, main b, main i, main u').length === 0"
  cdp_check "a protected VM without any substitute is highlighted, its score shown as a dash" \
    wait 0 "(r => !!r && r.textContent.includes('no eligible substitute') && r.cells[3].textContent.includes('\u2014'))(document.querySelector('.protected tr.at-risk'))"
  cdp_check "a failure with no eligible candidate says so, and marks none selected" \
    wait 0 "document.querySelector('article.recovery h4').textContent.includes('no eligible substitute') &&
      document.querySelectorAll('article.recovery tr.selected').length === 0"
  cdp_check "an invalid pool member is marked, with its error as text" \
    wait 0 "(c => !!c && c.textContent.includes('data.features: <b>not a mapping</b>'))(document.querySelector('li.chip.invalid'))"
  cdp_check "a policy that is not Ready says why" \
    wait 0 "document.querySelector('section.policy .tags').textContent.includes('Not ready')"
  kvr_check_eq "no JavaScript error and no CSP violation on the page with hostile strings" \
    "$(cdp errors)" "ok []"
  stub_publish "$here/dashboard/empty.json"
  cdp_check "an empty state shows that there is no policy yet" \
    wait 20 "document.getElementById('policies').textContent.includes('No RecoveryPolicy yet') &&
      document.getElementById('leader').textContent === 'standby'"
  cdp eval "window.__kvrStub = 1" >/dev/null
  stub_stop
  cdp_check "the page notices that the server is gone" \
    wait 20 "document.getElementById('conn').className.includes('conn-down')"
  if stub_start "$stub_port"; then
    stub_publish "$here/dashboard/hostile.json"
    cdp_check "and reconnects by itself when it is back, without a reload" \
      wait 40 "document.getElementById('conn').textContent === 'live' && window.__kvrStub === 1 &&
        document.querySelector('section.policy') !== null"
    stub_stop
  else
    t_fail "the stub server restarts on the same port" "$(tail -n 3 "$CTL_DIR/stub.out")"
  fi
else
  t_fail "the stub server starts" "$stub_bin missing or failed: $(tail -n 3 "$CTL_DIR/stub.out" 2>/dev/null)"
fi

# ---- the real controller: the paper's case ---------------------------------------
# Leave the stub's page (it would keep retrying the stopped stub) and forget
# the refused connections of the reconnect above.
cdp open about:blank >/dev/null
cdp errors >/dev/null
ctl_install || { t_fail "install CRDs and RBAC" "ctl_install failed"; t_summary; }
ns=$(t_ns dash) || { t_fail "namespace" "cannot create one"; t_summary; }
# The paper's pool and five VirtualMachines; KubeVirt makes their VMIs. Their
# guests get 128Mi, so that the five and a replacement fit the test cluster's
# nodes (the weights ignore memory). The policy is the paper's, with
# `trigger: {immediate: true}`: the first Failed VMI is acted on, as the paper
# does, without waiting for KubeVirt's own restart to fail.
paper_128mi() { sed -E 's/^( +guest:) [0-9]+[GM]i$/\1 128Mi/' "$(t_root)/examples/paper/$1"; }
{ paper_128mi pool.yaml | kubectl apply -n "$ns" -f - >/dev/null &&
  paper_128mi vms.yaml | kubectl apply -n "$ns" -f - >/dev/null &&
  kvr_policy "$ns" paper "$(kvr_paper_spec '{"trigger":{"immediate":true}}')"; } ||
  { t_fail "apply the paper's pool, VMs and policy" "kubectl apply failed"; t_summary; }
vmi_running() { [ "$(kubectl get vmi -n "$ns" "$1" -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; }
for vm in vm-001 vm-002 vm-003 vm-004 vm-005; do
  t_wait 120 vmi_running "$vm" || t_fail "KubeVirt runs $vm's VMI" "not Running after 120 s"
done

kvr_start_or_give_up dash --leader-elect=false
port=$(ctl_port dash)
base=http://127.0.0.1:$port
pkey="$ns/paper"

# ---- plain HTTP ----------------------------------------------------------------
code_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
kvr_check_eq "GET /healthz is 200" "$(code_of "$base/healthz")" 200
readyz_ok() { [ "$(code_of "$base/readyz")" = 200 ]; }
kvr_check_wait "GET /readyz is 200 once the caches are synced" 30 readyz_ok
kvr_check_eq "GET / serves the dashboard as text/html" \
  "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$base/")" "200 text/html; charset=utf-8"
kvr_check_eq "POST /api/state is refused: 405 (read-only)" \
  "$(code_of -X POST -d '{}' "$base/api/state")" 405
state_has_policy() {
  curl -sf --max-time 10 "$base/api/state" | jq -e --arg ns "$ns" \
    '[.policies[] | select(.namespace == $ns and .name == "paper")][0].poolSize == 5'
}
kvr_check_wait "/api/state lists policy $pkey with its 5 pool members" 30 state_has_policy

# JS helpers evaluated in the page. The policy's section, found by its key.
sec="document.querySelector('section.policy[data-policy=\"$pkey\"]')"
rec="($sec && $sec.querySelector('article.recovery[data-failed=\"vm-001\"]'))"

cdp_check "the dashboard loads in chromium" open "$base/"
cdp_check "it connects to the WebSocket and goes live" \
  wait 20 "document.getElementById('conn').textContent === 'live'"
cdp_check "it shows policy $pkey with its pool of 5" \
  wait 30 "!!$sec && $sec.querySelectorAll('.members li.chip').length === 5"
cdp_check "every protected VM is listed with its best substitute and score" \
  wait 30 "$sec.querySelectorAll('.protected tbody tr').length === 5 &&
    [...$sec.querySelectorAll('.protected tbody tr')].every(r => /\\d\\.\\d{4}/.test(r.textContent))"
cdp_check "vm-003 and vm-004 are highlighted: no eligible substitute" \
  wait 30 "[...$sec.querySelectorAll('.protected tr.at-risk')].map(r => r.dataset.vm).sort().join() === 'vm-003,vm-004'"
cdp_check "vm-001's best substitute before any failure is vm-005, 0.6667" \
  wait 30 "(r => r && /vm-005/.test(r.cells[2].textContent) && /0\\.6667/.test(r.cells[3].textContent))($sec.querySelector('.protected tr[data-vm=\"vm-001\"]'))"

# A mark in the page's JS world: a reload would wipe it.
before=$(cdp eval "window.__kvrMark = 'still here'; Number(document.body.dataset.updates)")
before=${before#ok }

uid=$(kubectl get vmi -n "$ns" vm-001 -o jsonpath='{.metadata.uid}')
"$(t_root)/tests/cluster/guest" "$KUBECONFIG" crash "$ns" vm-001 >/dev/null ||
  t_fail "vm-001's guest crashes (tests/cluster/guest)" "crash failed"
t_note "vm-001's guest crashed (VMI $uid)"

cdp_check "without a reload, the page shows VM-001's failure and vm-005 selected at 0.6667" \
  wait 60 "(r => !!r && r.dataset.candidate === 'vm-005' && /0\\.6667/.test(r.textContent))($rec && $rec.querySelector('tr.selected'))"
cdp_check "the page was not reloaded (same JS world, more updates)" \
  wait 0 "window.__kvrMark === 'still here' && Number(document.body.dataset.updates) > ${before:-0}"
ranking=$(cdp eval "[...$rec.querySelectorAll('table.ranking tbody tr')].map(r => r.dataset.candidate + ' ' + r.cells[2].textContent.trim()).join(', ')")
kvr_check_eq "the full ranking, in the paper's order and scores" "$ranking" \
  'ok "vm-005 0.6667, vm-002 0.3333, vm-004 0.1667, vm-003 0.0000"'
contrib=$(cdp eval "[...$rec.querySelectorAll('tr.selected .legend .item')].map(i => i.textContent).join(', ')")
kvr_check_eq "vm-005's contributions per category are drawn (database, language, webserver)" \
  "$contrib" 'ok "database0.2, language0.3, webserver0.1"'
cdp_check "each contribution has a bar" \
  wait 0 "$rec.querySelectorAll('tr.selected .stack .seg').length === 3 &&
    [...$rec.querySelectorAll('tr.selected .stack .seg')].every(s => s.getBoundingClientRect().width > 0)"
cdp_check "only vm-005 is marked selected" \
  wait 0 "$rec.querySelectorAll('tr.selected').length === 1"

errs=$(cdp errors)
kvr_check_eq "no JavaScript error and no CSP violation on the page" "$errs" "ok []"

shot=$(cdp shot "$artifacts/dashboard.png")
if [ "${shot%% *}" = ok ] && [ "$(head -c 8 "$artifacts/dashboard.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
  t_pass "screenshot saved as tests/artifacts/dashboard.png (${shot#ok } bytes)"
else
  t_fail "screenshot saved as tests/artifacts/dashboard.png" "$shot"
fi

# ---- /metrics ---------------------------------------------------------------------
# Read before the restart below: the counters live in the process.
metrics() { curl -sf --max-time 10 "$base/metrics"; }
kvr_check_eq "/metrics is text/plain; version=0.0.4" \
  "$(curl -s -o /dev/null -w '%{content_type}' "$base/metrics")" "text/plain; version=0.0.4; charset=utf-8"
m=$(metrics)
for fam in kvrecover_recoveries_total kvrecover_recovery_duration_seconds kvrecover_pool_members \
           kvrecover_protected_vms kvrecover_unprotected_vms kvrecover_api_requests_total \
           kvrecover_watch_restarts_total kvrecover_leader; do
  if grep -q "^# TYPE $fam " <<<"$m"; then t_pass "/metrics has the family $fam"
  else t_fail "/metrics has the family $fam" "no '# TYPE $fam' line"; fi
done
# The pool may grow after the recovery (spec capture adds the replacement's
# member), so the gauge is compared with the ConfigMaps themselves.
pool_gauge_current() {
  local cms gauge
  cms=$(kubectl get cm -n "$ns" -l kvrecover.io/pool=paper -o name | grep -c .)
  gauge=$(metrics | grep -F "kvrecover_pool_members{policy=\"$pkey\"}" | awk '{print $2}')
  [ -n "$gauge" ] && [ "$gauge" = "$cms" ]
}
kvr_check_wait "pool size: kvrecover_pool_members{policy=\"$pkey\"} counts the pool's ConfigMaps" 30 \
  pool_gauge_current
kvr_check_eq "leader status: kvrecover_leader 1" "$(awk '$1 == "kvrecover_leader" {print $2}' <<<"$m")" 1
kvr_check_eq "the recovery is counted: kvrecover_recoveries_total{policy=\"$pkey\",result=\"Recovered\"} 1" \
  "$(grep -F "kvrecover_recoveries_total{policy=\"$pkey\",result=\"Recovered\"}" <<<"$m" | awk '{print $2}')" 1
kvr_check_eq "its failure-to-replacement time is observed once" \
  "$(grep -F "kvrecover_recovery_duration_seconds_count{policy=\"$pkey\"}" <<<"$m" | awk '{print $2}')" 1
kvr_check_eq "vm-003 and vm-004: kvrecover_unprotected_vms{policy=\"$pkey\"} 2" \
  "$(grep -F "kvrecover_unprotected_vms{policy=\"$pkey\"}" <<<"$m" | awk '{print $2}')" 2

cdp quit >/dev/null

t_summary
