#!/usr/bin/env bash
# The locked HTTP surface (issue 12, item 5), end to end against the real
# controller and API server:
#   - the probes answer on their own port, and only the probes do;
#   - Host and Origin are checked on every request and WebSocket upgrade: a
#     raw upgrade with a foreign or `null` Origin is refused 403 before it
#     happens, a DNS-rebinding-style Host is refused, a same-origin request
#     and upgrade work;
#   - a real browser (headless Chromium through dashboard/cdp.py) on a page
#     served from another origin that opens ws://127.0.0.1:PORT/ws gets no
#     state, while the dashboard's own page does;
#   - with token authentication (--http-auth=tokenreview): no token 401, a
#     ServiceAccount token without the reader role 403, with
#     kvrecover-metrics-reader (manifests/metrics-reader.yaml) 200, decided by
#     a TokenReview and a SubjectAccessReview; the probes need no token;
#   - 400 idle TCP connections from one peer make no probe fail, and leave
#     the dashboard listener answering other peers.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
. "$here/dashboard/cdp.sh"
t_cleanup_add ctl_cleanup

ctl_install || { t_fail "install CRDs and RBAC" "ctl_install failed"; t_summary; }
ns=$(t_ns httpsec) || { t_fail "namespace" "cannot create one"; t_summary; }

code_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
# The probe listener's port, from NAME's "probes listening" line.
probe_port() {
  ctl_log_since_start "$1" | grep -E '"msg": ?"probes listening"' | tail -n 1 |
    jq -r '.port // empty' 2>/dev/null
}

# ---- the default: loopback, no token for loopback peers ---------------------------
kvr_start_or_give_up sec --leader-elect=false
port=$(ctl_port sec)
pport=$(probe_port sec)
base=http://127.0.0.1:$port
pbase=http://127.0.0.1:$pport
kvr_check_eq "the probes have a listener of their own, on another port" \
  "$([ -n "$pport" ] && [ "$pport" != "$port" ] && echo yes)" yes
kvr_check_eq "probe port: GET /healthz is 200" "$(code_of "$pbase/healthz")" 200
kvr_check_eq "probe port: GET /readyz is 200 (caches synced)" "$(code_of "$pbase/readyz")" 200
kvr_check_eq "probe port: /metrics, /api/state and / are not served there (404)" \
  "$(code_of "$pbase/metrics") $(code_of "$pbase/api/state") $(code_of "$pbase/")" "404 404 404"
kvr_check_eq "probe port: a foreign Host does not matter to the kubelet's probes" \
  "$(code_of -H 'Host: 10.1.2.3:8081' "$pbase/healthz")" 200

# ---- Host: DNS rebinding ------------------------------------------------------------
kvr_check_eq "GET /api/state with our own Host (127.0.0.1:$port) is 200" \
  "$(code_of "$base/api/state")" 200
kvr_check_eq "GET /api/state with Host localhost:$port (kubectl port-forward) is 200" \
  "$(code_of -H "Host: localhost:$port" "$base/api/state")" 200
body=$(curl -s --max-time 10 -H "Host: attacker.example:$port" "$base/api/state")
kvr_check_eq "a rebinding-style Host (attacker.example:$port) is refused 403" \
  "$(code_of -H "Host: attacker.example:$port" "$base/api/state")" 403
kvr_check_eq "... and its answer carries no state" "$(jq -e . <<<"$body" >/dev/null 2>&1 && echo json)" ""
kvr_check_eq "a Host that only starts with localhost (localhost.attacker.example) is refused 403" \
  "$(code_of -H "Host: localhost.attacker.example:$port" "$base/metrics")" 403
kvr_check_eq "a request without a Host (HTTP/1.0) is refused 400" \
  "$(code_of -0 -H 'Host:' "$base/api/state")" 400

