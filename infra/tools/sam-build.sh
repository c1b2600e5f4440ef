#!/usr/bin/env bash
# `sam build` of both functions for arm64 (cargo-lambda cross-compiling with zig), then the
# sizes of the two bootstrap binaries. Extra arguments go to `sam build` (e.g. --config-env prod).
# Needs Rust (rustup); installs the aarch64 target and, in .local/tools/sam, SAM CLI and
# cargo-lambda (which brings zig). Honours CARGO_TARGET_DIR, as cargo-lambda does.
LOG_TAG=tools
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
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

# The CA layer's bundle: `sam build` assembles and checks it itself (CaBundleLayer's Makefile,
# infra/tools/ca-bundle.sh --into). It is checked here first only to pick the build directory:
# EIS_CA_BUNDLE_OPTIONAL=1 (make test on a machine that cannot download) builds anyway, with
# Amazon Root CA 1 alone, into .aws-sam/build-incomplete-ca, which `sam deploy` does not read.
BUILD_DIR=.aws-sam/build
if ! infra/tools/ca-bundle.sh; then
  [ "${EIS_CA_BUNDLE_OPTIONAL:-0}" = 1 ] || die "no complete CA bundle: not building a layer that cannot verify the database"
  [ -e infra/certs/rds-global-bundle.pem ] && die "infra/certs/rds-global-bundle.pem is incomplete: replace or remove it"
  log "warning: building with an INCOMPLETE CA bundle into .aws-sam/build-incomplete-ca (not deployable)"
  BUILD_DIR=.aws-sam/build-incomplete-ca
fi

cargo lambda --version
log "sam build $*"
sam build --build-dir "$BUILD_DIR" "$@"
if [ "$BUILD_DIR" = .aws-sam/build ]; then
  infra/tools/ca-bundle.sh --check "$BUILD_DIR/CaBundleLayer/rds-global-bundle.pem" \
    || die "the built layer's CA bundle is incomplete"
fi

printf '\nbootstrap binaries (arm64):\n'
for fn in IngestFunction ArchiverFunction MigratorFunction; do
  bin="$BUILD_DIR/$fn/bootstrap"
  [ -f "$bin" ] || die "$bin was not built"
  bytes=$(stat -c %s "$bin")
  printf '  %-17s %10d bytes  %6s  %s\n' "$fn" "$bytes" "$(numfmt --to=iec-i --suffix=B "$bytes")" \
    "$(file -b "$bin" 2>/dev/null | cut -d, -f1-2 || true)"
done
