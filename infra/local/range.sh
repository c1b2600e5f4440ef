#!/usr/bin/env bash
# `make replay` / `make restore` (docs/quarantine.md): invokes the archiver with
# {"action":ACTION,"from":FROM,"to":TO[,"code":CODE]} and, while the answer says
# `unfinished_from` (the invocation's deadline, EIS_LOCAL_DEADLINE_SECS, came first), again
# from there with the answer's `resume`, as an operator does with `aws lambda invoke` in AWS.
# Prints every answer. Usage: range.sh ACTION FROM TO [CODE]
set -euo pipefail
action=$1 from=$2 to=$3 code=${4:-}
bin=${CARGO_TARGET_DIR:?}/debug/archiver
input=$(jq -cn --arg a "$action" --arg f "$from" --arg t "$to" --arg c "$code" \
  '{action: $a, from: $f, to: $t} + (if $c == "" then {} else {code: $c} end)')
while :; do
  answer=$("$bin" <(printf '%s' "$input"))
  printf '%s\n' "$answer"
  next=$(jq -r '.unfinished_from // empty' <<<"$answer")
  [ -n "$next" ] || break
  input=$(jq -c --arg f "$next" --argjson r "$(jq -c '.resume' <<<"$answer")" \
    '.from = $f | if $r == null then del(.resume) else .resume = $r end' <<<"$input")
done
