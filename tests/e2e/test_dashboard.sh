#!/usr/bin/env bash
# e2e: own-cluster (it kills a node it adds)
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
# recovery, and the probes answer. Then the incidents table (issue 11 item
# 6) on the real cluster: vm-001 recovered, naming its replacement; vm-003's
# guest crashes with no eligible substitute: blocked, NoEligibleCandidate;
# under a second policy (crash loops and lost hosts, not immediate), a VM
# whose every start fails shows restarting, then recovered, and a VM on a
# host that dies (a node added for it, tainted so that only it goes there)
# shows node lost with a countdown to NodeLoss. A second screenshot:
# tests/artifacts/dashboard-incidents.png. Last (issue 11 item 3), dv-1, whose
# member has a dataVolumeTemplate, a firmware uuid and runStrategy
# RerunOnFailure, fails: its card names the replacement and the member and
# lists what the replacement changes of it, as `kvrecover score` prints it
# for the same VMI. Before that, the page alone is checked
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
# JS: the seconds left in a countdown's text ("in 4m 59s"), else NaN.
js_secs="(t => { const m = /^in (?:(\\d+)m )?(\\d+)s$/.exec(t); return m ? +(m[1] || 0) * 60 + +m[2] : NaN; })"

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
  # A recovery's card lists what its replacement changes of the member.
  card() { echo "[...document.querySelectorAll('article.recovery')].find(a => a.dataset.failed === '$1')"; }
  cdp_check "a recovery lists what its replacement changes of its member, as text, and how many more" \
    wait 0 "(a => !!a && JSON.stringify([...a.querySelectorAll('li.change')].map(l => l.textContent)) ===
        JSON.stringify(['dropped metadata.\"<img src=x onerror=window.__pwned=8>\"', '</li><script>window.__pwned=9</script>']) &&
        a.querySelector('.changes-head').textContent === 'replacement <b>r2</b>, built from <i>m2</i>\\'s data.vm:' &&
        a.querySelector('p.more').textContent.startsWith('\u2026 and 3 more'))($(card '<u>g</u>')) &&
      window.__pwned === undefined"
  cdp_check "a recovery whose changes this controller process does not know says so" \
    wait 0 "(a => !!a && a.querySelectorAll('li.change').length === 0 &&
        a.querySelector('.changes').textContent.includes('not known to this controller process'))($(card old-1))"
  cdp_check "an invalid pool member is marked, with its error as text" \
    wait 0 "(c => !!c && c.textContent.includes('data.features: <b>not a mapping</b>'))(document.querySelector('li.chip.invalid'))"
  cdp_check "a policy that is not Ready says why" \
    wait 0 "document.querySelector('section.policy .tags').textContent.includes('Not ready')"
  cdp_check "an incident's VM, reason, message and replacement are shown as text too" \
    wait 0 "(t => !!t && t.textContent.includes('<img src=x onerror=\"window.__pwned=5\">') &&
        t.textContent.includes('<b>Forbidden</b>') && t.textContent.includes('<script>window.__pwned=7</script>') &&
        t.textContent.includes('<b>r</b>') && t.textContent.includes('</td><i>t</i>') &&
        t.querySelectorAll('tbody tr').length === 1)(document.querySelector('section.incidents table')) &&
      window.__pwned === undefined"
  kvr_check_eq "no JavaScript error and no CSP violation on the page with hostile strings" \
    "$(cdp errors)" "ok []"

  # Every incident state status.c gives, one VM each, under a StormHold.
  stub_publish "$here/dashboard/incidents.json"
  web="document.querySelector('section.policy[data-policy=\"prod/web\"]')"
  row() { echo "$web.querySelector('tr.incident[data-vm=\"$1\"]')"; }
  cdp_check "the incidents table says each VM's state in words" \
    wait 20 "!!$web && JSON.stringify([...$web.querySelectorAll('tr.incident')].map(r =>
        r.dataset.vm + ': ' + r.querySelector('td.state').textContent)) === JSON.stringify([
        'blocked-1: blocked', 'going-1: recovering',
        'halted-1: recovering (halted, replacement not seen yet)', 'lost-1: node lost',
        'wait-1: waiting for trigger', 'loop-1: restarting', 'restart-1: restarting',
        'done-1: recovered'])"
  # The page counts down on the state's clock: the three countdowns differ
  # by what their triggerAt do, however slow this machine is.
  left() { echo "$js_secs($(row "$1").querySelector('td.countdown').textContent)"; }
  cdp_check "a VM on a lost node names its trigger, and counts down to it (5 min after the state)" \
    wait 0 "$(row lost-1).querySelector('td.trigger').textContent === 'NodeLoss' &&
      $(left lost-1) > 120 && $(left lost-1) <= 300"
  before=$(cdp eval "$(row lost-1).querySelector('td.countdown').textContent")
  cdp_check "the countdown runs without a new state from the controller" \
    wait 5 "(t => t !== ${before#ok } && /^in 4m \\d+s$/.test(t))($(row lost-1).querySelector('td.countdown').textContent)"
  cdp_check "VMs waiting for RestartTimeout count down to it (a crash loop too); one restarting without it has no countdown" \
    wait 0 "$(row wait-1).querySelector('td.trigger').textContent === 'RestartTimeout' &&
      $(row loop-1).querySelector('td.trigger').textContent === 'RestartTimeout' &&
      Math.abs($(left lost-1) - $(left wait-1) - 240) <= 1 &&
      Math.abs($(left loop-1) - $(left lost-1) - 280) <= 1 &&
      $(row restart-1).querySelector('td.countdown').textContent === '\u2014'"
  cdp_check "a blocked incident shows its reason, the message and since when" \
    wait 0 "(r => r.querySelector('td.reason').textContent === 'NoEligibleCandidate' &&
        r.querySelector('td.msg').textContent === 'no pool member scores at least 0.5 (best: m1, 0.25) (blocked since 2026-11-25 18:58:00Z)')($(row blocked-1))"
  cdp_check "a recovered VM names its replacement and the member it came from" \
    wait 0 "$(row done-1).querySelector('td.replacement').textContent === 'done-1-k2p9q from web-src' &&
      $(row halted-1).querySelector('td.replacement').textContent === 'halted-1-r7x2k from web-src'"
  cdp_check "the StormHold banner gives the counts" \
    wait 0 "(b => !!b && b.textContent.includes('StormHold') &&
        b.textContent.includes('5 of 8 protected VMs are down, more than the storm limit (3) allows') &&
        b.textContent.includes('1 blocked'))($web.querySelector('.incidents .storm.hold'))"
  cdp_check "a policy without incidents says so, and is not on hold" \
    wait 0 "(s => !!s && !s.querySelector('.storm.hold') &&
        s.querySelector('.incidents .storm').textContent === '0 of 3 protected VMs down; the storm limit is 2.' &&
        s.querySelector('.incidents p.empty') !== null)(document.querySelector('section.policy[data-policy=\"prod/quiet\"]'))"
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
kv=$(t_ns dash-kv) || { t_fail "namespace" "cannot create one"; t_summary; }
dvns=$(t_ns dash-dv) || { t_fail "namespace" "cannot create one"; t_summary; }
# node-dash: the host that dies below; tainted before any VM exists, so
# that only lost-1 (which tolerates the taint) runs there.
dash_taint=kvrecover.io/dashboard-e2e
if ! { kvr_nodes add node-dash 2 4Gi >/dev/null &&
       kubectl taint node node-dash "$dash_taint=only:NoSchedule" >/dev/null; }; then
  t_fail "add node-dash, tainted" "tests/cluster/nodes add or kubectl taint failed"; t_summary
