#!/usr/bin/env bash
# The offline CLI, bin/kvrecover, from the outside: the paper's case study in
# both modes and both output formats, help and usage, and bad input. Every
# bad input must exit 2 with exactly one line on stderr that names the file
# (and, for the fixtures, says what is wrong: each tests/fixtures/cli-* file
# with a "# error: TEXT" line must produce a message containing TEXT), print
# nothing on stdout, and never crash or hang.
#
#   KVR_BIN=DIR     where kvrecover is (default: bin/ of the repository)
#   KVR_WRAP="valgrind --error-exitcode=99 ..."
#                   run every kvrecover under a wrapper: any leak or memory
#                   error changes the exit status and fails the case
#
# Ends with "N passed, N failed"; exits 1 when something failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$(dirname "$here")")
cd "$root" || exit 1
kvr=${KVR_BIN:-$root/bin}/kvrecover
fx=tests/fixtures
ex=examples/paper
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }

# run ARGS... : runs kvrecover (wrapped, with a time limit against hangs);
# sets rc, leaves stdout in $tmp/out and stderr in $tmp/err.
run() {
  # shellcheck disable=SC2086
  timeout 120 ${KVR_WRAP:-} "$kvr" "$@" >"$tmp/out" 2>"$tmp/err" <"${STDIN:-/dev/null}"
  rc=$?
}

# ok_run NAME ARGS... : `kvrecover score ARGS` ran: exit 0, nothing on stderr.
ok_run() {
  local name=$1; shift
  run score "$@"
  if [ "$rc" != 0 ]; then fail "$name" "exit $rc, stderr: $(head -c 300 "$tmp/err")"; return 1; fi
  if [ -s "$tmp/err" ]; then fail "$name" "stderr not empty: $(head -c 300 "$tmp/err")"; return 1; fi
  return 0
}

# jq_check NAME FILTER : the JSON on stdout satisfies FILTER.
jq_check() {
  if jq -e "$2" "$tmp/out" >/dev/null 2>&1; then pass "$1"
  else fail "$1" "jq '$2' is false on $(head -c 400 "$tmp/out")"; fi
}

# bad NAME FILE EXPECT ARGS... : exit 2, stdout empty, one stderr line
# starting "kvrecover: FILE: " and containing EXPECT (when not empty).
bad() {
  local name=$1 file=$2 expect=$3 lines; shift 3
  run "$@"
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" != 2 ]; then
    fail "$name" "exit $rc (want 2), stderr: $(head -c 300 "$tmp/err")"
  elif [ "$lines" != 1 ]; then
    fail "$name" "$lines lines on stderr (want 1): $(head -c 300 "$tmp/err")"
  elif [ -s "$tmp/out" ]; then
    fail "$name" "stdout not empty: $(head -c 200 "$tmp/out")"
  elif ! grep -qF -- "kvrecover: $file: " "$tmp/err"; then
    fail "$name" "message does not name $file: $(cat "$tmp/err")"
  elif [ -n "$expect" ] && ! grep -qF -- "$expect" "$tmp/err"; then
    fail "$name" "message lacks '$expect': $(cat "$tmp/err")"
  else
    pass "$name"
  fi
}

# usage NAME EXPECT ARGS... : a usage error: exit 2, one line with EXPECT
# and a pointer to --help.
usage() {
  local name=$1 expect=$2; shift 2
  run "$@"
  if [ "$rc" != 2 ]; then fail "$name" "exit $rc (want 2)"
  elif [ "$(wc -l <"$tmp/err")" != 1 ] || ! grep -q -- "--help" "$tmp/err"; then
    fail "$name" "want one line with a --help hint: $(head -c 300 "$tmp/err")"
  elif ! grep -qF -- "$expect" "$tmp/err"; then fail "$name" "lacks '$expect': $(cat "$tmp/err")"
  elif [ -s "$tmp/out" ]; then fail "$name" "stdout not empty"
  else pass "$name"; fi
}

# ranking_rows FILE : the ranking's rows of a table output (after the header, up to
# the blank line before the replacement).
ranking_rows() { awk '/RANK/{h=1; next} h && !NF{exit} h' "$1"; }

