#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD (built by tests/fuzz/fuzz.mk) for
# SECONDS each, one at a time, starting from its seeds in
# tests/fuzz/corpus/<target>/ (read only) plus what earlier runs found in
# BUILD/corpus/<target>/ (where new inputs go). Crashes, leaks, timeouts and
# broken invariants are written to tests/fuzz/crashes/<target>/ (ignored by
# git). Prints one summary line per target and fails if any target found
# anything. Targets run in libFuzzer's fork mode with one worker, which keeps
# fuzzing after a finding, so that one run reports every kind of finding
# instead of stopping at the first (FUZZ_FORK=0: the classic single process).
#
#   tests/fuzz/run.sh build/fuzz 300        (make fuzz FUZZ_TIME=300)
#   FUZZ_ONLY=yaml tests/fuzz/run.sh ...    only targets whose name contains it
set -u
build=${1:?usage: tests/fuzz/run.sh BUILD SECONDS}
secs=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
status=0 ran=0
summary=()

for t in "$build"/fuzz_*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  name=$(basename "$t")
  case $name in *.d|*.o) continue ;; esac
  case $name in *"${FUZZ_ONLY:-}"*) ;; *) continue ;; esac
  seeds=$here/corpus/$name
  work=$build/corpus/$name
  crashes=$here/crashes/$name
  log=$build/$name.log
  mkdir -p "$work" "$crashes"
  dict=()
  [ -f "$here/$name.dict" ] && dict=(-dict="$here/$name.dict")
  echo "== $name: ${secs}s"
  before=$(find "$crashes" -type f | wc -l)
  mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  [ "${FUZZ_FORK:-1}" = 0 ] && mode=()
  # -timeout: an input taking 10 s is a hang; -rss_limit_mb bounds a blow-up.
  "$t" "${mode[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$crashes/" "${dict[@]}" \
    "$work" "$seeds" >"$log" 2>&1
  rc=$?
  ran=$((ran + 1))
  # executions: the final stats (single process) or the last fork-mode status line
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
  found=$(( $(find "$crashes" -type f | wc -l) - before ))
  line="$name: ${execs:-?} executions, ${cov:-cov: ?}, $found new crash files, exit $rc"
  summary+=("$line")
  echo "$line"
  if [ "$rc" != 0 ] || [ "$found" != 0 ]; then
    status=1
    # what was found, most frequent first (fork mode repeats each finding)
    grep -aE 'invariant broken|several lines|runtime error|Sanitizer|SUMMARY' "$log" |
      sed 's/==[0-9]*==//' | cut -c1-160 | sort | uniq -c | sort -rn | head -n 12
    echo "   reproduce: $t $crashes/<file>   (log: $log)"
  fi
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ "$ran" = 0 ]; then echo "no fuzz targets in $build"; exit 1; fi
exit "$status"