# ---- Origin: cross-site requests and WebSocket hijacking ------------------------------
# A raw upgrade, as a browser script on another site would send it.
ws_upgrade() { # ORIGIN|-  -> the status code of the upgrade's answer
  local -a o=()
  [ "$1" != - ] && o=(-H "Origin: $1")
  curl -s -o /dev/null -w '%{http_code}' --max-time 3 --http1.1 \
    -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "${o[@]}" "$base/ws"
}
kvr_check_eq "a WebSocket upgrade from a foreign Origin (http://evil.example) is refused 403" \
  "$(ws_upgrade http://evil.example)" 403
kvr_check_eq "a WebSocket upgrade with Origin null (a sandboxed frame, a file:) is refused 403" \
  "$(ws_upgrade null)" 403
kvr_check_eq "a WebSocket upgrade from another port of our host is refused 403" \
  "$(ws_upgrade "http://127.0.0.1:$((port == 65535 ? 1 : port + 1))")" 403
kvr_check_eq "a same-origin WebSocket upgrade is accepted (101)" \
  "$(ws_upgrade "http://127.0.0.1:$port")" 101
kvr_check_eq "a WebSocket upgrade without Origin (not a browser) is accepted (101)" \
  "$(ws_upgrade -)" 101
kvr_check_eq "a cross-origin GET of /api/state is refused 403" \
  "$(code_of -H 'Origin: http://evil.example' "$base/api/state")" 403
kvr_check_eq "a same-origin GET of /api/state is 200" \
  "$(code_of -H "Origin: http://127.0.0.1:$port" "$base/api/state")" 200
refused() { # REASON -> the counter's value on /metrics
  curl -s --max-time 10 "$base/metrics" |
    awk -v r="kvrecover_http_refused_total{reason=\"$1\"}" '$1 == r {print $2}'
}
kvr_check_eq "refusals are counted: kvrecover_http_refused_total{reason=\"host\"} 4" \
  "$(refused host)" 4
kvr_check_eq "refusals are counted: kvrecover_http_refused_total{reason=\"origin\"} 4" \
  "$(refused origin)" 4

# ---- a real browser on another origin -------------------------------------------------
if command -v chromium >/dev/null; then
  if cdp_start; then
    # The attacker's page: served by a plain web server on another port of
    # the admin's machine (another origin), it opens the dashboard's
    # WebSocket and records whatever arrives.
    evil=$CTL_DIR/evil
    mkdir -p "$evil"
    cat >"$evil/index.html" <<EOF
<!doctype html><title>not the dashboard</title>
<script>
window.got = []; window.ended = '';
const ws = new WebSocket('ws://127.0.0.1:$port/ws');
ws.onmessage = e => window.got.push(String(e.data).slice(0, 80));
ws.onerror = () => { window.ended += 'error '; };
ws.onclose = e => { window.ended += 'close ' + e.code; };
</script>
EOF
    python3 -u -m http.server --bind 127.0.0.1 0 --directory "$evil" >"$CTL_DIR/evil.log" 2>&1 &
    evil_pid=$!
    t_cleanup_add "kill $evil_pid"
    evil_port_of() { grep -oE 'port [0-9]+' "$CTL_DIR/evil.log" | head -n 1 | awk '{print $2}'; }
    evil_up() { [ -n "$(evil_port_of)" ]; }
    t_wait 60 evil_up
    evil_port=$(evil_port_of)
    if [ -n "$evil_port" ] && out=$(cdp open "http://127.0.0.1:$evil_port/"); then
      if out=$(cdp wait 20 "window.ended.includes('close')"); then
        t_pass "a page from another origin (http://127.0.0.1:$evil_port) cannot open the dashboard's WebSocket"
      else
        t_fail "a page from another origin cannot open the dashboard's WebSocket" "$out"
      fi
      kvr_check_eq "... and receives no state from it" "$(cdp eval 'window.got.length')" "ok 0"
    else
      t_fail "the attacker's page opens in chromium" "${out:-no port for the page server}"
    fi
    # The control: the same script on the dashboard's own page gets the state.
    if cdp open "$base/" >/dev/null &&
       cdp eval "window.got = []; new WebSocket('ws://127.0.0.1:$port/ws').onmessage = e => window.got.push(String(e.data).slice(0, 80)); 1" >/dev/null &&
       out=$(cdp wait 20 "window.got.length > 0 && window.got[0].startsWith('{')"); then
      t_pass "the dashboard's own page opens the same WebSocket and gets the state"
    else
      t_fail "the dashboard's own page opens the same WebSocket and gets the state" "${out:-}"
    fi
    cdp quit >/dev/null
  else
    t_fail "headless chromium starts" "$CDP_ERR"
  fi