# The "# error: TEXT" line of a fixture.
expect_of() { sed -n 's/^# error: //p' "$1" | head -n 1; }

if [ ! -x "$kvr" ]; then
  echo "FAIL setup: $kvr is not built"; echo "0 passed, 1 failed"; exit 1
fi
# --- what it links -----------------------------------------------------------
# The offline command is the sim and base layers: it must not need the
# Kubernetes client's libcurl, the HTTP side's libwebsockets or the cache's
# zlib (the Makefile's CLI_LAYERS).
if libs=$(ldd "$kvr" 2>&1); then
  extra=$(grep -oE '^[[:space:]]*lib(curl|websockets|z)\.so[^ ]*' <<<"$libs" | tr -d ' \t' | tr '\n' ' ')
  if [ -z "$extra" ]; then pass "links: no libcurl, libwebsockets or zlib"
  else fail "links: no libcurl, libwebsockets or zlib" "ldd shows $extra"; fi
else
  fail "links: no libcurl, libwebsockets or zlib" "ldd failed: $libs"
fi

P=(--policy "$ex/policy.yaml")
C=(--policy "$ex/policy-coverage.yaml")
L=(--pool "$ex/pool.yaml")
F=(--failed "$ex/failed-vmi.yaml")

# --- the paper's case study (SPEC.md section 4) ------------------------------

if ok_run "paper: table runs" "${P[@]}" "${L[@]}" "${F[@]}"; then
  out=$tmp/out
  # the summary names the selection
  if grep -qx "selected vm-005, score 0.6667" "$out"; then pass "paper: table summary selects vm-005 at 0.6667"
  else fail "paper: table summary selects vm-005 at 0.6667" "$(head -n 3 "$out")"; fi
  # the header and the rows in order, the selection marked with *
  hdr=$(grep -n 'RANK' "$out" | head -n 1)
  rows=$(ranking_rows "$out" | sed 's/^\* /*/' | awk '{print $1, $2, $3, $4, $5}')
  want=$'*1 vm-005 0.6667 yes \n2 vm-002 0.3333 no BelowThreshold:\n3 vm-004 0.1667 no BelowThreshold:\n4 vm-003 0.0000 no BelowThreshold:'
  want=$(printf '%s\n' "$want" | sed 's/ *$//')
  rows=$(printf '%s\n' "$rows" | sed 's/ *$//')
  if [ "$rows" = "$want" ]; then pass "paper: table ranks vm-005, vm-002, vm-004, vm-003 with the paper's scores"
  else fail "paper: table ranks vm-005, vm-002, vm-004, vm-003 with the paper's scores" "got: $rows"; fi
  if echo "$hdr" | grep -qE 'RANK +NAME +SCORE +ELIGIBLE +REASON$'; then pass "paper: table header RANK NAME SCORE ELIGIBLE REASON"
  else fail "paper: table header RANK NAME SCORE ELIGIBLE REASON" "$hdr"; fi
  # aligned: every row's name starts in the NAME column
  col=$(awk '/RANK/{print index($0, "NAME"); exit}' "$out")
  misaligned=$(ranking_rows "$out" | awk -v c="$col" 'substr($0, c, 3) != "vm-"')
  if [ -z "$misaligned" ] && [ "$col" -gt 0 ]; then pass "paper: table columns are aligned"
  else fail "paper: table columns are aligned" "$misaligned"; fi
  if ! ranking_rows "$out" | grep -q 'vm-001'; then pass "paper: the failed VM is not its own candidate"
  else fail "paper: the failed VM is not its own candidate" "vm-001 listed"; fi
  if [ "$(grep -c '^\*' "$out")" = 1 ]; then pass "paper: exactly one row marked selected"
  else fail "paper: exactly one row marked selected" "$(grep -c '^\*' "$out") rows"; fi
fi

