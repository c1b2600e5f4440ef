#!/usr/bin/env bash
# The CA bundle of the functions' layer (CaBundleLayer, /opt/rds-global-bundle.pem), which
# verify-full TLS to the database needs:
#   - the RDS global bundle: the roots of RDS and Aurora instances' certificates, and
#   - Amazon Root CA 1: RDS Proxy presents certificates issued through Amazon Trust Services.
#
#   infra/tools/ca-bundle.sh             assemble infra/certs/rds-global-bundle.pem if it is
#                                        missing or incomplete, then check it
#   infra/tools/ca-bundle.sh --check F   only check file F (e.g. the built layer's copy)
#   infra/tools/ca-bundle.sh --into DIR  assemble and check as above, then copy the bundle into
#                                        DIR and check the copy: the layer's build (`sam build`
#                                        runs it through infra/ca-layer/Makefile)
#
# EIS_CA_BUNDLE_OPTIONAL=1 (make test on a machine that cannot download) lets --into fall back
# to Amazon Root CA 1 alone, but only into a build directory named build-incomplete-ca, which
# `sam deploy` never reads: a layer that cannot verify RDS must never be deployable.
#
# Sources, in order: EIS_RDS_CA_BUNDLE (a local copy of the RDS global bundle, for machines that
# cannot download) or the RDS trust store URL; Amazon Root CA 1 from the system trust store or
# the Amazon Trust Services URL. Both are public certificates; the result is not committed.
# Exits non-zero, saying which CA is missing, when the bundle cannot be made complete.
LOG_TAG=tools
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RDS_BUNDLE_URL=https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
AMAZON_ROOT_CA1_URL=https://www.amazontrust.com/repository/AmazonRootCA1.pem
# SHA-256 fingerprint of Amazon Root CA 1 (CN=Amazon Root CA 1, O=Amazon, C=US).
AMAZON_ROOT_CA1_SHA256=8E:CD:E6:88:4F:3D:87:B1:12:5B:A3:1A:C3:FC:B1:3D:70:16:DE:7F:57:CC:90:4F:E1:CB:97:C6:AE:98:19:6E
BUNDLE="$ROOT/infra/certs/rds-global-bundle.pem"