fi
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
# The second policy: KubeVirt's own restarts first (crashLoopThreshold 2),
# lost hosts after nodeLossSeconds (600: the countdown is what is checked).
# Its pool: one member web-src, that loop-1 and lost-1 match (1.0).
kvvm() { # NAME [EXTRA-SPEC-JSON]: a small Always VM labelled app=kv, as JSON
  jq -n --arg name "$1" --argjson extra "${2:-{\}}" '{
    apiVersion: "kubevirt.io/v1", kind: "VirtualMachine",
    metadata: {name: $name, labels: {app: "kv"}},
    spec: {runStrategy: "Always", template: {
      metadata: {labels: {app: "kv", vm: $name}, annotations: {"kvrecover.io/features": "{app: web}"}},
      spec: ({domain: {cpu: {cores: 1}, memory: {guest: "128Mi"}, devices: {}}} * $extra)}}}'
}
{ jq -n --arg vm "$(kvvm web-src | jq -c '.metadata.labels.app = "src" | .spec.template.metadata.labels.app = "src"')" '{
    apiVersion: "v1", kind: "ConfigMap",
    metadata: {name: "web-src", labels: {"kvrecover.io/pool": "kv"}},
    data: {features: "app: web", vm: $vm}}' | kubectl apply -n "$kv" -f - >/dev/null &&
  kvvm loop-1 | kubectl create -n "$kv" -f - >/dev/null &&
  kvvm lost-1 "{\"nodeSelector\": {\"kubernetes.io/hostname\": \"node-dash\"},
    \"tolerations\": [{\"key\": \"$dash_taint\", \"operator\": \"Exists\", \"effect\": \"NoSchedule\"}]}" |
    kubectl create -n "$kv" -f - >/dev/null &&
  kvr_policy "$kv" kv '{"selector": {"matchLabels": {"app": "kv"}},
    "poolSelector": {"matchLabels": {"kvrecover.io/pool": "kv"}},
    "weights": {"app": 1}, "threshold": 0.5, "mode": "Jaccard", "action": "Recreate",
    "capture": false, "stormLimit": 10,
    "trigger": {"crashLoopThreshold": 2, "restartTimeoutSeconds": 600, "nodeLossSeconds": 600}}'; } ||
  { t_fail "apply the second pool, VMs and policy" "kubectl failed"; t_summary; }