if ok_run "paper: json runs" -o json "${P[@]}" "${L[@]}" "${F[@]}"; then
  jq_check "paper: json selects vm-005" '.selected == "vm-005" and .failed == "vm-001"'
  jq_check "paper: json mode and threshold" '.mode == "Jaccard" and .threshold == 0.5'
  jq_check "paper: json scores rounded to 6 decimals" \
    '[.candidates[] | [.name, .score]] == [["vm-005",0.666667],["vm-002",0.333333],["vm-004",0.166667],["vm-003",0]]'
  jq_check "paper: json eligibility and reasons" \
    '[.candidates[] | [.eligible, .reason]] == [[true,""],[false,"BelowThreshold"],[false,"BelowThreshold"],[false,"BelowThreshold"]]'
  jq_check "paper: json contributions of vm-005" \
    '.candidates[0].contributions == {"language":0.3,"database":0.2,"webserver":0.1}'
  jq_check "paper: json contributions of vm-002 (language only)" \
    '.candidates[1].contributions.language == 0.3 and .candidates[1].contributions.database == 0'
  if [ "$(wc -l <"$tmp/out")" = 1 ]; then pass "paper: json is one object on one line"
  else fail "paper: json is one object on one line" "$(wc -l <"$tmp/out") lines"; fi
fi

if ok_run "paper: --output=json form" --output=json "${P[@]}" "${L[@]}" "${F[@]}"; then
  jq_check "paper: --output=json selects vm-005" '.selected == "vm-005"'
fi

if ok_run "coverage: table runs" "${C[@]}" "${L[@]}" "${F[@]}"; then
  rows=$(ranking_rows "$tmp/out" | sed 's/^\* /*/' | awk '{print $1, $2, $3, $4}' | head -n 2)
  if [ "$rows" = $'*1 vm-005 1.0000 yes\n2 vm-002 0.5000 yes' ]; then
    pass "coverage: table selects vm-005 at 1.0, vm-002 eligible at 0.5"
  else fail "coverage: table selects vm-005 at 1.0, vm-002 eligible at 0.5" "$rows"; fi
fi
if ok_run "coverage: json runs" -o json "${C[@]}" "${L[@]}" "${F[@]}"; then
  jq_check "coverage: json vm-005 1.0 and vm-002 0.5 eligible" \
    '.mode == "Coverage" and .selected == "vm-005" and
     [.candidates[] | select(.eligible) | [.name, .score]] == [["vm-005",1],["vm-002",0.5]]'
  jq_check "coverage: json vm-004 0.166667 below threshold" \
    '[.candidates[] | select(.name == "vm-004") | .score, .reason] == [0.166667, "BelowThreshold"]'
fi

if ok_run "verbose: table runs" -v "${P[@]}" "${L[@]}" "${F[@]}"; then
  if grep -qE 'ELIGIBLE +LANGUAGE +DATABASE +WEBSERVER +REASON$' "$tmp/out" &&
     grep -qE '^\* 1 +vm-005 +0\.6667 +yes +0\.3000 +0\.2000 +0\.1000$' "$tmp/out"; then
    pass "verbose: table shows per-category contributions"
  else fail "verbose: table shows per-category contributions" "$(cat "$tmp/out")"; fi
fi
if ok_run "verbose: json runs" -v -o json "${P[@]}" "${L[@]}" "${F[@]}"; then
  jq_check "verbose: json adds detail to ineligible candidates" \
    '(.candidates[1].detail | test("below the threshold")) and (.candidates[0] | has("detail") | not)'
fi

# --- other ways in -----------------------------------------------------------

XL=(--pool "$fx/cli-pool-extra.yaml")
if ok_run "pools: several --pool files, one a kind: List" -o json "${P[@]}" "${L[@]}" "${XL[@]}" "${F[@]}"; then
  jq_check "pools: a member without data.vm is NoTemplate, never selected" \
    '.selected == "vm-005" and (.candidates[] | select(.name == "vm-006") | .score == 1 and .reason == "NoTemplate")'
  jq_check "pools: a required category that differs is RequiredMismatch" \
    '.candidates[] | select(.name == "vm-007") | .eligible == false and .reason == "RequiredMismatch"'
  jq_check "pools: ties sorted by name (vm-006 before vm-007)" \
    '[.candidates[].name][0:3] == ["vm-006","vm-007","vm-005"]'
  cp "$tmp/out" "$tmp/forward.json"
  if ok_run "pools: reversed file order runs" -o json "${P[@]}" "${XL[@]}" "${L[@]}" "${F[@]}"; then
    if cmp -s "$tmp/out" "$tmp/forward.json"; then pass "pools: the ranking does not depend on file order"
    else fail "pools: the ranking does not depend on file order" "outputs differ"; fi
  fi
