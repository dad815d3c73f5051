#!/usr/bin/env bash
# The RecoveryPolicy CRD as the API server serves it (issue 6, item 1): what
# the schema refuses (with a message naming the field), the defaults it
# fills in, kubectl explain, the printer columns, the short name and the
# "all" category, and the status subresource. No controller runs here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/controller.sh"
ctl_test_setup
t_pass "the CRD installs and is Established"
ns=$(t_ns crd) || { t_fail "namespace" "cannot create one"; t_summary; }

# A valid spec, as JSON, with a jq expression applied to it.
spec_with() {
  jq -cn "{selector: {matchLabels: {app: \"shop\"}},
           poolSelector: {matchLabels: {\"kvrecover.io/pool\": \"shop\"}},
           weights: {language: 0.3, database: 0.2}} | $1"
}

# refused NAME JQ FIELD [WORDS]: a policy with the spec changed by JQ is
# refused by the API server, and the message names FIELD (and, when given,
# contains WORDS, e.g. the value or the rule's message).
refused() {
  local name=$1 change=$2 field=$3 words=${4:-} out
  if out=$(jq -n --arg ns "$ns" --argjson spec "$(spec_with "$change")" \
             '{apiVersion: "kvrecover.io/v1alpha1", kind: "RecoveryPolicy",
               metadata: {name: "refused", namespace: $ns}, spec: $spec}' |
           kubectl create -f - 2>&1); then
    kubectl delete rp -n "$ns" refused --ignore-not-found >/dev/null 2>&1
    t_fail "$name is refused" "the API server accepted it"
    return
  fi
  if ! grep -qF -- "$field" <<<"$out"; then
    t_fail "$name is refused naming $field" "message: $out"
  elif [ -n "$words" ] && ! grep -qF -- "$words" <<<"$out"; then
    t_fail "$name is refused naming $field" "message lacks '$words': $out"
  else
    t_pass "$name is refused naming $field"
  fi
}

refused "a negative weight" '.weights.language = -0.1' "spec.weights.language" "greater than or equal to 0"
refused "threshold 1.5" '.threshold = 1.5' "spec.threshold" "less than or equal to 1"
refused "a negative threshold" '.threshold = -0.5' "spec.threshold"
refused "mode Foo" '.mode = "Foo"' "spec.mode" '"Foo"'
refused "action Bar" '.action = "Bar"' "spec.action" '"Bar"'
refused "a missing selector" 'del(.selector)' "spec.selector" "Required"
refused "a missing poolSelector" 'del(.poolSelector)' "spec.poolSelector" "Required"
refused "an empty selector" '.selector = {}' "spec.selector" "must not be empty"
refused "an empty poolSelector" '.poolSelector = {matchLabels: {}}' "spec.poolSelector" \
  "must not be empty"
refused "weights all zero" '.weights = {language: 0, database: 0}' "spec.weights" \
  "greater than 0"
refused "missing weights" 'del(.weights)' "spec.weights" "Required"
refused "a weight above 1000" '.weights.language = 1000.5' "spec.weights.language" \
  "less than or equal to 1000"
refused "the removed haltFailed" '.haltFailed = false' "spec.haltFailed" \
  "always halts the failed VM"
refused "the removed unknownGracePeriodSeconds" '.unknownGracePeriodSeconds = 60' \
  "spec.unknownGracePeriodSeconds" "spec.trigger.nodeLossSeconds"
refused "crashLoopThreshold 0" '.trigger = {crashLoopThreshold: 0}' \
  "spec.trigger.crashLoopThreshold" "greater than or equal to 1"
refused "a negative nodeLossSeconds" '.trigger = {nodeLossSeconds: -1}' \
  "spec.trigger.nodeLossSeconds"
refused "stormLimit 150%" '.stormLimit = "150%"' "spec.stormLimit" '"0%" to "100%"'
refused "stormLimit 0" '.stormLimit = 0' "spec.stormLimit" "an integer >= 1"
refused "stormLimit \"5\"" '.stormLimit = "5"' "spec.stormLimit" '"0%" to "100%"'
refused "a serviceAccountName that is not a name" '.serviceAccountName = "Bad_Name"' \
  "spec.serviceAccountName"