# The third policy: what a replacement changes of its member (issue 11
# item 3). Its member dv-src differs from a replacement in what a clean one
# never keeps: runStrategy RerunOnFailure, a firmware uuid, a
# dataVolumeTemplate (CDI is not installed: the replacement cannot run
# here; its name and volumes are what is checked). dv-1 (app=dv) matches it
# (1.0); immediate, so that its first failure is acted on.
dvvm() { # NAME [EXTRA-SPEC-JSON]: kvvm, labelled app=dv
  kvvm "$@" | jq -c '.metadata.labels.app = "dv" | .spec.template.metadata.labels.app = "dv"'
}
dv_uuid=6a1a2f3c-2a51-4c1e-9b43-0d3c8f6d1e01
{ jq -n --arg vm "$(dvvm dv-src "{\"domain\": {\"firmware\": {\"uuid\": \"$dv_uuid\"},
      \"devices\": {\"disks\": [{\"name\": \"root\", \"disk\": {\"bus\": \"virtio\"}}]}},
      \"volumes\": [{\"name\": \"root\", \"dataVolume\": {\"name\": \"root\"}}]}" |
      jq -c '.spec.runStrategy = "RerunOnFailure" | .spec.dataVolumeTemplates = [{metadata: {name: "root"},
        spec: {source: {blank: {}}, storage: {resources: {requests: {storage: "1Gi"}}}}}]')" '{
    apiVersion: "v1", kind: "ConfigMap",
    metadata: {name: "dv-src", labels: {"kvrecover.io/pool": "dv"}},
    data: {features: "app: web", vm: $vm}}' | kubectl apply -n "$dvns" -f - >/dev/null &&
  dvvm dv-1 | kubectl create -n "$dvns" -f - >/dev/null &&
  kvr_policy "$dvns" dv '{"selector": {"matchLabels": {"app": "dv"}},
    "poolSelector": {"matchLabels": {"kvrecover.io/pool": "dv"}},
    "weights": {"app": 1}, "threshold": 0.5, "mode": "Jaccard", "action": "Recreate",
    "capture": false, "stormLimit": 10,
    "trigger": {"immediate": true, "restartTimeoutSeconds": 3600, "nodeLossSeconds": 0}}'; } ||
  { t_fail "apply the third pool, VM and policy" "kubectl failed"; t_summary; }
for vm in vm-001 vm-002 vm-003 vm-004 vm-005; do
  t_wait 120 vmi_running "$vm" || t_fail "KubeVirt runs $vm's VMI" "not Running after 120 s"
done
kvr_vmi_start "$dvns" dv-1 || t_fail "KubeVirt runs dv-1's VMI" "not Running after 120 s"
for vm in loop-1 lost-1; do
  kvr_vmi_start "$kv" "$vm" || t_fail "KubeVirt runs $vm's VMI" "not Running after 120 s"
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
  curl -sf --max-time 10 "$base/api/state" | t_jq --arg ns "$ns" \
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

# ---- the incidents, on the real cluster ------------------------------------------
# A recorder in the page: every "policy VM: state" its incidents table showed,
# so that a state held for seconds only is not missed between two looks.
cdp eval "window.__seen = {}; setInterval(() => document.querySelectorAll('section.policy tr.incident').forEach(r =>
  window.__seen[r.closest('section.policy').dataset.policy + ' ' + r.dataset.vm + ': ' +
    r.querySelector('td.state').textContent] = 1), 100)" >/dev/null