fi
if ok_run "pools: table names the reasons" "${P[@]}" "${L[@]}" "${XL[@]}" "${F[@]}"; then
  if grep -qE '^  1 +vm-006 +1\.0000 +no +NoTemplate' "$tmp/out" &&
     grep -qE '^  2 +vm-007 +1\.0000 +no +RequiredMismatch: .*os' "$tmp/out" &&
     grep -qE '^\* 3 +vm-005 ' "$tmp/out"; then pass "pools: table shows NoTemplate and RequiredMismatch"
  else fail "pools: table shows NoTemplate and RequiredMismatch" "$(cat "$tmp/out")"; fi
fi

SL=(--pool "$fx/cli-pool-shared.yaml")
if ok_run "pools: a member that shares a disk runs" -o json -v "${P[@]}" "${L[@]}" "${SL[@]}" "${F[@]}"; then
  jq_check "pools: a member whose volume uses another disk is SharedDisk, never selected" \
    '.selected == "vm-005" and (.candidates[0] | .name == "vm-008" and .score == 1 and
     .eligible == false and .reason == "SharedDisk" and
     (.detail | test("volume data uses persistentVolumeClaim shop-db")))'
  jq_check "pools: a member whose volume is its own dataVolumeTemplate is not SharedDisk" \
    '.candidates[] | select(.name == "vm-009") | .reason != "SharedDisk"'
fi
if ok_run "pools: table names SharedDisk" "${P[@]}" "${L[@]}" "${SL[@]}" "${F[@]}"; then
  if grep -qE '^  1 +vm-008 +1\.0000 +no +SharedDisk: volume data uses persistentVolumeClaim shop-db' "$tmp/out"; then
    pass "pools: table shows SharedDisk and the disk"
  else fail "pools: table shows SharedDisk and the disk" "$(cat "$tmp/out")"; fi
fi

for kind in vm configmap; do
  if ok_run "failed as a $kind runs" -o json "${P[@]}" "${L[@]}" --failed "$fx/cli-failed-$kind.yaml"; then
    jq_check "failed as a $kind: same selection as the VMI" \
      '.failed == "vm-001" and .selected == "vm-005" and .candidates[0].score == 0.666667 and
       ([.candidates[].name] | index("vm-001") == null)'
  fi
done

if STDIN=$ex/failed-vmi.yaml ok_run "stdin: --failed - runs" -o json "${P[@]}" "${L[@]}" --failed -; then
  jq_check "stdin: --failed - reads standard input" '.selected == "vm-005"'
fi

if ok_run "no selection: exit 0" -o json --policy "$fx/cli-policy-strict.yaml" "${L[@]}" "${F[@]}"; then
  jq_check "no selection: selected is null, candidates still listed" \
    '.selected == null and (.candidates | length) == 4 and all(.candidates[]; .eligible == false)'
fi
if ok_run "no selection: table runs" --policy "$fx/cli-policy-strict.yaml" "${L[@]}" "${F[@]}"; then
  if grep -q '^selected none' "$tmp/out" && ! grep -q '^\*' "$tmp/out"; then pass "no selection: table says so"
  else fail "no selection: table says so" "$(head -n 3 "$tmp/out")"; fi
fi

# --- the replacement (CONTRACT.md "The replacement" 3-5) ---------------------
# What the controller would create from the selected member: its name, and
# each change to the member's data.vm as a line and as a JSON Patch-like item.

