#!/usr/bin/env bash
# `make test`: formatting, lints, every test against the local stack, the deployment template
# checks and `sam build`. Brings the stack up itself and, when it was not already running,
# stops it again at the end.
LOG_TAG=stack
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"

step() { printf '\n== %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all --check
step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

started=0
stack_running || started=1
if [ "$started" = 1 ]; then
  trap 'infra/local/down.sh' EXIT
fi
step "local stack"
infra/local/up.sh
# shellcheck disable=SC1091
source "$ENV_FILE"

step "cargo test"
cargo test --workspace --locked --no-fail-fast

step "Python tests (cargo lambda watch/invoke, make dev, Parquet readers)"
"$VENV/bin/pytest" -q -p no:cacheprovider --rootdir . tests/python sdk/python/tests

step "deployment templates (cfn-lint, sam validate --lint, checkov, template tests)"
infra/tools/check-templates.sh

step "sam build (arm64) and bootstrap sizes"
# A machine that cannot download the RDS bundle still builds (not deployably; see sam-build.sh).
EIS_CA_BUNDLE_OPTIONAL=${EIS_CA_BUNDLE_OPTIONAL:-1} infra/tools/sam-build.sh
