# Sourced by the e2e scripts that drive a browser (test_dashboard.sh,
# test_http_security.sh); never run. Needs lib.sh (t_cleanup_add, t_pass,
# t_fail) and $CTL_DIR.
#
# cdp.py (beside this file) runs as a bash coprocess: one command line in,
# one answer line out, so that the same page stays open while a test changes
# the cluster around it.

cdp__py=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cdp.py

# cdp_start: starts headless Chromium and waits (90 s) for it. Returns 0, or
# 1 with why not in $CDP_ERR. Not from a command substitution: the coprocess
# would belong to that subshell.
cdp_start() {
  local started=""
  CDP_ERR=""
  coproc CDP { "$cdp__py" 2>"$CTL_DIR/cdp.log"; }
  t_cleanup_add "kill $CDP_PID"
  IFS= read -r -t 90 started <&"${CDP[0]}"
  [ "$started" = "ok started" ] && return 0
  CDP_ERR="${started:-no answer}; $(tail -n 5 "$CTL_DIR/cdp.log")"
  return 1
}

# cdp CMD...: sends one command, prints its answer line; true when it is ok.
cdp() {
  local line cmd="$*"
  echo "${cmd//$'\n'/ }" >&"${CDP[1]}" || { echo "err browser gone"; return 1; }
  if ! IFS= read -r -t 120 line <&"${CDP[0]}"; then echo "err no answer"; return 1; fi
  echo "$line"
  [ "${line%% *}" = ok ]
}

# cdp_check NAME CMD...: passes NAME when cdp CMD answers ok.
cdp_check() {
  local name=$1 out
  shift
  if out=$(cdp "$@"); then t_pass "$name"; else t_fail "$name" "$out"; fi
}