RL=(--pool "$ex/pool.yaml" --pool "$fx/cli-pool-shared.yaml" --pool "$fx/cli-pool-replica.yaml")
UL=(--pool "$fx/cli-pool-unbuildable.yaml")
FU=(--failed "$fx/cli-failed-vm-uid.yaml")
if ok_run "replacement: json runs" -o json "${P[@]}" "${RL[@]}" "${FU[@]}"; then
  jq_check "replacement: a SharedDisk member scoring 1.0 is not selected, says why, and is not built from" \
    '.selected == "vm-010" and .candidates[0].name == "vm-008" and .candidates[0].reason == "SharedDisk" and
     .replacement.from == "vm-010"'
  jq_check "replacement: added beside the contract's keys, which are unchanged" \
    'has("replacement") and (keys - ["replacement"]) == ["candidates","failed","mode","selected","threshold"] and
     (.candidates[0] | keys) == ["contributions","eligible","name","reason","score"]'
  # replica_name("vm-001", status.startFailure.lastFailedVMIUID), pinned in test_replica.c's way
  jq_check "replacement: named as the controller names it, from the last failed VMI's uid" \
    '.replacement.name == "vm-001-766717e9b3" and
     .replacement.failedUid == "7c9e6679-7425-40de-944b-e07fc1f90ae7" and .replacement.notes == []'
  jq_check "replacement: labels are the failed VM's plus kvrecover's, not the member's" \
    '.replacement.changes[] | select(.path == "/metadata/labels") | .op == "replace" and
     .value == {"app":"shop","tier":"web","kvrecover.io/replaces":"vm-001","kvrecover.io/policy":"paper",
                "kvrecover.io/template":"vm-010"} and .old == {"app":"member","tier":"pool"} and
     (.text | test("the failed VM.s \\(app=shop, tier=web\\).*not the member.s \\(app=member, tier=pool\\)"))'
  jq_check "replacement: template labels are the failed VM's template labels" \
    '.replacement.changes[] | select(.path == "/spec/template/metadata/labels") | .op == "replace" and
     .value == {"app":"shop","kubevirt.io/domain":"vm-001"} and .old == {"app":"member"}'
  jq_check "replacement: the dataVolumeTemplate is renamed and its volume follows" \
    '[.replacement.changes[] | select(.op == "replace" and (.path | test("dataVolume")))] ==
     [{"op":"replace","path":"/spec/dataVolumeTemplates/0/metadata/name","value":"vm-001-766717e9b3-root",
       "old":"root","text":"renamed dataVolumeTemplate root to vm-001-766717e9b3-root"},
      {"op":"replace","path":"/spec/template/spec/volumes/0/dataVolume/name","value":"vm-001-766717e9b3-root",
       "old":"root","text":"pointed volume rootdisk at dataVolume vm-001-766717e9b3-root"}]'
  jq_check "replacement: firmware uuid and MAC address removed" \
    '[.replacement.changes[] | select(.op == "remove") | [.path, .old]] |
     any(. == ["/spec/template/spec/domain/firmware/uuid", "5d307ca9-b3ef-428c-8861-06e72d69f223"]) and
     any(. == ["/spec/template/spec/domain/devices/interfaces/0/macAddress", "02:00:00:00:00:10"])'
  jq_check "replacement: runStrategy Always, the member's uid and status left out" \
    '([.replacement.changes[] | select(.path == "/spec/runStrategy")] ==
      [{"op":"replace","path":"/spec/runStrategy","value":"Always","old":"Halted",
        "text":"set runStrategy Always (was Halted)"}]) and
     ([.replacement.changes[] | select(.op == "remove") | .path] |
      any(. == "/metadata/uid") and any(. == "/status"))'
  jq_check "replacement: the score and failed uid annotations, no decision time" \
    '.replacement.changes[] | select(.path == "/metadata/annotations") | .value ==
     {"kvrecover.io/score":"1.0000","kvrecover.io/failed-uid":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}'
  jq_check "replacement: every change has an op, a JSON Pointer and a line" \
    '(.replacement.changes | length) >= 12 and all(.replacement.changes[];
       (.op | IN("add","replace","remove")) and (.path | startswith("/")) and (.text | length) > 0 and
       (if .op == "remove" then has("value") | not else has("value") end))'