# Prints "<sha256 fingerprint>|<subject>|<issuer>" for every certificate of PEM file $1.
certs_of() {
  local file=$1 tmp
  tmp=$(mktemp -d)
  awk -v dir="$tmp" '/-----BEGIN CERTIFICATE-----/ { n++; out = sprintf("%s/%04d.pem", dir, n) }
    n { print > out } /-----END CERTIFICATE-----/ { close(out) }' "$file"
  local c
  for c in "$tmp"/*.pem; do
    [ -e "$c" ] || break
    openssl x509 -in "$c" -noout -fingerprint -sha256 -subject -issuer -nameopt RFC2253 2>/dev/null \
      | sed -e 's/^sha256 Fingerprint=//I' -e 's/^subject=//' -e 's/^issuer=//' | paste -sd'|' \
      || echo "unreadable|unreadable|unreadable"
  done
  rm -rf "$tmp"
}

# check FILE: both CAs present. Prints what is missing and returns 1 otherwise.
check() {
  local file=$1 list missing=()
  [ -s "$file" ] || { log "$file is missing or empty"; return 1; }
  list=$(certs_of "$file")
  [ -n "$list" ] || { log "$file holds no certificate"; return 1; }
  if grep -q '^unreadable' <<<"$list"; then log "$file holds a certificate openssl cannot read"; return 1; fi
  grep -qi "^$AMAZON_ROOT_CA1_SHA256|" <<<"$list" \
    || missing+=("Amazon Root CA 1 (needed through RDS Proxy; $AMAZON_ROOT_CA1_URL)")
  # RDS roots are self-signed, issued by Amazon Web Services, Inc. for Amazon RDS.
  awk -F'|' '$2 == $3 && $2 ~ /CN=Amazon RDS [^,]*Root/ && $2 ~ /O=Amazon Web Services/' \
    <<<"$list" | grep -q . \
    || missing+=("an Amazon RDS root CA (the RDS global bundle; $RDS_BUNDLE_URL)")
  if [ "${#missing[@]}" -gt 0 ]; then
    log "$file is incomplete; it lacks:"
    printf '[tools]   - %s\n' "${missing[@]}" >&2
    return 1
  fi
  log "$file: $(wc -l <<<"$list") certificates, the RDS roots and Amazon Root CA 1"
}

fetch() {  # fetch URL FILE
  command -v curl >/dev/null || return 1
  curl -fsSL --connect-timeout 10 --max-time 60 -o "$2" "$1" 2>/dev/null
}

assemble() {
  local work rds root
  work=$(mktemp -d)
  if assemble_in "$work"; then rm -rf "$work"; else rm -rf "$work"; return 1; fi
}

assemble_in() {
  local work=$1 rds root
  rds="$work/rds.pem"
  root="$work/amazon-root-ca-1.pem"
  if [ -n "${EIS_RDS_CA_BUNDLE:-}" ]; then
    cp "$EIS_RDS_CA_BUNDLE" "$rds" || die "cannot read EIS_RDS_CA_BUNDLE=$EIS_RDS_CA_BUNDLE"
  elif ! fetch "$RDS_BUNDLE_URL" "$rds"; then
    log "cannot download the RDS global bundle from $RDS_BUNDLE_URL."
    log "  On a machine without internet access, download it elsewhere and set"
    log "  EIS_RDS_CA_BUNDLE=/path/to/global-bundle.pem (docs/deploy.md, step 0)."
    return 1
  fi
  local f
  for f in /usr/share/ca-certificates/mozilla/Amazon_Root_CA_1.crt /etc/ssl/certs/Amazon_Root_CA_1.pem; do
    [ -s "$f" ] && { cp "$f" "$root"; break; }
  done
  [ -s "$root" ] || fetch "$AMAZON_ROOT_CA1_URL" "$root" \
    || { log "Amazon Root CA 1 is neither in the system trust store nor downloadable ($AMAZON_ROOT_CA1_URL)"; return 1; }
  grep -qi "^$AMAZON_ROOT_CA1_SHA256|" <<<"$(certs_of "$root")" \
    || { log "the Amazon Root CA 1 found has the wrong fingerprint"; return 1; }
  mkdir -p "$(dirname "$BUNDLE")"
  cat "$rds" "$root" >"$work/bundle.pem"
  check "$work/bundle.pem" || return 1
  mv "$work/bundle.pem" "$BUNDLE"
  log "wrote $BUNDLE"
}

# The complete bundle at $BUNDLE: the one already there, or a new one.
ensure() {
  if [ -f "$BUNDLE" ] && check "$BUNDLE" 2>/dev/null; then
    check "$BUNDLE"
  else
    assemble
  fi
}

# into DIR: the layer's content. The partial fallback is refused unless DIR is in an
# incomplete-CA build directory (see the top of this file).
into() {
  local dir=$1
  mkdir -p "$dir"
  if ensure; then
    cp "$BUNDLE" "$dir/rds-global-bundle.pem"
    check "$dir/rds-global-bundle.pem"
    return
  fi
  [ "${EIS_CA_BUNDLE_OPTIONAL:-0}" = 1 ] \
    || die "no complete CA bundle: not building a layer that cannot verify the database (see above)"
  case "$(cd "$dir" && pwd)/" in
    */build-incomplete-ca/*) ;;
    *) die "EIS_CA_BUNDLE_OPTIONAL=1 builds an incomplete layer only under a build-incomplete-ca directory (sam build --build-dir .aws-sam/build-incomplete-ca), never into $dir" ;;
  esac
  [ -s /usr/share/ca-certificates/mozilla/Amazon_Root_CA_1.crt ] \
    || die "no system copy of Amazon Root CA 1 for the incomplete layer"
  cp /usr/share/ca-certificates/mozilla/Amazon_Root_CA_1.crt "$dir/rds-global-bundle.pem"
  log "warning: $dir/rds-global-bundle.pem holds Amazon Root CA 1 alone (not deployable)"
}

case "${1:-}" in
  --check)
    [ -n "${2:-}" ] || die "usage: $0 --check FILE"
    check "$2"
    ;;
  --into)
    [ -n "${2:-}" ] || die "usage: $0 --into DIR"
    into "$2"
    ;;
  "")
    ensure || die "the CA bundle of the functions' layer is incomplete: sam build would package a layer that cannot verify the database (see above)"
    ;;
  *) die "usage: $0 [--check FILE | --into DIR]" ;;
esac
