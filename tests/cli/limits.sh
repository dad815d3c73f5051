# tests/cli/limits.sh — the CLI on hostile input (issue 12), sourced by
# tests/cli/test_cli.sh: it uses that script's run, bad, ok_run, jq_check,
# pass and fail, and its $kvr, $tmp, $fx, P, L and F.
#
# The inputs of the issue are generated (tests/fixtures/hostile.py): the
# string bomb (a 300 KB pool ConfigMap whose data.vm aliases one 100 KB
# string 38,000 times) and the fat annotation (100 KB of features text).
# Each must be refused with one line naming the file, the object, the field
# and, for a cap, both sizes; a legitimate pool file with anchors must still
# load; and out of memory must fail loudly: non-zero, one line on stderr,
# nothing on stdout.
#
# Unless a wrapper (valgrind) or AddressSanitizer reserves address space of
# its own, each kvrecover here runs under an address-space limit: a parser
# that regresses into building the 3.8 GB bomb fails its case instead of
# taking the machine.

hostile=$tmp/hostile
python3 "$fx/hostile.py" "$hostile"

guard=()
if [ -z "${KVR_WRAP:-}" ] && ! ldd "$kvr" 2>/dev/null | grep -q 'libasan'; then
  guard=(prlimit --as=$((1 << 30)) --core=0)
fi

# guarded FUNCTION ARGS... : FUNCTION (bad, ok_run) with the address-space
# limit applied to each kvrecover it runs.
guarded() {
  local fn=$1; shift
  if [ ${#guard[@]} -gt 0 ]; then KVR_WRAP="${guard[*]}" "$fn" "$@"; else "$fn" "$@"; fi
}

HB=$hostile/string-bomb.yaml
guarded bad "hostile: the string bomb ConfigMap is refused for its aliases" "$HB" \
  "ConfigMap string-bomb: data.vm: aliases are not allowed in ConfigMap data (at line 9)" \
  score "${P[@]}" "${L[@]}" --pool "$HB" "${F[@]}"
HB=$hostile/string-bomb-big.yaml
guarded bad "hostile: a data.vm over its cap is refused with both sizes" "$HB" \
  "ConfigMap string-bomb: data.vm: too large: 299995 bytes (at most 262144)" \
  score "${P[@]}" "${L[@]}" --pool "$HB" "${F[@]}"
HF=$hostile/fat-annotation.yaml
guarded bad "hostile: the fat annotation is refused with both sizes" "$HF" \
  "VirtualMachineInstance vm-001: metadata.annotations[kvrecover.io/features]: too large: 100000 bytes (at most 16384)" \
  score "${P[@]}" "${L[@]}" --failed "$HF"

# A file may use anchors (a byte budget bounds them); the texts inside a
# ConfigMap's data may not, as the controller reads them from the API.
AP=(--pool "$fx/limits-pool-anchors.yaml")
if guarded ok_run "anchors: a pool file sharing a template through anchors loads" \
     -o json "${P[@]}" "${AP[@]}" "${F[@]}"; then
  jq_check "anchors: every member sharing the template scores" \
    '.selected == "anchor-a" and ([.candidates[].name] | sort) == ["anchor-a","anchor-b","anchor-c"]'
fi
printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata: {name: inner}' 'data:' \
  '  features: |' '    os: &os ubuntu-20.04' '    base: *os' >"$tmp/inner-alias.yaml"
bad "anchors: an alias inside data.features is refused" "$tmp/inner-alias.yaml" \
  "ConfigMap inner: data.features: aliases are not allowed in ConfigMap data (at line 2)" \
  score "${P[@]}" --pool "$tmp/inner-alias.yaml" "${F[@]}"
python3 -c 'import sys; s = "A" * (1 << 20); sys.stdout.write("a: &s " + s + "\nb: [" + ", ".join(["*s"] * 65) + "]\n")' \
  >"$tmp/file-string-bomb.yaml"
guarded bad "anchors: a file's aliases stop at the byte budget" "$tmp/file-string-bomb.yaml" \
  "too large once aliases are expanded: more than 67108864 bytes" \
  score "${P[@]}" --pool "$tmp/file-string-bomb.yaml" "${F[@]}"

# Out of memory: 1,000,000 nodes of a legitimate-looking pool file need
# about 115 MB; with 64 MiB of address space the run must stop loudly, not
# score what it managed to read. Needs the plain binary: valgrind and
# AddressSanitizer cannot run under such a limit.
name="out of memory: exit non-zero, one stderr line, nothing on stdout"
if [ ${#guard[@]} -gt 0 ]; then
  python3 -c 'import sys
for d in range(2):
    sys.stdout.write("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: bulk-%d}\n"
                     "data: {features: \"{os: ubuntu-20.04}\"}\nbulk: [%s]\n" % (d, ", ".join(["x"] * 500000)))' \
    >"$tmp/bulk.yaml"
  # in a subshell with its stderr discarded: bash's own "Aborted" report
  # goes there, not into the test's output
  (timeout 120 prlimit --as=$((64 << 20)) --core=0 "$kvr" score "${P[@]}" --pool "$tmp/bulk.yaml" "${F[@]}" \
     >"$tmp/out" 2>"$tmp/err"; exit $?) 2>/dev/null
  rc=$?
  if [ "$rc" = 0 ] || [ "$rc" = 2 ] || [ "$rc" = 124 ]; then fail "$name" "exit $rc, stderr: $(head -c 300 "$tmp/err")"
  elif [ "$(wc -l <"$tmp/err")" != 1 ] || ! grep -q '^kvrecover: out of memory' "$tmp/err"; then
    fail "$name" "exit $rc, stderr: $(head -c 300 "$tmp/err")"
  elif [ -s "$tmp/out" ]; then fail "$name" "stdout not empty: $(head -c 200 "$tmp/out")"
  else pass "$name"; fi
else
  echo "skip $name (under a wrapper or AddressSanitizer)"
fi