fi

if ok_run "replacement: table runs" "${P[@]}" "${RL[@]}" "${FU[@]}"; then
  out=$tmp/out
  if grep -qE '^  1 +vm-008 +1\.0000 +no +SharedDisk: ' "$out" && grep -qE '^\* 2 +vm-010 +1\.0000 +yes' "$out" &&
     grep -q "^replacement .*, built from vm-010's data.vm:$" "$out"; then
    pass "replacement: table: SharedDisk vm-008 is not selected, the replacement is built from vm-010"
  else fail "replacement: table: SharedDisk vm-008 is not selected, the replacement is built from vm-010" "$(cat "$out")"; fi
  # after the ranking, a blank line, the name, then one "  - " line per change
  after=$(awk '/RANK/{h=1; next} h && !NF{b=1; next} b' "$out")
  want="replacement vm-001-766717e9b3, built from vm-010's data.vm:"
  if [ "$(head -n 1 <<<"$after")" = "$want" ]; then pass "replacement: table names it after the ranking"
  else fail "replacement: table names it after the ranking" "$after"; fi
  for line in "set metadata.labels: the failed VM's (app=shop, tier=web) plus kvrecover.io/replaces=vm-001, kvrecover.io/policy=paper, kvrecover.io/template=vm-010; not the member's (app=member, tier=pool)" \
              "set the template's labels to the failed VM's (app=shop, kubevirt.io/domain=vm-001), not the member's (app=member)" \
              "renamed dataVolumeTemplate root to vm-001-766717e9b3-root" \
              "pointed volume rootdisk at dataVolume vm-001-766717e9b3-root" \
              "dropped domain.firmware.uuid" "dropped macAddress of interface default" \
              "set runStrategy Always (was Halted)"; do
    if grep -qxF -- "  - $line" <<<"$after"; then pass "replacement: table lists: $line"
    else fail "replacement: table lists: $line" "$after"; fi
  done
  if [ -n "$after" ] && ! grep -q '^note:' "$out"; then pass "replacement: table: no note when the file says it all"
  else fail "replacement: table: no note when the file says it all" "$after"; fi
fi

# A template that does not build is refused as the controller refuses it,
# and the next candidate is built from.
if ok_run "replacement: unbuildable member, json" -o json -v "${P[@]}" "${RL[@]}" "${UL[@]}" "${FU[@]}"; then
  jq_check "replacement: a template that does not build is NoTemplate with why; the next is selected" \
    '.selected == "vm-010" and .replacement.from == "vm-010" and
     (.candidates[] | select(.name == "vm-009-broken") | .eligible == false and .reason == "NoTemplate" and
      .detail == "data.vm: spec.dataVolumeTemplates[0].metadata.name: required")'
fi
if ok_run "replacement: unbuildable member, table" "${P[@]}" "${RL[@]}" "${UL[@]}" "${FU[@]}"; then
  if grep -qE '^  2 +vm-009-broken +1\.0000 +no +NoTemplate: data\.vm: spec\.dataVolumeTemplates\[0\]\.metadata\.name: required$' "$tmp/out"; then
    pass "replacement: table says why the template does not build"
  else fail "replacement: table says why the template does not build" "$(cat "$tmp/out")"; fi
fi

# The failed VM's labels come from what the file has.
if ok_run "replacement: failed as a VMI" -o json "${P[@]}" "${RL[@]}" --failed "$fx/cli-failed-vmi-uid.yaml"; then
  jq_check "replacement: a VMI's uid names it; its labels minus KubeVirt's are the template's" \
    '.replacement.name == "vm-001-057c9867a0" and .replacement.failedUid == "3f2504e0-4f89-11d3-9a0c-0305e82c3301" and
     (.replacement.changes[] | select(.path == "/spec/template/metadata/labels") | .value == {"app":"shop"})'
  jq_check "replacement: a VMI has no VM labels, and a note says so" \
    '(.replacement.changes[] | select(.path == "/metadata/labels") | .value ==
      {"kvrecover.io/replaces":"vm-001","kvrecover.io/policy":"paper","kvrecover.io/template":"vm-010"}) and
     (.replacement.notes | length == 1 and (.[0] | test("not in a VirtualMachineInstance")))'