refused "matchExpressions In without values" \
  '.selector = {matchExpressions: [{key: "app", operator: "In"}]}' \
  "spec.selector.matchExpressions[0]" "values must be non-empty"
refused "an unknown operator" \
  '.selector = {matchExpressions: [{key: "app", operator: "Like", values: ["x"]}]}' \
  "spec.selector.matchExpressions[0].operator" '"Like"'

# Defaults: a policy that sets only what it must gets threshold 0.5, mode
# Jaccard, action Recreate (and the documented capture, trigger and
# stormLimit defaults) from the API server itself.
if jq -n --arg ns "$ns" --argjson spec "$(spec_with .)" \
     '{apiVersion: "kvrecover.io/v1alpha1", kind: "RecoveryPolicy",
       metadata: {name: "defaults", namespace: $ns}, spec: $spec}' |
   kubectl create -f - >/dev/null 2>&1; then
  t_pass "a minimal valid policy is accepted"
  got=$(kubectl get rp -n "$ns" defaults -o json | jq -c '.spec')
  check_default() {
    local path=$1 want=$2 v
    v=$(jq -c "$path" <<<"$got")
    if [ "$v" = "$want" ]; then t_pass "default $path is $want"
    else t_fail "default $path is $want" "got $v"; fi
  }
  check_default .threshold 0.5
  check_default .mode '"Jaccard"'
  check_default .action '"Recreate"'
  check_default .capture true
  check_default .trigger \
    '{"crashLoopThreshold":3,"immediate":false,"nodeLossSeconds":300,"restartTimeoutSeconds":300}'
  check_default .stormLimit '"50%"'
  check_default 'has("haltFailed") or has("unknownGracePeriodSeconds")' false
  check_default 'has("serviceAccountName")' false
else
  t_fail "a minimal valid policy is accepted" "kubectl create failed"
fi

# Two weights that only differ in case pass the schema (the controller must
# refuse them: categories compare lower-cased; see test_decisions.sh).
if jq -n --arg ns "$ns" --argjson spec "$(spec_with '.weights = {language: 0.3, Language: 0.2}')" \
     '{apiVersion: "kvrecover.io/v1alpha1", kind: "RecoveryPolicy",
       metadata: {name: "casefold", namespace: $ns}, spec: $spec}' |
   kubectl create -f - >/dev/null 2>&1; then
  t_pass "the schema accepts weights that differ only in case (the controller's job)"
else
  t_fail "the schema accepts weights that differ only in case" "refused"
fi

# kubectl explain works from the published schema and explains the field.
out=$(kubectl explain rp.spec.weights 2>&1)
if grep -q 'FIELD: *weights' <<<"$out" && grep -q 'Weight of each similarity category' <<<"$out"
then t_pass "kubectl explain rp.spec.weights describes the field"
else t_fail "kubectl explain rp.spec.weights describes the field" "$(head -n 12 <<<"$out")"; fi
out=$(kubectl explain rp.spec --recursive 2>&1)
if grep -q 'crashLoopThreshold' <<<"$out" && grep -q 'stormLimit' <<<"$out" &&
   grep -q 'serviceAccountName' <<<"$out"
then t_pass "kubectl explain rp.spec --recursive lists every field"
else t_fail "kubectl explain rp.spec --recursive lists every field" "$(head -n 20 <<<"$out")"; fi

