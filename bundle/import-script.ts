/**
 * The text of import.sh, the POSIX sh importer shipped inside every bundle and beside it.
 * These strings are the source of truth (the build compiles only .ts), one file per concern,
 * concatenated in order below. They contain no "${" and no backquote, so String.raw keeps
 * every byte as written; test/bundle checks the whole with sh -n and runs it against a real
 * registry.
 */
import { SH_AWKLIB } from './import-script-awk.js';
import { SH_IMAGES } from './import-script-images.js';
import { SH_LIFECYCLE, SH_PRUNED } from './import-script-lifecycle.js';
import { SH_MODULES } from './import-script-modules.js';
import { SH_MODZIP } from './import-script-modzip.js';
import { SH_GOMOD, SH_PUSH } from './import-script-write.js';

/** Usage, options, trusted keys, the parts (section 1) and the signed manifest with every file's sha256 (section 2). */
const SH_VERIFY: string = String.raw`#!/bin/sh
# Ferry bundle importer. Verifies a signed Ferry bundle completely before it changes anything
# (parts, signature, every file's sha256, the signed image and module lists, and the Go module
# checks ferry import runs that sh can run: see "import.sh" in Ferry's README), then pushes the
# bundle's images into a registry (blobs, then manifests children first, then tags last) and
# merges its Go module tree into a GOPROXY directory. Needs only a POSIX sh, tar, sha256sum,
# openssl, base64 and curl (plus the usual sed, awk, grep, sort, find, comm, cmp, od, head,
# tail, wc, tr, mktemp, dirname, basename, and gzip to read a module zip's go.mod).
#
# usage: ./import.sh --trust KEY.pub [--trust KEY2.pub] [--registry HOST[:PORT] [--plain-http]
#                    [--insecure] [--user USER --password-file FILE]] [--gomod-dir DIR] BUNDLE
# BUNDLE is NAME.tar or its first part NAME.tar.001, with NAME.parts.json(.sig) beside it.
# With neither --registry nor --gomod-dir the bundle is only verified.

PROG=import.sh
say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage() {
  cat >&2 <<'EOF'
usage: ./import.sh --trust KEY.pub [--trust KEY2.pub] [--registry HOST[:PORT] [--plain-http]
                   [--insecure] [--user USER --password-file FILE]] [--gomod-dir DIR] BUNDLE
BUNDLE is NAME.tar or its first part NAME.tar.001 (NAME.parts.json beside it).
EOF
  exit 2
}

TRUST_FILES=''
REGISTRY=''
PLAIN=0
INSECURE=0
USER_NAME=''
PASS_FILE=''
GOMOD_DIR=''
BUNDLE=''
while [ $# -gt 0 ]; do
  case "$1" in
    --trust) [ $# -ge 2 ] || usage; TRUST_FILES="$TRUST_FILES
$2"; shift 2 ;;
    --registry) [ $# -ge 2 ] || usage; REGISTRY=$2; shift 2 ;;
    --plain-http) PLAIN=1; shift ;;
    --insecure) INSECURE=1; shift ;;
    --user) [ $# -ge 2 ] || usage; USER_NAME=$2; shift 2 ;;
    --password-file) [ $# -ge 2 ] || usage; PASS_FILE=$2; shift 2 ;;
    --gomod-dir) [ $# -ge 2 ] || usage; GOMOD_DIR=$2; shift 2 ;;
    -h|--help) usage ;;
    --) shift; [ $# -eq 1 ] || usage; BUNDLE=$1; shift ;;
    -*) printf '%s: unknown option %s\n' "$PROG" "$1" >&2; usage ;;
    *) [ -z "$BUNDLE" ] || usage; BUNDLE=$1; shift ;;
  esac
done
[ -n "$BUNDLE" ] || usage
[ -n "$TRUST_FILES" ] || die "at least one --trust KEY.pub is required"
if [ -n "$USER_NAME" ] && [ -z "$PASS_FILE" ]; then die "--user needs --password-file"; fi
if [ -n "$PASS_FILE" ] && [ -z "$USER_NAME" ]; then die "--password-file needs --user"; fi
for tool in tar sha256sum openssl base64 sed awk grep sort find comm cmp od head tail wc tr gzip mktemp dirname basename; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required but not installed"
done
if [ -n "$REGISTRY" ]; then command -v curl >/dev/null 2>&1 || die "curl is required to push to a registry"; fi
while IFS= read -r key; do
  [ -z "$key" ] || [ -r "$key" ] || die "trusted key $key cannot be read"
done <<EOF
$TRUST_FILES
EOF

TMP=$(mktemp -d) || die "cannot create a temporary directory"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
X="$TMP/bundle"
mkdir "$X" || die "cannot create $X"

# verify_sig FILE SIGFILE: succeeds when a trusted key verifies the base64 DER signature; sets SIGNER.
SIGNER=''
verify_sig() {
  tr -d '\r\n' < "$2" | base64 -d > "$TMP/sig.der" 2>/dev/null || return 1
  while IFS= read -r key; do
    [ -n "$key" ] || continue
    if openssl dgst -sha256 -verify "$key" -signature "$TMP/sig.der" "$1" >/dev/null 2>&1; then
      SIGNER=$key
      return 0
    fi
  done <<EOF
$TRUST_FILES
EOF
  return 1
}

# ---- 1. find and check the parts -------------------------------------------------------------
BDIR=$(dirname "$BUNDLE")
BBASE=$(basename "$BUNDLE")
case "$BBASE" in
  *.tar) NAME=$(printf '%s' "$BBASE" | sed 's/\.tar$//') ;;
  *.tar.[0-9][0-9][0-9]) NAME=$(printf '%s' "$BBASE" | sed 's/\.tar\.[0-9][0-9][0-9]$//') ;;
  *.parts.json) NAME=$(printf '%s' "$BBASE" | sed 's/\.parts\.json$//') ;;
  *) die "$BUNDLE is not a bundle (expected NAME.tar or NAME.tar.001)" ;;
esac
PARTS_JSON="$BDIR/$NAME.parts.json"
if [ -f "$PARTS_JSON" ]; then
  [ -f "$PARTS_JSON.sig" ] || die "$NAME.parts.json.sig is missing"
  verify_sig "$PARTS_JSON" "$PARTS_JSON.sig" || die "$NAME.parts.json: signature does not verify with any trusted key"
  grep -q '^  "formatVersion": 1,$' "$PARTS_JSON" || die "$NAME.parts.json: unsupported format version"
  grep -q "^  \"name\": \"$NAME\",\$" "$PARTS_JSON" || die "$NAME.parts.json names another bundle"
  # One part object per line, keys in a fixed order (Ferry's canonical layout).
  sed -n 's/^    {"file":"\([A-Za-z0-9._-]*\)","size":\([0-9]*\),"sha256":"\([0-9a-f]\{64\}\)"},\{0,1\}$/\1 \2 \3/p' \
    "$PARTS_JSON" > "$TMP/parts"
  NPARTS=$(wc -l < "$TMP/parts" | tr -d ' ')
  [ "$NPARTS" -gt 0 ] || die "$NAME.parts.json lists no parts"
  i=0
  while read -r pf psize psha; do
    i=$((i + 1))
    [ -f "$BDIR/$pf" ] || die "part $i of $NPARTS ($pf) is missing"
    asize=$(wc -c < "$BDIR/$pf" | tr -d ' ')
    [ "$asize" = "$psize" ] || die "part $pf has $asize bytes, parts.json says $psize - truncated, reordered or damaged"
    asha=$(sha256sum < "$BDIR/$pf" | awk '{print $1}')
    [ "$asha" = "$psha" ] || die "part $pf has the wrong sha256 - reordered or damaged"
  done < "$TMP/parts"
  say "parts OK: $NPARTS part(s) of $NAME, signed by $SIGNER"
  while read -r pf psize psha; do
    cat "$BDIR/$pf" || exit 1
  done < "$TMP/parts" | tar -x -o -f - -C "$X" || die "cannot extract $NAME"
else
  case "$BBASE" in
    *.tar) ;;
    *) die "$NAME.parts.json is missing: a split bundle cannot be checked without it" ;;
  esac
  warn "$NAME.parts.json is missing; relying on the signed file list alone"
  # Unauthenticated until the file list is checked: refuse anything but regular files first.
  tar -tvf "$BUNDLE" > "$TMP/listing" || die "$BUNDLE is not a readable tar"
  if grep -v '^-' "$TMP/listing" | grep -q .; then die "$BUNDLE holds entries that are not regular files"; fi
  tar -x -o -f "$BUNDLE" -C "$X" || die "cannot extract $BUNDLE"
fi

# ---- 2. verify the signed manifest and every file BEFORE touching anything ---------------------
M="$X/ferry-bundle.json"
[ -f "$M" ] || die "the bundle has no ferry-bundle.json"
[ -f "$M.sig" ] || die "the bundle has no ferry-bundle.json.sig"
verify_sig "$M" "$M.sig" || die "ferry-bundle.json: signature does not verify with any trusted key"
grep -q '^  "formatVersion": 1,$' "$M" || die "ferry-bundle.json: unsupported format version"
BUNDLE_ID=$(sed -n 's/^  "id": "\([^"]*\)",$/\1/p' "$M")
say "bundle $BUNDLE_ID: signature OK (key $SIGNER)"

# The "files" block: one {"path","size","sha256"[,"mediaType"]} object per line.
awk '/^  "files": \[$/ { f = 1; next } f && /^  \]/ { f = 0 } f' "$M" > "$TMP/files.json"
sed -n 's/^    {"path":"\([A-Za-z0-9._~!+@=,\/-]*\)","size":[0-9]*,"sha256":"\([0-9a-f]\{64\}\)".*$/\2  \1/p' \
  "$TMP/files.json" > "$TMP/sums"
[ "$(wc -l < "$TMP/sums")" -eq "$(wc -l < "$TMP/files.json")" ] || die "ferry-bundle.json: unreadable files list"
sed -n 's/^    {"path":"blobs\/sha256\/\([0-9a-f]\{64\}\)",.*"mediaType":"\([^"]*\)"}.*$/\1 \2/p' \
  "$TMP/files.json" > "$TMP/manifests"
if ! (cd "$X" && sha256sum -c "$TMP/sums") > "$TMP/check" 2>&1; then
  bad=$(grep -v ': OK$' "$TMP/check" | head -n 1)
  die "file check failed: $bad"
fi
if (cd "$X" && find . ! -type f ! -type d) | grep -q .; then die "the bundle holds entries that are not regular files"; fi
(cd "$X" && find . -type f) | sed 's|^\./||' | LC_ALL=C sort > "$TMP/have"
{ awk '{ print $2 }' "$TMP/sums"; echo ferry-bundle.json; echo ferry-bundle.json.sig; } | LC_ALL=C sort > "$TMP/want"
extra=$(LC_ALL=C comm -23 "$TMP/have" "$TMP/want" | head -n 1)
[ -z "$extra" ] || die "tar entry $extra is not listed in ferry-bundle.json"
missing=$(LC_ALL=C comm -13 "$TMP/have" "$TMP/want" | head -n 1)
[ -z "$missing" ] || die "$missing is listed in ferry-bundle.json but absent from the tar"
say "all $(wc -l < "$TMP/sums" | tr -d ' ') files verified"

`;

/** The import script text (POSIX sh; needs tar, sha256sum, openssl, base64, curl, od, gzip and the usual text tools). */
export const IMPORT_SCRIPT: string = SH_VERIFY + SH_AWKLIB + SH_IMAGES + SH_MODULES + SH_MODZIP + SH_LIFECYCLE + SH_PRUNED + SH_PUSH + SH_GOMOD;