fi
if ok_run "replacement: failed as a ConfigMap" -o json "${P[@]}" "${L[@]}" --failed "$fx/cli-failed-configmap.yaml"; then
  jq_check "replacement: a ConfigMap's labels are its data.vm's, not the pool's" \
    '(.replacement.changes[] | select(.path == "/metadata/labels") | .value ==
      {"app":"paper","kvrecover.io/replaces":"vm-001","kvrecover.io/policy":"paper","kvrecover.io/template":"vm-005"}) and
     .replacement.failedUid == null and (.replacement.notes | length == 1 and (.[0] | test("no uid")))'
fi
if ok_run "replacement: paper table" "${P[@]}" "${L[@]}" "${F[@]}"; then
  if grep -qE '^replacement vm-001-[0-9a-f]{10}, built from vm-005.s data\.vm:$' "$tmp/out" &&
     grep -q '^note: the file has no uid' "$tmp/out"; then
    pass "replacement: paper table shows it, and that the file has no uid"
  else fail "replacement: paper table shows it, and that the file has no uid" "$(cat "$tmp/out")"; fi
fi
if ok_run "replacement: none selected, json" -o json --policy "$fx/cli-policy-strict.yaml" "${L[@]}" "${F[@]}"; then
  jq_check "replacement: null when nothing is selected" 'has("replacement") and .replacement == null and .selected == null'
fi

# --- help, version, usage ----------------------------------------------------

run --help
if [ "$rc" = 0 ] && grep -q 'score' "$tmp/out" && [ ! -s "$tmp/err" ]; then pass "help: kvrecover --help"
else fail "help: kvrecover --help" "exit $rc"; fi
run score --help
if [ "$rc" = 0 ] && grep -q -- '--policy FILE' "$tmp/out" && grep -q -- '--pool FILE' "$tmp/out" &&
   grep -q -- '--failed FILE' "$tmp/out" && grep -q -- '--output' "$tmp/out" &&
   grep -q 'Coverage' "$tmp/out" && grep -q 'Exit status' "$tmp/out"; then pass "help: kvrecover score --help describes every option"
else fail "help: kvrecover score --help describes every option" "exit $rc"; fi
run --version
if [ "$rc" = 0 ] && grep -qE '^kvrecover [0-9]+\.[0-9]+\.[0-9]+' "$tmp/out"; then pass "help: --version"
else fail "help: --version" "exit $rc: $(cat "$tmp/out")"; fi
run
if [ "$rc" = 2 ] && grep -q 'Usage' "$tmp/err" && [ ! -s "$tmp/out" ]; then pass "usage: no command prints usage on stderr, exit 2"
else fail "usage: no command prints usage on stderr, exit 2" "exit $rc"; fi

usage "usage: unknown flag" "unknown option --frobnicate" score --frobnicate "${P[@]}" "${L[@]}" "${F[@]}"
usage "usage: unknown command" "unknown command rank" rank
usage "usage: missing --failed" "--failed FILE is required" score "${P[@]}" "${L[@]}"
usage "usage: missing --pool" "--pool FILE is required" score "${P[@]}" "${F[@]}"
usage "usage: option without its value" "a value is needed after --failed" score "${P[@]}" "${L[@]}" --failed
usage "usage: unknown output format" "--output must be json or table" score -o yaml "${P[@]}" "${L[@]}" "${F[@]}"
usage "usage: stray argument" "unexpected argument" score "${P[@]}" "${L[@]}" "${F[@]}" extra
usage "usage: --policy twice" "repeated option --policy" score "${P[@]}" "${P[@]}" "${L[@]}" "${F[@]}"
usage "usage: two files from stdin" "only one FILE may be -" score "${P[@]}" --pool - --failed -

# --- bad input: each exits 2 with one line naming the file ------------------

