#!/usr/bin/env bash
# `make lint`: the checks curl calls checksrc, for our C.
#  1. clang-format --dry-run: the code is formatted as .clang-format says;
#  2. cppcheck: warnings, performance and portability findings are errors;
#  3. banned functions: sprintf, vsprintf, strcat, strncat, strcpy, strncpy,
#     strtok, sscanf, gets, atoi, atol — unbounded or silently wrong; use
#     snprintf, struct buf, xstrdup, strtol with end checks instead;
#  4. the structure of controller/ (tests/layers.sh): who may include whom,
#     and mod__ names and mod_test.h headers staying in their module;
#  5. an e2e script that kills, fences, revives, adds or deletes nodes says
#     "# e2e: own-cluster": on the shared cluster it would fail the VMs of
#     the scripts running beside it (tests/run);
#  6. tests/e2e/controller.sh defines every t_* helper it calls outside its
#     test-only parts: tests/demo.sh and bench/bench_e2e.sh source it without
#     lib.sh (a t_jq used there but defined in lib.sh hung `make demo`).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
files=$(ls controller/*/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c tests/e2e/*.c bench/*.c 2>/dev/null)

if command -v clang-format >/dev/null; then
  if ! clang-format --dry-run --Werror $files; then
    echo "lint: clang-format: run 'make format'"; status=1
  fi
else
  echo "lint: clang-format not installed (make deps)"; status=1
fi

if command -v cppcheck >/dev/null; then
  if ! cppcheck -q --std=c11 --enable=warning,performance,portability --inline-suppr \
       --error-exitcode=1 -iquote controller -Icontroller \
       --suppress=missingIncludeSystem controller/ tests/unit/ 2>&1; then
    echo "lint: cppcheck found problems"; status=1
  fi
else
  echo "lint: cppcheck not installed (make deps)"; status=1
fi

banned='\b(sprintf|vsprintf|strcat|strncat|strcpy|strncpy|strtok|strtok_r|sscanf|gets|atoi|atol)[[:space:]]*\('
if grep -nE "$banned" $files | grep -v 'lint-ok'; then
  echo "lint: banned function (see tests/lint.sh for what to use instead)"; status=1
fi

if ! tests/layers.sh; then
  echo "lint: a layer or a private name reaches where it may not (see tests/layers.sh)"; status=1
fi

# 5. Nodes are shared by every script on a cluster: a VM of another script
# on a fenced or deleted node fails, and its controller replaces it.
node_ops='\b(nodes_cmd|kvr_nodes)[[:space:]]+(add|kill|fence|revive)\b|tests/cluster/nodes\b.*\b(add|kill|fence|revive)\b|\bkubectl\b.*\bdelete[[:space:]]+nodes?\b'
for t in tests/e2e/test_*.sh; do
  if grep -qE "$node_ops" "$t" && ! grep -q '^# e2e: own-cluster' "$t"; then
    echo "lint: $t changes nodes but runs on the shared cluster: add '# e2e: own-cluster (why)'"
    status=1
  fi
done

# 6. Outside ctl_test_setup and the checks section (both for tests, which
# source lib.sh too), controller.sh may call only the t_* it defines.
ctl=tests/e2e/controller.sh
for f in $(awk '/^ctl_test_setup\(\) \{/ { skip = 1 } skip && /^\}/ { skip = 0; next }
                /^# ---- checks/ { exit } !skip && !/^[[:space:]]*#/' "$ctl" |
           grep -oE '\bt_[a-z_]+' | sort -u); do
  if ! grep -qE "^$f\(\)" "$ctl"; then
    echo "lint: $ctl calls $f, which only lib.sh defines: tests/demo.sh and bench/bench_e2e.sh do not source lib.sh"
    status=1
  fi
done

[ "$status" = 0 ] && echo "lint: ok"
exit "$status"
