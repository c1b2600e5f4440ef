#!/usr/bin/env bash
# `sam build` of both functions for arm64 (cargo-lambda cross-compiling with zig), then the
# sizes of the two bootstrap binaries. Extra arguments go to `sam build` (e.g. --config-env prod).
# Needs Rust (rustup); installs the aarch64 target and, in .local/tools/sam, SAM CLI and
# cargo-lambda (which brings zig). Honours CARGO_TARGET_DIR, as cargo-lambda does.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

SAM_VENV=$(ensure_venv sam)
sam_env
# cargo finds `cargo-lambda` as its `lambda` subcommand on PATH; cargo-lambda finds zig through
# the venv's python (`python3 -m ziglang`).
export PATH="$SAM_VENV/bin:$PATH"

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
if command -v rustup >/dev/null; then
  if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    log "adding the Rust target aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
  fi
else
  log "warning: rustup not found; the aarch64-unknown-linux-gnu target must be installed"
fi

CA_BUNDLE=infra/certs/rds-global-bundle.pem
if [ ! -s "$CA_BUNDLE" ] || ! grep -q 'BEGIN CERTIFICATE' "$CA_BUNDLE"; then
  log "warning: $CA_BUNDLE is missing or holds no certificate."
  log "  The functions verify the database's TLS certificate against it (EIS_PG_CA_FILE)."
  log "  Download the RDS global bundle before 'sam deploy' (docs/deploy.md, Prerequisites)."
fi

cargo lambda --version
log "sam build $*"
sam build "$@"

printf '\nbootstrap binaries (arm64):\n'
for fn in IngestFunction ArchiverFunction; do
  bin=".aws-sam/build/$fn/bootstrap"
  [ -f "$bin" ] || die "$bin was not built"
  bytes=$(stat -c %s "$bin")
  printf '  %-17s %10d bytes  %6s  %s\n' "$fn" "$bytes" "$(numfmt --to=iec-i --suffix=B "$bytes")" \
    "$(file -b "$bin" 2>/dev/null | cut -d, -f1-2 || true)"
done