seen() { echo "(window.__seen['$1'] === 1)"; }
kvsec="document.querySelector('section.policy[data-policy=\"$kv/kv\"]')"
irow() { echo "($2 && $2.querySelector('tr.incident[data-vm=\"$1\"]'))"; }
cell() { echo "$(irow "$1" "$2").querySelector('td.$3').textContent"; }

r1=$(kvr_replacements "$ns" vm-001 | head -n 1)
cdp_check "vm-001's incident: recovered, naming its replacement ($r1) and the member it came from" \
  wait 30 "!!$(irow vm-001 "$sec") && $(cell vm-001 "$sec" state) === 'recovered' &&
    $(cell vm-001 "$sec" replacement) === '$r1 from vm-005'"

t0=$(date +%s)
kvr_nodes kill node-dash >/dev/null || t_fail "node-dash dies (tests/cluster/nodes kill)" "kill failed"
kvr_guest failstart "$kv" loop-1 on >/dev/null || t_fail "loop-1's every start fails" "guest failstart failed"
t_cleanup_add "$(t_root)/tests/cluster/guest" "$KUBECONFIG" failstart "$kv" loop-1 off
kvr_vmi_fail "$kv" loop-1 || t_fail "loop-1's guest crashes" "guest crash failed"
kvr_vmi_fail "$ns" vm-003 || t_fail "vm-003's guest crashes" "guest crash failed"

cdp_check "vm-003 has no eligible substitute: blocked, NoEligibleCandidate, with the ranking's message" \
  wait 60 "!!$(irow vm-003 "$sec") && $(cell vm-003 "$sec" state) === 'blocked' &&
    $(cell vm-003 "$sec" reason) === 'NoEligibleCandidate' && $(cell vm-003 "$sec" msg).startsWith('no eligible pool member (best: vm-')"