else
  t_fail "chromium is installed" "apt-get install --no-install-recommends chromium (make deps)"
fi

# ---- 400 idle connections from one peer -------------------------------------------------
# The measurement behind issue 12: 400 idle TCP connections made 12 of 13
# /healthz probes fail over 50 s. They are held open here by a small Python
# process, from 127.0.0.3, to both listeners.
hold_py='
import socket, sys, time
port, pport, src = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = []
for i in range(400):
    for p in (port, pport):
        try:
            s = socket.socket(); s.settimeout(2); s.bind((src, 0)); s.connect(("127.0.0.1", p))
            held.append(s)
        except OSError:
            pass
print("held", len(held), flush=True)
time.sleep(float(sys.argv[4]))
'
python3 -c "$hold_py" "$port" "$pport" 127.0.0.3 60 >"$CTL_DIR/hold.out" 2>&1 &
hold_pid=$!
t_cleanup_add "kill $hold_pid"
held() { grep -q '^held ' "$CTL_DIR/hold.out"; }
if t_wait 60 held; then
  t_note "$(cat "$CTL_DIR/hold.out") connections opened from 127.0.0.3"
  fails=0
  for i in $(seq 1 13); do
    path=/healthz
    [ $((i % 2)) = 0 ] && path=/readyz
    [ "$(code_of --max-time 1 "$pbase$path")" = 200 ] || fails=$((fails + 1))
    sleep 0.2
  done
  kvr_check_eq "with 400 idle connections held from one peer, 13 of 13 probes answer within 1 s" \
    "$fails" 0
  kvr_check_eq "... and the dashboard listener still answers another peer (127.0.0.2)" \
    "$(code_of --max-time 2 --interface 127.0.0.2 "$base/api/state")" 200
  kvr_check_eq "... the peer limit is counted: kvrecover_http_refused_total{reason=\"peer_limit\"} > 0" \
    "$([ "$(refused peer_limit)" -gt 0 ] 2>/dev/null && echo yes)" yes
else
  t_fail "400 idle connections are opened" "$(cat "$CTL_DIR/hold.out")"
fi
kill "$hold_pid" 2>/dev/null
wait "$hold_pid" 2>/dev/null

# ---- token authentication -------------------------------------------------------------
# The controller's identity needs `create` on tokenreviews and
# subjectaccessreviews (the rule the README's "The HTTP surface" lists), which
# the built-in ClusterRole system:auth-delegator grants.
crb=kvr-e2e-$ns-auth-delegator
kubectl create clusterrolebinding "$crb" --clusterrole=system:auth-delegator \
  --user="$CTL_SA_USER" >/dev/null &&
  t_cleanup_add "kubectl delete clusterrolebinding $crb --ignore-not-found >/dev/null"
kubectl apply -f "$(t_root)/manifests/metrics-reader.yaml" >/dev/null ||
  t_fail "apply manifests/metrics-reader.yaml" "kubectl apply failed"
kubectl create serviceaccount -n "$ns" reader >/dev/null
kubectl create serviceaccount -n "$ns" nobody >/dev/null
rcrb=kvr-e2e-$ns-metrics-reader
kubectl create clusterrolebinding "$rcrb" --clusterrole=kvrecover-metrics-reader \
  --serviceaccount="$ns:reader" >/dev/null &&
  t_cleanup_add "kubectl delete clusterrolebinding $rcrb --ignore-not-found >/dev/null"