# Every field of the served schema has a description (what makes explain
# useful), read back from the API server rather than the file.
missing=$(kubectl get crd recoverypolicies.kvrecover.io -o json | jq -r '
  .spec.versions[0].schema.openAPIV3Schema as $s
  | [ $s | paths(type == "object") as $p
      | select(($p | length) > 0 and ($p[-2] == "properties"))
      | select(($p | map(tostring) | join(".")) | test("^properties\\.metadata$") | not)
      | {p: ($p | map(tostring) | join(".")), d: ($s | getpath($p) | .description // "")} ]
  | map(select(.d == "")) | .[].p')
if [ -z "$missing" ]; then t_pass "every schema field has a description"
else t_fail "every schema field has a description" "missing: $(echo "$missing" | tr '\n' ' ')"; fi

# Printer columns, short name and category.
header=$(kubectl get rp -n "$ns" 2>&1 | head -n 1 | tr -s ' ')
want="NAME MODE THRESHOLD POOL PROTECTED UNPROTECTED RECOVERIES DOWN STORMHOLD LAST READY AGE"
if [ "$header" = "$want" ]; then t_pass "kubectl get rp shows the printer columns"
else t_fail "kubectl get rp shows the printer columns" "header: '$header'"; fi
row=$(kubectl get rp -n "$ns" defaults --no-headers 2>&1 | tr -s ' ')
if [[ "$row" == "defaults Jaccard 0.5 "* ]]; then t_pass "the row shows the mode and threshold"
else t_fail "the row shows the mode and threshold" "row: '$row'"; fi
if kubectl get recoverypolicies.kvrecover.io -n "$ns" defaults >/dev/null 2>&1 &&
   kubectl get rp -n "$ns" defaults >/dev/null 2>&1; then t_pass "short name rp"
else t_fail "short name rp" "kubectl get rp failed"; fi
if kubectl get all -n "$ns" -o name 2>/dev/null | grep -qx 'recoverypolicy.kvrecover.io/defaults'
then t_pass "kubectl get all lists RecoveryPolicies (category all)"
else t_fail "kubectl get all lists RecoveryPolicies (category all)" \
       "$(kubectl get all -n "$ns" -o name 2>&1 | head -n 5)"; fi

# The status subresource: a write to the main resource cannot set status,
# a write to /status can (that is what the controller uses), and a status
# write does not bump the generation. (A controller of a script running
# beside this one may write this policy's status, recoveries 0: only the 7
# would show that the main resource took it.)
kubectl patch rp -n "$ns" defaults --type merge -p '{"status":{"recoveries":7}}' >/dev/null 2>&1
v=$(kubectl get rp -n "$ns" defaults -o jsonpath='{.status.recoveries}')
if [ "$v" != 7 ]; then t_pass "status is ignored on the main resource (status subresource)"
else t_fail "status is ignored on the main resource (status subresource)" "recoveries=$v"; fi
gen0=$(kubectl get rp -n "$ns" defaults -o jsonpath='{.metadata.generation}')
if kubectl patch rp -n "$ns" defaults --subresource=status --type merge \
     -p '{"status":{"recoveries":3,"poolSize":5,"protected":4,"unprotected":1,"down":2,
                   "blocked":1,"lastRecovery":"2026-01-02T03:04:05Z",
                   "incidents":[{"vm":"a","state":"Blocked","reason":"CrashLoop",
                                 "since":"2026-01-02T03:04:05Z",
                                 "triggerAt":"2026-01-02T03:09:05Z","failedUID":"u-1"}],
                   "conditions":[{"type":"Ready","status":"True","reason":"Valid",
                                  "message":"","lastTransitionTime":"2026-01-02T03:04:05Z"},
                                 {"type":"StormHold","status":"False","reason":"BelowLimit",
                                  "message":"2 of 4 down, limit 2",
                                  "lastTransitionTime":"2026-01-02T03:04:05Z"}]}}' \
     >/dev/null 2>&1; then
  v=$(kubectl get rp -n "$ns" defaults -o jsonpath='{.status.recoveries}/{.metadata.generation}')
  if [ "$v" = "3/$gen0" ]; then t_pass "status is written through /status without a new generation"
  else t_fail "status is written through /status without a new generation" "got $v (gen $gen0)"; fi
  row=$(kubectl get rp -n "$ns" defaults --no-headers | tr -s ' ')
  if [[ "$row" =~ ^defaults\ Jaccard\ 0\.5\ 5\ 4\ 1\ 3\ 2\ False\ [0-9]+[a-z]+\ True\  ]]; then t_pass "printer columns read the status"
  else t_fail "printer columns read the status" "row: '$row'"; fi
else
  t_fail "status is written through /status" "kubectl patch --subresource=status failed"
fi
if kubectl patch rp -n "$ns" defaults --subresource=status --type merge \
     -p '{"status":{"down":-1}}' >/dev/null 2>&1; then
  t_fail "status.down is validated" "down -1 accepted"
else t_pass "status.down is validated"; fi
if kubectl patch rp -n "$ns" defaults --subresource=status --type merge \
     -p '{"status":{"recoveries":-1}}' >/dev/null 2>&1; then
  t_fail "status fields are validated too" "recoveries -1 accepted"
else t_pass "status fields are validated too"; fi

t_summary