# The banner against the numbers the controller publishes.
banner_says_api() {
  local want got
  want=$(curl -sf --max-time 10 "$base/api/state" | jq -r --arg ns "$ns" '.policies[] |
    select(.namespace == $ns and .name == "paper") |
    "\(.down) of \(.protectedCount) protected VMs down; the storm limit is \(.stormLimit).\(.blocked) blocked"')
  got=$(cdp eval "$sec.querySelector('.incidents .storm').textContent")
  [ "$got" = "ok \"$want\"" ] && [[ $want == *"1 blocked" ]]
}
kvr_check_wait "the policy's banner counts the down VMs against the storm limit, and 1 blocked, as /api/state does" \
  30 banner_says_api

cdp_check "node-dash is lost: lost-1 shows node lost, NodeLoss, and a countdown" \
  wait 120 "!!$(irow lost-1 "$kvsec") && $(cell lost-1 "$kvsec" state) === 'node lost' &&
    $(cell lost-1 "$kvsec" trigger) === 'NodeLoss' && /^in \\d+m \\d+s$/.test($(cell lost-1 "$kvsec" countdown))"
t_note "node lost shown $(($(date +%s) - t0)) s after the kill"
left=$(cdp eval "$(cell lost-1 "$kvsec" countdown)")
cdp_check "and the countdown runs ($left)" \
  wait 5 "(t => /^in \\d+m \\d+s$/.test(t) && t !== ${left#ok })($(cell lost-1 "$kvsec" countdown))"
# The page's seconds left against the controller's triggerAt for lost-1
# (nodeLossSeconds after the loss), both read now.
countdown_agrees() {
  local at page d
  at=$(curl -sf --max-time 10 "$base/api/state" | jq -r --arg ns "$kv" '.policies[] |
    select(.namespace == $ns and .name == "kv") | .incidents[] | select(.vm == "lost-1") | .triggerAt // ""')
  page=$(cdp eval "$js_secs($(cell lost-1 "$kvsec" countdown))")
  page=${page#ok }
  [ -n "$at" ] && [[ $page =~ ^[0-9]+$ ]] && [ "$page" -le 600 ] || return 1
  d=$((page - ($(date -d "$at" +%s) - $(date +%s))))
  [ "${d#-}" -le 3 ]
}
kvr_check_wait "the seconds left agree with the controller's triggerAt (within 3 s)" 10 countdown_agrees

cdp_check "loop-1's start fails again and again: the page shows it restarting (KubeVirt's to retry)" \
  wait 90 "$(seen "$kv/kv loop-1: restarting")"
cdp_check "after crashLoopThreshold start failures loop-1 is recovered" \
  wait 120 "!!$(irow loop-1 "$kvsec") && $(cell loop-1 "$kvsec" state) === 'recovered'"
r2=$(kvr_replacements "$kv" loop-1 | head -n 1)
cdp_check "the row names loop-1's replacement ($r2), from web-src" \
  wait 10 "'$r2' !== '' && $(cell loop-1 "$kvsec" replacement) === '$r2 from web-src'"

# ---- what a replacement changes of its member ------------------------------------
# dv-1's guest crashes; its card names the replacement, the member, and the
# changes: the same lines `kvrecover score` prints for that VMI, and what
# the replacement VM itself shows.
kubectl get vmi -n "$dvns" dv-1 -o json >"$CTL_DIR/dv-1.vmi.json" 2>/dev/null
kubectl get rp -n "$dvns" dv -o json | jq '{apiVersion, kind, metadata: {name: .metadata.name,
  namespace: .metadata.namespace}, spec}' >"$CTL_DIR/dv.policy.json"
kubectl get cm -n "$dvns" dv-src -o json >"$CTL_DIR/dv.pool.json"
kvr_vmi_fail "$dvns" dv-1 || t_fail "dv-1's guest crashes" "guest crash failed"
kvr_check_wait "dv-1 is replaced" 60 kvr_has_replacement "$dvns" dv-1
r3=$(kvr_replacements "$dvns" dv-1 | head -n 1)
# kvrecover score for the failed VMI as it ran: the lines about runStrategy,
# the firmware uuid and the DataVolume
cli=$("$KVR_BIN/kvrecover" score --policy "$CTL_DIR/dv.policy.json" --pool "$CTL_DIR/dv.pool.json" \
  --failed "$CTL_DIR/dv-1.vmi.json" --output json)
cli_lines=$(jq -c '[.replacement.changes[]?.text | select(test("^(set runStrategy|dropped domain.firmware|renamed dataVolumeTemplate|pointed volume)"))]' <<<"${cli:-null}")
kvr_check_eq "kvrecover score names the same replacement and member, and changes runStrategy, the firmware uuid and the DataVolume" \
  "$(jq -r '"\(.replacement.name) \(.replacement.from)"' <<<"${cli:-null}") $(jq -c 'length' <<<"${cli_lines:-[]}")" \
  "$r3 dv-src 4"
kvr_check_eq "the replacement VM itself: runStrategy Always, its own DataVolume, no firmware uuid of dv-src" \
  "$(kvr_vm_json "$dvns" "$r3" | jq -c '[.spec.runStrategy, .spec.template.spec.volumes[0].dataVolume.name,
     (tostring | contains($u))]' --arg u "$dv_uuid")" "[\"Always\",\"$r3-root\",false]"
dvsec="document.querySelector('section.policy[data-policy=\"$dvns/dv\"]')"
dvcard="($dvsec && $dvsec.querySelector('article.recovery[data-failed=\"dv-1\"]'))"
cdp_check "dv-1's card names its replacement ($r3) and the member it was built from" \
  wait 60 "!!$dvcard && $dvcard.querySelector('.changes-head').textContent === 'replacement $r3, built from dv-src\\'s data.vm:'"
card_has_cli_lines() {
  local got
  got=$(cdp eval "JSON.stringify([...$dvcard.querySelectorAll('li.change')].map(l => l.textContent))")
  got=$(jq -r 'fromjson' <<<"${got#ok }" 2>/dev/null) || return 1
  jq -e --argjson want "${cli_lines:-[]}" '. as $card | ($want | length) == 4 and
    all($want[]; . as $w | $card | index($w) != null)' >/dev/null <<<"$got"
}
kvr_check_wait "and lists the changes as kvrecover score prints them: runStrategy Always, the DataVolume renamed $r3-root, the firmware uuid dropped" \
  10 card_has_cli_lines
cdp_check "nothing of them is cut" wait 0 "$dvcard.querySelector('p.more') === null"

errs=$(cdp errors)
kvr_check_eq "no JavaScript error on the page with the incidents" "$errs" "ok []"
shot=$(cdp shot "$artifacts/dashboard-incidents.png")
if [ "${shot%% *}" = ok ]; then t_pass "screenshot saved as tests/artifacts/dashboard-incidents.png (${shot#ok } bytes)"
else t_fail "screenshot saved as tests/artifacts/dashboard-incidents.png" "$shot"; fi

cdp quit >/dev/null

t_summary