reader=$(kubectl create token -n "$ns" reader --duration=1h)
nobody=$(kubectl create token -n "$ns" nobody --duration=1h)

kvr_start_or_give_up secauth --leader-elect=false --http-auth=tokenreview
aport=$(ctl_port secauth)
apport=$(probe_port secauth)
abase=http://127.0.0.1:$aport
kvr_check_eq "with token auth, GET /metrics without a token is 401" "$(code_of "$abase/metrics")" 401
kvr_check_eq "... with a Bearer challenge" \
  "$(curl -s -D - -o /dev/null --max-time 10 "$abase/metrics" | tr -d '\r' |
     grep -i '^www-authenticate:' | cut -d' ' -f2)" Bearer
kvr_check_eq "with token auth, a token the API server does not know is 401" \
  "$(code_of -H 'Authorization: Bearer not-a-token' "$abase/metrics")" 401
kvr_check_eq "with token auth, a ServiceAccount token without the reader role is 403" \
  "$(code_of -H "Authorization: Bearer $nobody" "$abase/metrics")" 403
kvr_check_eq "with token auth, a token bound to kvrecover-metrics-reader reads /metrics (200)" \
  "$(code_of -H "Authorization: Bearer $reader" "$abase/metrics")" 200
kvr_check_eq "... and only /metrics: /api/state is 403 for it (though Kubernetes lets it get /api/*)" \
  "$(code_of -H "Authorization: Bearer $reader" "$abase/api/state")" 403
viewer=$(kubectl create serviceaccount -n "$ns" viewer >/dev/null &&
         kubectl create clusterrolebinding "$rcrb-viewer" --clusterrole=kvrecover-dashboard-viewer \
           --serviceaccount="$ns:viewer" >/dev/null &&
         kubectl create token -n "$ns" viewer --duration=1h)
t_cleanup_add "kubectl delete clusterrolebinding $rcrb-viewer --ignore-not-found >/dev/null"
kvr_check_eq "a token bound to kvrecover-dashboard-viewer reads /, /api/state and /metrics" \
  "$(for p in / /api/state /metrics; do code_of -H "Authorization: Bearer $viewer" "$abase$p"; echo -n ' '; done)" \
  "200 200 200 "
kvr_check_eq "... and a WebSocket upgrade without a token is refused 401 before it happens" \
  "$(base=$abase ws_upgrade -)" 401
kvr_check_eq "with token auth, the probes need no token (probe port /healthz, /readyz)" \
  "$(code_of "http://127.0.0.1:$apport/healthz") $(code_of "http://127.0.0.1:$apport/readyz")" \
  "200 200"
# A decision is remembered 10 s, so one token costs at most one review per
# 10 s window however often it scrapes: 20 scrapes in T seconds cost at most
# 1 + T/10 reviews (20 without the cache, unless they took 190 s).
reviews_now() {
  curl -s --max-time 10 -H "Authorization: Bearer $reader" "$abase/metrics" |
    awk '$1 ~ /^kvrecover_http_auth_reviews_total/ {s += $2} END {print s + 0}'
}
r0=$(reviews_now)
t0=$(date +%s)
for i in $(seq 1 20); do code_of -H "Authorization: Bearer $reader" "$abase/metrics" >/dev/null; done
r1=$(reviews_now)
elapsed=$(($(date +%s) - t0 + 1))
kvr_check_eq "a scraper's repeated requests are decided from the cache: 20 scrapes in ${elapsed}s, $((r1 - r0)) reviews" \
  "$([ $((r1 - r0)) -le $((1 + elapsed / 10)) ] && echo yes)" yes
m=$(curl -s --max-time 10 -H "Authorization: Bearer $reader" "$abase/metrics")
kvr_check_eq "the reviews are counted by result: allowed, unauthenticated and forbidden" \
  "$(grep -oE 'kvrecover_http_auth_reviews_total\{result="[a-z]+"\}' <<<"$m" | sort |
     sed -E 's/.*"(.*)".*/\1/' | paste -sd,)" "allowed,forbidden,unauthenticated"

t_summary