for f in "$fx"/cli-policy-*; do
  case $f in *-strict.yaml) continue ;; esac
  bad "bad policy: $(basename "$f")" "$f" "$(expect_of "$f")" score --policy "$f" "${L[@]}" "${F[@]}"
done
for f in "$fx"/cli-pool-*; do
  case $f in *-extra.yaml | *-shared.yaml | *-replica.yaml | *-unbuildable.yaml) continue ;; esac
  bad "bad pool: $(basename "$f")" "$f" "$(expect_of "$f")" score "${P[@]}" "${L[@]}" --pool "$f" "${F[@]}"
done
for f in "$fx"/cli-failed-*; do
  case $f in *-vm.yaml | *-configmap.yaml | *-vm-uid.yaml | *-vmi-uid.yaml) continue ;; esac
  bad "bad failed VM: $(basename "$f")" "$f" "$(expect_of "$f")" score "${P[@]}" "${L[@]}" --failed "$f"
done

# Files that are bad whatever they are given as.
generic=("$fx/cli-empty.yaml:empty file" "$fx/cli-comment-only.yaml:no YAML document"
         "$fx/cli-binary.bin:binary" "$fx/cli-invalid-utf8.yaml:UTF-8"
         "$fx/cli-deep.yaml:nested deeper" "$fx/cli-deep-block.yaml:nested deeper"
         "$fx/cli-alias-bomb.yaml:too large"
         "$tmp/no-such-file.yaml:No such file" "$fx:is a directory")
for g in "${generic[@]}"; do
  f=${g%%:*} want=${g#*:}
  n=$(basename "$f")
  bad "bad policy file: $n" "$f" "$want" score --policy "$f" "${L[@]}" "${F[@]}"
  bad "bad pool file: $n" "$f" "$want" score "${P[@]}" --pool "$f" "${F[@]}"
  bad "bad failed file: $n" "$f" "$want" score "${P[@]}" "${L[@]}" --failed "$f"
done

# 300,000 weights: refused by count in one pass (a quadratic duplicate check
# once took minutes), within run's timeout.
{ printf 'apiVersion: kvrecover.io/v1alpha1\nkind: RecoveryPolicy\nmetadata: {name: big}\n'
  printf 'spec:\n  selector: {matchLabels: {app: paper}}\n'
  printf '  poolSelector: {matchLabels: {kvrecover.io/pool: paper}}\n  weights:\n'
  seq 0 299999 | sed 's/.*/    c&: 1/'; } >"$tmp/big-policy.yaml"
bad "bad policy: 300,000 weights" "$tmp/big-policy.yaml" "at most 64 categories, not 300000" \
  score --policy "$tmp/big-policy.yaml" "${L[@]}" "${F[@]}"

# Wrong files in the wrong place.
bad "wrong file: a pool given as the policy" "$ex/pool.yaml" "expected one RecoveryPolicy" \
  score --policy "$ex/pool.yaml" "${L[@]}" "${F[@]}"
bad "wrong file: the policy given as a pool" "$ex/policy.yaml" "not a ConfigMap" \
  score "${P[@]}" --pool "$ex/policy.yaml" "${F[@]}"
bad "wrong file: five VMs given as the failed VM" "$ex/vms.yaml" "found 5 objects" \
  score "${P[@]}" "${L[@]}" --failed "$ex/vms.yaml"
bad "wrong file: the same pool twice" "$ex/pool.yaml" "ConfigMap vm-001" \
  score "${P[@]}" "${L[@]}" "${L[@]}" "${F[@]}"

# A huge single line and random bytes: refused without a crash.
head -c 3000000 /dev/zero | tr '\0' 'a' >"$tmp/long.yaml"
bad "bad policy file: a 3 MB scalar" "$tmp/long.yaml" "not a RecoveryPolicy" \
  score --policy "$tmp/long.yaml" "${L[@]}" "${F[@]}"
for i in 1 2 3 4 5; do
  head -c 4096 /dev/urandom >"$tmp/random-$i"
  bad "bad failed file: random bytes #$i" "$tmp/random-$i" "" \
    score "${P[@]}" "${L[@]}" --failed "$tmp/random-$i"
done

. "$here/limits.sh"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
