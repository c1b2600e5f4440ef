#!/usr/bin/env bash
# Checks the deployment templates without AWS access (called by `make test`):
#   cfn-lint on every template, `sam validate --lint`, checkov, and the pytest contract tests
#   of tests/template/. Runs every check, prints a summary, exits non-zero if any failed.
# Tools live in virtualenvs under .local/tools/, (re)installed from the pinned
# infra/tools/requirements-*.txt only when those files change.
LOG_TAG=tools
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"

TEMPLATES=(template.yaml infra/database.yaml)

SAM_VENV=$(ensure_venv sam)
CHECKOV_VENV=$(ensure_venv checkov)
sam_env

step() { printf '\n== %s\n' "$*" >&2; }
results=()
failed=0
run_check() {
  local name=$1
  shift
  step "$name"
  if "$@"; then
    results+=("ok      $name")
  else
    results+=("FAILED  $name")
    failed=1
  fi
}

step "tool versions"
"$SAM_VENV/bin/cfn-lint" --version
"$SAM_VENV/bin/sam" --version
printf 'checkov %s\n' "$("$CHECKOV_VENV/bin/checkov" --version)"
"$CHECKOV_VENV/bin/check-jsonschema" --version
"$SAM_VENV/bin/python" -m pytest --version

# cfn-lint transforms the SAM template itself and reads every rule; no rule is suppressed.
run_check "cfn-lint ${TEMPLATES[*]}" "$SAM_VENV/bin/cfn-lint" -- "${TEMPLATES[@]}"

# sam validate runs the SAM translator locally (and cfn-lint with --lint): no network.
run_check "sam validate --lint (template.yaml)" \
  "$SAM_VENV/bin/sam" validate --lint --template-file template.yaml

# checkov: every finding is fixed or skipped with a reason in the resource's Metadata.
# --skip-download keeps it offline (no guideline or policy download from its platform).
checkov_templates() {
  local t rc=0
  for t in "${TEMPLATES[@]}"; do
    "$CHECKOV_VENV/bin/checkov" --file "$t" --framework cloudformation \
      --skip-download --compact --quiet || rc=1
  done
  return "$rc"
}
run_check "checkov ${TEMPLATES[*]}" checkov_templates

# The GitHub workflow cannot run here (no Docker engine); at least its shape is checked.
run_check "check-jsonschema .github/workflows/sam.yml" \
  "$CHECKOV_VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows \
  .github/workflows/sam.yml

run_check "pytest tests/template" \
  "$SAM_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/template

step "summary"
printf '%s\n' "${results[@]}"
exit "$failed"
