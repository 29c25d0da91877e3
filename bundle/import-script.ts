/**
 * The text of import.sh, the POSIX sh importer shipped inside every bundle and beside it.
 * This string is the source of truth (the build compiles only .ts). It contains no "${" and
 * no backquote, so String.raw keeps every byte as written; test/bundle checks it with sh -n
 * and runs it against a real registry.
 */

/** The import script text (POSIX sh; needs tar, sha256sum, openssl, base64, curl, od, gzip and the usual text tools). */
export const IMPORT_SCRIPT: string = String.raw`#!/bin/sh
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

# The awk below runs byte-wise (LC_ALL=C); each program writes its refusal to $TMP/err and
# exits 1. AWKLIB holds the Go module rules they share (golang.org/x/mod module and semver).
AWKLIB='
function init(   i, w, n) {
  for (i = 0; i < 256; i++) { CHR[i] = sprintf("%c", i); ORD[CHR[i]] = i }
  HEX = "0123456789abcdef"
  BQ = "\140"
  n = split("CON PRN AUX NUL COM1 COM2 COM3 COM4 COM5 COM6 COM7 COM8 COM9 LPT1 LPT2 LPT3 LPT4 LPT5 LPT6 LPT7 LPT8 LPT9", w, " ")
  for (i = 1; i <= n; i++) WIN[w[i]] = 1
}
function fail(msg) {
  if (!FAILED) { FAILED = 1; printf "%s\n", msg > errf }
  exit 1
}
function hex2(o) { return substr(HEX, int(o / 16) + 1, 1) substr(HEX, o % 16 + 1, 1) }
# jq S: S quoted as JSON.stringify quotes it, bytes read as UTF-8 the way Node reads them (each
# maximal invalid sequence shown as U+FFFD).
function jq(s,   out, i, n, c, o, k) {
  out = "\""; n = length(s)
  for (i = 1; i <= n; i++) {
    c = substr(s, i, 1); o = ORD[c]
    if (o >= 128) {
      k = u8len(s, i)
      if (k > 0) { out = out substr(s, i, k); i += k - 1 }
      else { out = out "\357\277\275"; i += -k - 1 }
      continue
    }
    if (c == "\"") out = out "\\\""
    else if (c == "\\") out = out "\\\\"
    else if (o == 8) out = out "\\b"
    else if (o == 9) out = out "\\t"
    else if (o == 10) out = out "\\n"
    else if (o == 12) out = out "\\f"
    else if (o == 13) out = out "\\r"
    else if (o < 32) out = out "\\u00" hex2(o)
    else out = out c
  }
  return out "\""
}
# u8len S I: the length of the well-formed UTF-8 character at byte I of S, or minus the length
# of the maximal invalid sequence there (at least 1).
function u8len(s, i,   n, o, k, j, lo, hi) {
  n = length(s); o = ORD[substr(s, i, 1)]
  if (o < 128) return 1
  if (o >= 194 && o <= 223) k = 1
  else if (o >= 224 && o <= 239) k = 2
  else if (o >= 240 && o <= 244) k = 3
  else return -1
  lo = 128; hi = 191
  if (o == 224) lo = 160
  else if (o == 237) hi = 159
  else if (o == 240) lo = 144
  else if (o == 244) hi = 143
  for (j = 1; j <= k; j++) {
    if (i + j > n) return -j
    o = ORD[substr(s, i + j, 1)]
    if (o < lo || o > hi) return -j
    lo = 128; hi = 191
  }
  return k + 1
}
# utf8ok S: 1 when S is well-formed UTF-8.
function utf8ok(s,   i, n, k) {
  n = length(s)
  for (i = 1; i <= n; i += k) { k = u8len(s, i); if (k < 0) return 0 }
  return 1
}
# qrune C: one character quoted as module.CheckPath quotes it (Go %q).
function qrune(c,   o) {
  o = ORD[substr(c, 1, 1)]
  if (c == "\047") return "\047\\\047\047"
  if (o < 32 || o == 127) return "\047\\x" hex2(o) "\047"
  return "\047" c "\047"
}
# elemerr ELEM KIND: why ELEM is no valid path element (module.checkElem), or "". KIND is
# module, import or file. Non-ASCII characters of file names are not told apart here (Go
# allows letters only); module and import paths are ASCII.
function elemerr(e, kind,   i, n, c, o, k, dot, short, ok) {
  if (e == "") return "empty path element"
  if (e ~ /^\.+$/) return "invalid path element " jq(e)
  if (substr(e, 1, 1) == "." && kind == "module") return "leading dot in path element"
  if (substr(e, length(e), 1) == ".") return "trailing dot in path element"
  n = length(e)
  for (i = 1; i <= n; i++) {
    c = substr(e, i, 1); o = ORD[c]
    if (o >= 128) {
      k = o >= 240 ? 4 : o >= 224 ? 3 : 2
      if (kind != "file") return "invalid char " qrune(substr(e, i, k))
      i += k - 1
      continue
    }
    if (c ~ /[0-9A-Za-z]/) continue
    if (kind == "module") ok = index("-._~", c) > 0
    else if (kind == "import") ok = index("-._~+", c) > 0
    else ok = index("!#$%&()+,-.=@[]^_{}~ ", c) > 0
    if (!ok) return "invalid char " qrune(c)
  }
  dot = index(e, ".")
  short = dot > 0 ? substr(e, 1, dot - 1) : e
  if (toupper(short) in WIN) return jq(short) " disallowed as path element component on Windows"
  if (kind == "file") return ""
  if (short ~ /~[0-9]+$/) return "trailing tilde and digits in path element"
  return ""
}
# patherr PATH KIND: why PATH fails module.checkPath, or "".
function patherr(p, kind,   n, i, parts, r) {
  if (p == "") return "empty string"
  if (substr(p, 1, 1) == "-" && kind != "file") return "leading dash"
  if (index(p, "//")) return "double slash"
  if (substr(p, length(p), 1) == "/") return "trailing slash"
  n = split(p, parts, "/")
  for (i = 1; i <= n; i++) { r = elemerr(parts[i], kind); if (r != "") return r }
  return ""
}
# modpatherr PATH: why PATH fails module.CheckPath, or "".
function modpatherr(p,   r, i, j, n, first, c) {
  r = patherr(p, "module")
  if (r != "") return r
  i = index(p, "/")
  if (i == 0) i = length(p) + 1
  if (i == 1) return "leading slash"
  first = substr(p, 1, i - 1)
  if (index(first, ".") == 0) return "missing dot in first path element"
  if (substr(p, 1, 1) == "-") return "leading dash in first path element"
  n = length(first)
  for (j = 1; j <= n; j++) {
    c = substr(first, j, 1)
    if (c !~ /[-.0-9a-z]/) return "invalid char " qrune(c) " in first path element"
  }
  splitpv(p)
  if (!SPV_OK) return "invalid version"
  return ""
}
# splitpv PATH: module.SplitPathVersion into SPV_PREFIX, SPV_MAJOR, SPV_OK.
function splitpv(p,   i, n, dot, pm) {
  SPV_PREFIX = p; SPV_MAJOR = ""; SPV_OK = 1
  n = length(p)
  if (substr(p, 1, 9) == "gopkg.in/") {
    i = n
    if (n >= 9 && substr(p, n - 8) == "-unstable") i -= 9
    while (i > 0 && substr(p, i, 1) ~ /[0-9]/) i--
    if (i <= 1 || substr(p, i, 1) != "v" || substr(p, i - 1, 1) != ".") { SPV_OK = 0; return }
    pm = substr(p, i - 1)
    if (length(pm) <= 2 || (substr(pm, 3, 1) == "0" && pm != ".v0")) { SPV_OK = 0; return }
    SPV_PREFIX = substr(p, 1, i - 2); SPV_MAJOR = pm
    return
  }
  i = n; dot = 0
  while (i > 0 && substr(p, i, 1) ~ /[0-9.]/) { if (substr(p, i, 1) == ".") dot = 1; i-- }
  if (i <= 1 || i == n || substr(p, i, 1) != "v" || substr(p, i - 1, 1) != "/") return
  pm = substr(p, i - 1)
  if (dot || length(pm) <= 2 || substr(pm, 3, 1) == "0" || pm == "/v1") { SPV_OK = 0; return }
  SPV_PREFIX = substr(p, 1, i - 2); SPV_MAJOR = pm
}
function svint(s) {
  if (!match(s, /^[0-9]+/)) return 0
  SVI = substr(s, 1, RLENGTH); SVR = substr(s, RLENGTH + 1)
  return !(length(SVI) > 1 && substr(SVI, 1, 1) == "0")
}
function svids(s, strict,   n, i, parts) {
  n = split(s, parts, ".")
  if (n == 0) return 0
  for (i = 1; i <= n; i++) {
    if (parts[i] == "" || parts[i] ~ /[^0-9A-Za-z-]/) return 0
    if (strict && parts[i] ~ /^0[0-9]+$/) return 0
  }
  return 1
}
# svparse V: golang.org/x/mod/semver parse into SV_MAJOR, SV_SHORT, SV_BUILD; 0 when invalid.
function svparse(v,   i) {
  SV_MAJOR = ""; SV_SHORT = ""; SV_BUILD = ""
  if (substr(v, 1, 1) != "v" || !svint(substr(v, 2))) return 0
  SV_MAJOR = "v" SVI; v = SVR
  if (v == "") { SV_SHORT = ".0.0"; return 1 }
  if (substr(v, 1, 1) != "." || !svint(substr(v, 2))) return 0
  v = SVR
  if (v == "") { SV_SHORT = ".0"; return 1 }
  if (substr(v, 1, 1) != "." || !svint(substr(v, 2))) return 0
  v = SVR
  if (substr(v, 1, 1) == "-") {
    i = index(v, "+")
    if (!svids(i ? substr(v, 2, i - 2) : substr(v, 2), 1)) return 0
    v = i ? substr(v, i) : ""
  }
  if (substr(v, 1, 1) == "+") {
    if (!svids(substr(v, 2), 0)) return 0
    SV_BUILD = v; v = ""
  }
  return v == ""
}
# canonmod V: module.CanonicalVersion (semver.Canonical keeping +incompatible), "" when invalid.
function canonmod(v,   cv) {
  if (!svparse(v)) return ""
  if (SV_BUILD != "") cv = substr(v, 1, length(v) - length(SV_BUILD))
  else cv = v SV_SHORT
  return SV_BUILD == "+incompatible" ? cv "+incompatible" : cv
}
# pmm V PATHMAJOR: why V fails module.CheckPathMajor, or "".
function pmm(v, pm,   m) {
  if (substr(pm, 1, 2) == ".v" && length(pm) >= 9 && substr(pm, length(pm) - 8) == "-unstable") pm = substr(pm, 1, length(pm) - 9)
  if (substr(v, 1, 7) == "v0.0.0-" && pm == ".v1") return ""
  svparse(v); m = SV_MAJOR
  if (pm == "") {
    if (m == "v0" || m == "v1" || SV_BUILD == "+incompatible") return ""
    pm = "v0 or v1"
  } else if (substr(pm, 1, 1) == "/" || substr(pm, 1, 1) == ".") {
    if (m == substr(pm, 2)) return ""
    pm = substr(pm, 2)
  }
  return "should be " pm ", not " m
}
# esc S: the case encoding of module.EscapePath (upper case X as !x).
function esc(s,   out, i, n, c) {
  out = ""; n = length(s)
  for (i = 1; i <= n; i++) { c = substr(s, i, 1); out = out (c ~ /[A-Z]/ ? "!" tolower(c) : c) }
  return out
}
# unesc S: its inverse; sets UNESC_OK to 0 on a bad escape, an upper case or non-ASCII letter.
function unesc(s,   out, i, n, c, bang) {
  out = ""; n = length(s); bang = 0; UNESC_OK = 1
  for (i = 1; i <= n; i++) {
    c = substr(s, i, 1)
    if (ORD[c] >= 128) { UNESC_OK = 0; return "" }
    if (bang) { bang = 0; if (c !~ /[a-z]/) { UNESC_OK = 0; return "" }; out = out toupper(c); continue }
    if (c == "!") { bang = 1; continue }
    if (c ~ /[A-Z]/) { UNESC_OK = 0; return "" }
    out = out c
  }
  if (bang) UNESC_OK = 0
  return out
}
# isclean P: 1 when path.Clean(P) == P.
function isclean(p,   n, parts, i, rooted, seen) {
  if (p == "") return 0
  if (p == "/" || p == ".") return 1
  rooted = substr(p, 1, 1) == "/"
  n = split(rooted ? substr(p, 2) : p, parts, "/")
  seen = 0
  for (i = 1; i <= n; i++) {
    if (parts[i] == "" || parts[i] == ".") return 0
    if (parts[i] == "..") { if (rooted || seen) return 0; continue }
    seen = 1
  }
  return 1
}
'
# run_awk OUT PROGRAM [ARGS...]: awk with AWKLIB, the refusal (if any) in $TMP/err.
run_awk() {
  _out=$1; _prog=$2; shift 2
  : > "$TMP/err"
  LC_ALL=C awk -v errf="$TMP/err" "$AWKLIB
$_prog" "$@" > "$_out"
}
# awk_die: dies with the refusal the last awk program wrote.
awk_die() { die "$(head -n 1 "$TMP/err")"; }

# ---- 2a. the signed image list ---------------------------------------------------------------
# images[] in ferry-bundle.json (not index.json, which is only the OCI layout) says what goes
# where: one object per line, keys in a fixed order, checked as ferry import checks them.
# $TMP/images: TARGET TAG DIGEST MEDIATYPE FILTERED|- PLATFORMS|- REFERENCE
run_awk "$TMP/images" '
function lit(t) { if (substr(s, 1, length(t)) != t) return 0; s = substr(s, length(t) + 1); return 1 }
function jstr(   i, n, c) {
  if (substr(s, 1, 1) != "\"") return 0
  n = length(s)
  for (i = 2; i <= n; i++) {
    c = substr(s, i, 1)
    if (c == "\\") { i++; continue }
    if (ORD[c] < 32) return 0
    if (c == "\"") { V = substr(s, 2, i - 2); s = substr(s, i + 1); return 1 }
  }
  return 0
}
function bad(what) { fail("ferry-bundle.json: images[" k "]" what) }
function digest(d) { return d ~ /^sha256:[0-9a-f]+$/ && length(d) == 71 }
BEGIN { init() }
/^  "images": \[\],?$/ { found = 1; exit }
/^  "images": \[$/ { found = 1; f = 1; next }
f && /^  \]/ { f = 0; exit }
f {
  s = $0; k = n++
  if (!lit("    {\"reference\":") || !jstr()) bad(" is not in the canonical layout")
  ref = V
  if (!lit(",\"target\":") || !jstr()) bad(" is not in the canonical layout")
  target = V
  if (!lit(",\"tag\":") || !jstr()) bad(" is not in the canonical layout")
  tag = V
  if (!lit(",\"digest\":") || !jstr()) bad(" is not in the canonical layout")
  dg = V
  if (!lit(",\"mediaType\":") || !jstr()) bad(" is not in the canonical layout")
  mt = V
  if (!lit(",\"platforms\":")) bad(" is not in the canonical layout")
  plats = ""
  if (!lit("null")) {
    if (!lit("[")) bad(" is not in the canonical layout")
    while (1) {
      if (!jstr()) bad(" is not in the canonical layout")
      if (V !~ /^[a-z0-9._-]+\/[a-z0-9._-]+(\/[a-z0-9._-]+)?$/) bad(".platforms: " jq(V) " must be os/arch[/variant]")
      plats = plats (plats == "" ? "" : ",") V
      if (lit("]")) break
      if (!lit(",")) bad(" is not in the canonical layout")
    }
  }
  filt = "-"
  if (lit(",\"filtered\":")) { if (!jstr()) bad(" is not in the canonical layout"); filt = V }
  if (!lit("}") || (s != "" && s != ",")) bad(" is not in the canonical layout")
  if (ref == "") bad(".reference must not be empty")
  if (length(target) > 255 || target !~ /^[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(\/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$/) bad(".target " jq(target) " must be a repository path")
  if (length(tag) > 128 || tag !~ /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/) bad(".tag " jq(tag) " must be a valid tag")
  if (!digest(dg)) bad(".digest " jq(dg) " must be sha256:<64 lowercase hex>")
  if (mt !~ /^application\/vnd\.(oci\.image\.(index|manifest)\.v1|docker\.distribution\.manifest\.(list\.)?v2)\+json$/) bad(".mediaType " jq(mt) " is not a manifest media type")
  if (filt != "-") {
    if (!digest(filt)) bad(".filtered " jq(filt) " must be sha256:<64 lowercase hex>")
    if (plats == "") bad(".filtered is set but platforms is null (nothing is filtered)")
    if (mt !~ /index|list/) bad(".filtered is set but the image is not an index (" mt ")")
    if (filt == dg) bad(".filtered must differ from digest")
  }
  if ((target ":" tag) in seen) fail("ferry-bundle.json: images[" k "] target " target ":" tag " is listed twice")
  seen[target ":" tag] = 1
  print target, tag, dg, mt, filt, (plats == "" ? "-" : plats), ref
}
END {
  if (FAILED) exit 1
  if (!found) fail("ferry-bundle.json: no images list")
  if (f) fail("ferry-bundle.json: the images list is not closed")
}' "$M" || awk_die
NIMAGES=$(wc -l < "$TMP/images" | tr -d ' ')

# A filtered image carries its upstream index and the filtered index ferry export made of it
# (only the kept children, annotated io.ferry.filtered-from), so that both importers push the
# same bytes. ferry verify and ferry import recompute the filtered index from the original;
# JSON is not rewritten in sh, so import.sh checks that it names the original and keeps only
# children of it.
digests_of() { grep -o '"digest"[[:space:]]*:[[:space:]]*"sha256:[0-9a-f]\{64\}"' "$1" | sed 's/.*"\(sha256:[0-9a-f]*\)"$/\1/' | LC_ALL=C sort -u; }
# Checked when images may be pushed (or the bundle is only verified), as ferry import does.
if [ -n "$REGISTRY" ] || [ -z "$GOMOD_DIR" ]; then
  i=0
  while read -r target tag dg mt filt plats ref; do
    i=$((i + 1))
    [ "$filt" != - ] || continue
    for d in "$dg" "$filt"; do
      hex=$(printf '%s' "$d" | sed 's/^sha256://')
      have=$(awk -v h="$hex" '$1 == h { print $2; exit }' "$TMP/manifests")
      [ -n "$have" ] || have='no such manifest'
      [ "$have" = "$mt" ] || die "ferry-bundle.json: images[$((i - 1))].filtered needs blobs/sha256/$hex carried as $mt (the files list has $have)"
    done
    ff="$X/blobs/sha256/$(printf '%s' "$filt" | sed 's/^sha256://')"
    grep -q "\"io\.ferry\.filtered-from\":\"$dg\"" "$ff" || die "ferry-bundle.json: images[$((i - 1))].filtered ($target:$tag): $filt does not name $dg in io.ferry.filtered-from"
    digests_of "$ff" > "$TMP/fd"
    digests_of "$X/blobs/sha256/$(printf '%s' "$dg" | sed 's/^sha256://')" > "$TMP/od"
    extra=$(LC_ALL=C comm -23 "$TMP/fd" "$TMP/od" | head -n 1)
    [ -z "$extra" ] || die "ferry-bundle.json: images[$((i - 1))].filtered ($target:$tag): $filt lists $extra, which $dg does not"
    [ -s "$TMP/fd" ] || die "ferry-bundle.json: images[$((i - 1))].filtered ($target:$tag): $filt keeps no platform"
  done < "$TMP/images"
fi

# ---- 2a'. the image plan ----------------------------------------------------------------------
# ferry export writes each image's closure as Ferry's image graph gives it into image-plan.txt
# (ferry verify and ferry import check it is the graph's own): the blobs and manifests to push,
# children before parents, each image's root (with its filtered index) and tag. import.sh follows
# it rather than walking manifests itself, so both importers push the same content.
# $TMP/planned: TARGET KIND DIGEST HEX MEDIATYPE|- FILTERED|- (KIND: blob, foreign, manifest, root)
PLAN="$X/image-plan.txt"
: > "$TMP/planned"
if [ "$NIMAGES" -gt 0 ] && { [ -n "$REGISTRY" ] || [ -z "$GOMOD_DIR" ]; }; then
  if [ ! -f "$PLAN" ]; then
    [ -z "$REGISTRY" ] || die "the bundle carries no image-plan.txt (made by a Ferry that wrote none): import it with the import.sh it came with, or with ferry import"
    warn "the bundle carries no image-plan.txt: this import.sh cannot push its images (ferry import can)"
  else
    run_awk "$TMP/planned" '
function bad(why) { fail("image-plan.txt: line " FNR ": " why) }
function digest(d) { return d ~ /^sha256:[0-9a-f]+$/ && length(d) == 71 }
BEGIN { init(); cur = 0; n = 0 }
FNR == NR { target[n] = $1; tag[n] = $2; dg[n] = $3; mt[n] = $4; filt[n] = $5; n++; next }
FNR == 1 { if ($0 != "ferry image plan 1") bad("not a version 1 image plan"); next }
{
  k = $1; kind = $2
  if (k !~ /^[0-9]+$/ || k + 0 >= n) bad("names no image of images[]")
  k = k + 0
  if (k != cur) {
    if (!(cur in tagged) || k != cur + 1) bad("images[" k "] out of order")
    cur = k
  }
  if (k in tagged) bad("a step of images[" k "] after its tag")
  if (kind == "blob" || kind == "foreign") {
    if (NF != 3 || !digest($3)) bad("is not \"IMAGE " kind " DIGEST\"")
    print target[k], kind, $3, substr($3, 8), "-", "-"
  } else if (kind == "manifest") {
    if (NF != 4 || !digest($3) || $4 !~ /^application\/vnd\.(oci\.image\.(index|manifest)\.v1|docker\.distribution\.manifest\.(list\.)?v2)\+json$/) bad("is not \"IMAGE manifest DIGEST MEDIATYPE\"")
    print target[k], kind, $3, substr($3, 8), $4, "-"
  } else if (kind == "root") {
    if (NF != 5) bad("is not \"IMAGE root DIGEST MEDIATYPE FILTERED\"")
    if ($3 != dg[k] || $4 != mt[k] || $5 != filt[k]) bad("the root of images[" k "] is " $3 " " $4 " " $5 ", images[] says " dg[k] " " mt[k] " " filt[k])
    rooted[k] = 1
    print target[k], kind, $3, substr($3, 8), $4, $5
  } else if (kind == "tag") {
    if (NF != 3 || $3 != tag[k]) bad("the tag of images[" k "] is not " tag[k])
    if (!(k in rooted)) bad("images[" k "] is tagged before its root")
    tagged[k] = 1
  } else bad("unknown step " jq(kind))
}
END {
  if (FAILED) exit 1
  if (n > 0 && (cur != n - 1 || !(cur in tagged))) fail("image-plan.txt: does not plan every image of images[]")
}' "$TMP/images" "$PLAN" || awk_die
  fi
fi

# ---- 2b. the Go module files, checked as ferry import checks them ------------------------------
# modules[]: one {"path","version","h1","goModH1","time"} object per line.
# $TMP/modules: PATH VERSION H1|- GOMODH1
run_awk "$TMP/modules" '
function lit(t) { if (substr(s, 1, length(t)) != t) return 0; s = substr(s, length(t) + 1); return 1 }
function jstr(   i, n, c) {
  if (substr(s, 1, 1) != "\"") return 0
  n = length(s)
  for (i = 2; i <= n; i++) {
    c = substr(s, i, 1)
    if (c == "\\" || ORD[c] < 33) return 0
    if (c == "\"") { V = substr(s, 2, i - 2); s = substr(s, i + 1); return 1 }
  }
  return 0
}
function h1(x) { return length(x) == 47 && x ~ /^h1:[A-Za-z0-9+\/]+=$/ }
function bad(what) { fail("ferry-bundle.json: modules[" k "]" what) }
BEGIN { init() }
/^  "modules": \[\],?$/ { found = 1; exit }
/^  "modules": \[$/ { found = 1; f = 1; next }
f && /^  \]/ { f = 0; exit }
f {
  s = $0; k = n++
  if (!lit("    {\"path\":") || !jstr()) bad(" is not in the canonical layout")
  p = V
  if (!lit(",\"version\":") || !jstr()) bad(" is not in the canonical layout")
  v = V
  if (!lit(",\"h1\":")) bad(" is not in the canonical layout")
  h = "-"
  if (!lit("null")) { if (!jstr()) bad(" is not in the canonical layout"); h = V; if (!h1(h)) bad(".h1 must be h1:<base64 sha256>") }
  if (!lit(",\"goModH1\":") || !jstr()) bad(" is not in the canonical layout")
  g = V
  if (!h1(g)) bad(".goModH1 must be h1:<base64 sha256>")
  if (!lit(",\"time\":") || !jstr()) bad(" is not in the canonical layout")
  if (V !~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9](\.[0-9]+)?(Z|[+-][0-9][0-9]:[0-9][0-9])$/) bad(".time must be an RFC 3339 time")
  if (!lit("}") || (s != "" && s != ",")) bad(" is not in the canonical layout")
  if (p == "" || length(p) > 512 || v == "" || length(v) > 256) bad(" has an empty or overlong path or version")
  print p, v, h, g
}
END {
  if (FAILED) exit 1
  if (!found) fail("ferry-bundle.json: no modules list")
  if (f) fail("ferry-bundle.json: the modules list is not closed")
}' "$M" || awk_die


# The order ferry import checks module files in: each listed version must have its .info, .mod
# (and .zip when the list gives an h1); then, in tar order, every file under gomod/ that is a
# module file (not sumdb/, not a list): listed, .info before .mod before .zip.
# $TMP/modplan: "info PATH MODULE VERSION", "mod PATH MODULE VERSION GOMODH1 INFOPATH",
# "zip PATH MODULE VERSION MODPATH INFOPATH", or "error MESSAGE" where ferry import stops.
MODPLAN_AWK='
BEGIN { init() }
part == "m" { P[++nm] = $1; VV[nm] = $2; H[nm] = $3; G[nm] = $4; LISTED[$1 "@" $2] = nm; next }
part == "f" { FILES[$2] = 1; ORDER[++nf] = $2; next }
function stop(msg) { print "error " msg; STOPPED = 1 }
END {
  if (FAILED) exit 1
  for (i = 1; i <= nm; i++) {
    r = modpatherr(P[i])
    if (r != "") fail("malformed module path " jq(P[i]) ": " r)
    if (elemerr(VV[i], "file") != "" || index(VV[i], "!")) fail("version " jq(VV[i]) " invalid: disallowed version string")
    base = "gomod/" esc(P[i]) "/@v/" esc(VV[i])
    if (!((base ".info") in FILES)) fail(base ".info: is missing for " P[i] "@" VV[i])
    if (!((base ".mod") in FILES)) fail(base ".mod: is missing for " P[i] "@" VV[i])
    if (H[i] != "-" && !((base ".zip") in FILES)) fail(base ".zip: is missing for " P[i] "@" VV[i] " (modules gives an h1)")
  }
  for (j = 1; j <= nf && !STOPPED; j++) {
    p = ORDER[j]
    if (substr(p, 1, 6) != "gomod/") continue
    rel = substr(p, 7)
    if (substr(rel, 1, 6) == "sumdb/" || !match(rel, /\/@v\/[^\/]+\.(info|mod|zip)$/) || RSTART == 1) continue
    em = substr(rel, 1, RSTART - 1)
    last = substr(rel, RSTART + 4)
    ext = last
    sub(/.*\./, "", ext)
    ev = substr(last, 1, length(last) - length(ext) - 1)
    m = unesc(em)
    if (!UNESC_OK) { stop(p ": not a valid module file path: invalid escaped module path " jq(em)); break }
    r = modpatherr(m)
    if (r != "") { stop(p ": not a valid module file path: invalid escaped module path " jq(em) ": malformed module path " jq(m) ": " r); break }
    v = unesc(ev)
    if (!UNESC_OK) { stop(p ": not a valid module file path: invalid escaped version " jq(ev)); break }
    r = elemerr(v, "file")
    if (r != "") { stop(p ": not a valid module file path: invalid escaped version " jq(v) ": " r); break }
    key = m "@" v
    if (!(key in LISTED)) { stop(p ": " key " is not listed in the bundle\047s modules"); break }
    x = LISTED[key]
    if (ext == "info") { INFO[key] = p; ST[key] = "info"; print "info", p, m, v; continue }
    if (ext == "mod") {
      if (ST[key] != "info") { stop(p ": comes before " key "\047s .info"); break }
      print "mod", p, m, v, G[x], INFO[key]
      if (H[x] == "-") ST[key] = "done"
      else { ST[key] = "files"; MODF[key] = p }
      continue
    }
    if (H[x] == "-") { stop(p ": a zip is carried but the signed module list gives " key " no h1"); break }
    if (ST[key] != "files") { stop(p ": comes before " key "\047s .mod"); break }
    print "zip", p, m, v, MODF[key], INFO[key]
    ST[key] = "done"
  }
  for (i = 1; i <= nm && !STOPPED; i++) {
    key = P[i] "@" VV[i]
    if (ST[key] == "done") continue
    ext = ST[key] == "" ? "info" : ST[key] == "info" ? "mod" : "zip"
    stop("gomod/" esc(P[i]) "/@v/" esc(VV[i]) "." ext ": is missing for " key (ext == "zip" ? " (modules gives an h1)" : ""))
  }
}'

# A version's .info and .mod (goproxy checkModFiles): the version canonical and valid for the
# module path; the .info names that version; the .mod declares the module path (its module
# directive, as go.mod syntax allows: quoted, in a block, with comments). Prints "ONLY EXTRA":
# ONLY is 1 when the .mod has no go, require or retract directive (EXTRA says which it has).
MODFILES_AWK='
function setval(k, t, v) { if (k == "Version") { VT = t; VV = v } else if (k == "Time") TT = t }
function infocheck(mv,   s, n, i, j, c, depth, state, key, started) {
  s = INFOTEXT; n = length(s); depth = 0; state = ""; started = 0
  for (i = 1; i <= n; i++) {
    c = substr(s, i, 1)
    if (c == "\"") {
      for (j = i + 1; j <= n; j++) { c = substr(s, j, 1); if (c == "\\") { j++; continue }; if (c == "\"") break }
      if (j > n) fail(mv ": .info: invalid JSON")
      if (depth == 1 && state == "key") { key = substr(s, i + 1, j - i - 1); state = "colon" }
      else if (depth == 1 && state == "value") { setval(key, "string", substr(s, i + 1, j - i - 1)); state = "comma" }
      i = j
      continue
    }
    if (c == "{" || c == "[") {
      if (depth == 0 && c == "{" && !started) { started = 1; state = "key" }
      else if (depth == 0) fail(mv ": .info: invalid JSON")
      else if (depth == 1 && state == "value") { setval(key, "other", ""); state = "comma" }
      depth++
      continue
    }
    if (c == "}" || c == "]") { depth--; if (depth < 0) fail(mv ": .info: invalid JSON"); continue }
    if (c == " " || c == "\t" || c == "\n" || c == "\r") continue
    if (depth == 1 && c == ":" && state == "colon") { state = "value"; continue }
    if (depth == 1 && c == "," && state == "comma") { state = "key"; continue }
    if (depth == 0) fail(mv ": .info: invalid JSON")
    if (depth == 1 && state == "value") { setval(key, "other", ""); state = "comma" }
  }
  if (!started || depth != 0) fail(mv ": .info: invalid JSON")
  if (VT != "string" || !svparse(VV)) fail(mv ": .info: response has no valid \"Version\"")
  if (TT != "" && TT != "string") fail(mv ": .info: \"Time\" is not a string")
}
function hexval(s,   i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(s, i, 1))) - 1; return v }
function utf8enc(cp) {
  if (cp < 128) return CHR[cp]
  if (cp < 2048) return CHR[192 + int(cp / 64)] CHR[128 + cp % 64]
  if (cp < 65536) return CHR[224 + int(cp / 4096)] CHR[128 + int(cp / 64) % 64] CHR[128 + cp % 64]
  return CHR[240 + int(cp / 262144)] CHR[128 + int(cp / 4096) % 64] CHR[128 + int(cp / 64) % 64] CHR[128 + cp % 64]
}
# gmstr TOKEN: modfile parseString (Go strconv.Unquote for "..." tokens).
function gmstr(t, L,   b, out, i, n, c, e, h, cp) {
  if (substr(t, 1, 1) != "\"") {
    if (index(t, "\"") || index(t, "\047") || index(t, BQ)) fail(GMF ":" L ": invalid quoted string: unquoted string cannot contain quote")
    return t
  }
  b = substr(t, 2, length(t) - 2); n = length(b); out = ""
  for (i = 1; i <= n; i++) {
    c = substr(b, i, 1)
    if (c != "\\") { out = out c; continue }
    e = substr(b, ++i, 1)
    if (e == "a") out = out CHR[7]
    else if (e == "b") out = out CHR[8]
    else if (e == "f") out = out CHR[12]
    else if (e == "n") out = out CHR[10]
    else if (e == "r") out = out CHR[13]
    else if (e == "t") out = out CHR[9]
    else if (e == "v") out = out CHR[11]
    else if (e == "\\" || e == "\"") out = out e
    else if (e == "x" && substr(b, i + 1, 2) ~ /^[0-9A-Fa-f][0-9A-Fa-f]$/) { out = out CHR[hexval(substr(b, i + 1, 2))]; i += 2 }
    else if (e ~ /[0-7]/ && substr(b, i, 3) ~ /^[0-7][0-7][0-7]$/ && substr(b, i, 1) < "4") { out = out CHR[(substr(b, i, 1) * 64) + (substr(b, i + 1, 1) * 8) + substr(b, i + 2, 1)]; i += 2 }
    else if ((e == "u" && substr(b, i + 1, 4) ~ /^[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]$/) || (e == "U" && substr(b, i + 1, 8) ~ /^[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]$/)) {
      h = e == "u" ? 4 : 8
      cp = hexval(substr(b, i + 1, h))
      if (cp > 1114111 || (cp >= 55296 && cp <= 57343)) fail(GMF ":" L ": invalid quoted string: invalid syntax")
      out = out utf8enc(cp); i += h
    } else fail(GMF ":" L ": invalid quoted string: invalid syntax")
  }
  return out
}
# gmtok LINE: the tokens of one go.mod line (modfile/read.go) into TOK[1..NT].
function gmtok(line, L,   i, n, c, q, t) {
  NT = 0; n = length(line); i = 1
  while (i <= n) {
    c = substr(line, i, 1)
    if (c == " " || c == "\t" || c == "\r") { i++; continue }
    if (c == "/" && substr(line, i + 1, 1) == "/") return
    if (c == "/" && substr(line, i + 1, 1) == "*") fail(GMF ":" L ": mod files must use // comments (not /* */ comments)")
    if (index("()[]{},", c)) { TOK[++NT] = c; i++; continue }
    if (c == "\"" || c == BQ) {
      q = c; t = c; i++
      while (1) {
        if (i > n) fail(GMF ":" L ": unexpected newline in string")
        c = substr(line, i, 1); t = t c; i++
        if (c == q) break
        if (c == "\\" && q == "\"") { if (i > n) fail(GMF ":" L ": unexpected newline in string"); t = t substr(line, i, 1); i++ }
      }
      TOK[++NT] = t
      continue
    }
    t = ""
    while (i <= n) {
      c = substr(line, i, 1)
      if (index(" \t\r()[]{},", c) || (c == "/" && substr(line, i + 1, 1) == "/")) break
      t = t c; i++
    }
    TOK[++NT] = t
  }
}
# gmdir VERB FROM L: one directive of a dependency go.mod (modfile.ParseLax keeps module, go, require, retract).
function gmdir(verb, from, L,   na, p, v) {
  na = NT - from + 1
  if (verb == "module") {
    if (GMMOD) fail(GMF ":" L ": repeated module statement")
    GMMOD = 1
    if (na != 1) fail(GMF ":" L ": usage: module module/path")
    GM_MODULE = gmstr(TOK[from], L)
  } else if (verb == "go") {
    if (GM_GO != "") fail(GMF ":" L ": repeated go statement")
    if (na != 1) fail(GMF ":" L ": go directive expects exactly one argument")
    v = TOK[from]
    if (v !~ /^[1-9][0-9]*\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?([a-z]+[0-9]+)?$/) {
      if (v !~ /^v?[1-9][0-9]*\.(0|[1-9][0-9]*)[^0-9]/) fail(GMF ":" L ": invalid go version \047" v "\047: must match format 1.23.0")
      sub(/^v/, "", v)
      match(v, /^[1-9][0-9]*\.(0|[1-9][0-9]*)/)
      v = substr(v, 1, RLENGTH)
    }
    GM_GO = v
  } else if (verb == "require") {
    if (na != 2) fail(GMF ":" L ": usage: require module/path v1.2.3")
    p = gmstr(TOK[from], L)
    v = canonmod(gmstr(TOK[from + 1], L))
    if (v == "") fail(GMF ":" L ": require " p ": version " jq(gmstr(TOK[from + 1], L)) " invalid: must be of the form v1.2.3")
    NREQ++
    if (NREQ <= 3) REQ = REQ (NREQ > 1 ? ", " : "") p " " v
  } else if (verb == "retract") NRET++
}
function gomodscan(   L, inblock, bverb) {
  inblock = 0
  for (L = 1; L <= NML; L++) {
    gmtok(ML[L], L)
    if (NT == 0) continue
    if (inblock) {
      if (TOK[1] == ")") { if (NT != 1) fail(GMF ":" L ": syntax error (expected newline after closing paren)"); inblock = 0; continue }
      gmdir(bverb, 1, L)
      continue
    }
    if (TOK[NT] == "(") {
      inblock = 1
      bverb = NT == 2 && TOK[1] ~ /^(module|godebug|require|exclude|replace|retract|tool)$/ ? TOK[1] : ""
      continue
    }
    if (NT >= 3 && TOK[NT - 1] == "(" && TOK[NT] == ")") continue
    gmdir(TOK[1], 2, L)
  }
  if (inblock) fail(GMF ": syntax error (unterminated block)")
  if (!GMMOD) fail(GMF ": missing module declaration")
}
BEGIN { init() }
FILENAME == infof { INFOTEXT = INFOTEXT $0 "\n"; next }
{ ML[++NML] = $0 }
END {
  if (FAILED) exit 1
  mv = module "@" version
  cv = canonmod(version)
  if (cv != version) fail(mv ": version " jq(version) " is not canonical (should be " jq(cv) ")")
  r = modpatherr(module)
  if (r != "") fail("malformed module path " jq(module) ": " r)
  splitpv(module)
  r = pmm(version, SPV_MAJOR)
  if (r != "") fail(mv ": invalid version: " r)
  infocheck(mv)
  if (VV != version) fail(mv ": the .info is for version " VV ", not the requested " version)
  GMF = mv "/go.mod"
  gomodscan()
  if (GM_MODULE != module) fail(mv ": the .mod declares its path as \"" GM_MODULE "\" but was required as \"" module "\"")
  extra = GM_GO != "" ? "go " GM_GO : ""
  if (NREQ) extra = extra (extra != "" ? ", " : "") NREQ " requirement(s) (" REQ ")"
  if (NRET) extra = extra (extra != "" ? ", " : "") NRET " retraction(s)"
  print (extra == "" ? 1 : 0), extra
}'

# The end of central directory record of a zip (the last 64 KiB + 42 bytes), as ferry import
# reads it: prints "DISK COUNT CDOFFSET ZIP64AT" (ZIP64AT -1 without a zip64 locator). Offsets
# past the end of the zip (SIZE) are refused or printed as SIZE, so sh arithmetic never overflows.
EOCD_AWK='
function u32(i) { return B[i] + 256 * B[i + 1] + 65536 * B[i + 2] + 16777216 * B[i + 3] }
BEGIN { init() }
{ for (i = 1; i <= NF; i++) B[n++] = $i + 0 }
END {
  if (FAILED) exit 1
  for (i = n - 22; i >= 0; i--) if (B[i] == 80 && B[i + 1] == 75 && B[i + 2] == 5 && B[i + 3] == 6) break
  if (i < 0) fail("not a readable zip: End of central directory record signature not found. Either not a zip file, or file is truncated.")
  cl = B[i + 20] + 256 * B[i + 21]
  if (cl != n - i - 22) fail("not a readable zip: Invalid comment length. Expected: " (n - i - 22) ". Found: " cl ". Are there extra bytes at the end of the file? Or is the end of central dir signature " BQ "PK\342\230\272\342\230\273" BQ " in the comment?")
  z = -1
  if (i - 20 >= 0 && B[i - 20] == 80 && B[i - 19] == 75 && B[i - 18] == 6 && B[i - 17] == 7) z = u32(i - 12) + 4294967296 * u32(i - 8)
  if (z >= 0 && z + 56 > size) fail("not a readable zip: unexpected EOF")
  printf "%.0f %.0f %.0f %.0f\n", B[i + 4] + 256 * B[i + 5], B[i + 10] + 256 * B[i + 11], u32(i + 16), z
}'
# The zip64 end of central directory record (56 bytes): prints "DISK COUNT CDOFFSET".
EOCD64_AWK='
function u32(i) { return B[i] + 256 * B[i + 1] + 65536 * B[i + 2] + 16777216 * B[i + 3] }
BEGIN { init() }
{ for (i = 1; i <= NF; i++) B[n++] = $i + 0 }
END {
  if (FAILED) exit 1
  if (n < 56) fail("not a readable zip: unexpected EOF")
  if (!(B[0] == 80 && B[1] == 75 && B[2] == 6 && B[3] == 6)) fail("not a readable zip: invalid zip64 end of central directory record signature")
  cd = u32(48) + 4294967296 * u32(52)
  printf "%.0f %.0f %.0f\n", u32(16), u32(32) + 4294967296 * u32(36), (cd > size ? size : cd)
}'
# The central directory (read from its offset), every entry as ferry import reads it, then the
# module zip rules (golang.org/x/mod/zip CheckZip) on each name and declared size in order.
# Prints "gomod METHOD CSIZE USIZE CRC OFFSET FLAGS TRAILER" for the root go.mod (TRAILER: its
# CRC-32 and size as a gzip trailer in printf escapes) or "gomod none"; then "content MESSAGE"
# for the first entry that cannot be read for what the directory alone shows.
CD_AWK='
function u16(i) { return B[i] + 256 * B[i + 1] }
function u32(i) { return B[i] + 256 * B[i + 1] + 65536 * B[i + 2] + 16777216 * B[i + 3] }
function u64(i) { return u32(i) + 4294967296 * u32(i + 4) }
function le4(x,   s, k) { s = ""; for (k = 0; k < 4; k++) { s = s sprintf("\\%03o", x % 256); x = int(x / 256) }; return s }
function sighex(i,   s) { s = hex2(B[i + 3]) hex2(B[i + 2]) hex2(B[i + 1]) hex2(B[i]); sub(/^0+/, "", s); return s == "" ? "0" : s }
function rule(msg) { if (RULE == "") RULE = msg }
function content(msg) { if (CONTENT == "") CONTENT = msg }
function collide(p, isdir,   f, i) {
  while (1) {
    f = tolower(p)
    if (f in SEENP) {
      if (p != SEENP[f]) return "case-insensitive file name collision: " jq(SEENP[f]) " and " jq(p)
      if (isdir != SEEND[f]) return "entry " jq(p) " is both a file and a directory"
      if (!isdir) return "multiple entries for file " jq(p)
    } else { SEENP[f] = p; SEEND[f] = isdir }
    if (!match(p, /\/[^\/]*$/)) return ""
    p = substr(p, 1, RSTART - 1); isdir = 1
  }
}
function rules(nm, sz, method, csize, crc, off, flags,   pfx, shown, name, isdir, r, base) {
  pfx = mv "/"
  shown = jq(nm)
  if (substr(nm, 1, length(pfx)) != pfx) { rule("zip entry " shown ": path does not have prefix " jq(pfx)); return }
  name = substr(nm, length(pfx) + 1)
  if (!utf8ok(name)) { rule("zip entry " shown ": malformed file path: invalid UTF-8"); return }
  if (name == "") return
  isdir = substr(name, length(name), 1) == "/"
  if (isdir) name = substr(name, 1, length(name) - 1)
  if (!isclean(name)) { rule("zip entry " shown ": file path is not clean"); return }
  r = patherr(name, "file")
  if (r != "") { rule("zip entry " shown ": malformed file path " jq(name) ": " r); return }
  r = collide(name, isdir)
  if (r != "") { rule("zip entry " shown ": " r); return }
  if (isdir) {
    if (sz != 0) content("zip entry " shown ": cannot read (declared uncompressed size " sz "): directory entry " shown " has data")
    return
  }
  base = name
  sub(/.*\//, "", base)
  if (tolower(base) == "go.mod") {
    if (base != name) { rule("zip entry " shown ": go.mod file not in module root directory"); return }
    if (name != "go.mod") { rule("zip entry " shown ": go.mod files must have lowercase names"); return }
    GM = sprintf("%.0f %.0f %.0f %.0f %.0f %.0f %s", method, csize > size ? size + 1 : csize, sz, crc, off > size ? size : off, flags, le4(crc) le4(sz % 4294967296))
  }
  if (sz >= 0 && max - total >= sz) total += sz
  else { rule("total uncompressed size of module contents too large (max size is " max " bytes)"); return }
  if (name == "go.mod" && sz > 16777216) { rule("zip entry " shown ": go.mod file too large (max size is 16777216 bytes)"); return }
  if (name == "LICENSE" && sz > 16777216) { rule("zip entry " shown ": LICENSE file too large (max size is 16777216 bytes)"); return }
  if (flags % 2) content("zip entry " shown ": cannot read (declared uncompressed size " sz "): entry " shown ": entry is encrypted, and options.decodeFileData !== false")
  else if (method != 0 && method != 8) content("zip entry " shown ": cannot read (declared uncompressed size " sz "): entry " shown ": unsupported compression method: " method)
}
# entry: parses the next central directory entry once its bytes have arrived.
function entry(   nl, xl, cl, flags, method, csize, usize, off, crc, x, xend, dend, k, z64, name, j, len) {
  if (ne >= count) { DONE = 1; return 0 }
  if (hi - lo < 46) return 0
  if (!(B[lo] == 80 && B[lo + 1] == 75 && B[lo + 2] == 1 && B[lo + 3] == 2)) fail("invalid central directory file header signature: 0x" sighex(lo))
  flags = u16(lo + 8)
  if (int(flags / 64) % 2) fail("strong encryption is not supported")
  nl = u16(lo + 28); xl = u16(lo + 30); cl = u16(lo + 32)
  len = 46 + nl + xl + cl
  if (hi - lo < len) return 0
  method = u16(lo + 10); crc = u32(lo + 16); csize = u32(lo + 20); usize = u32(lo + 24); off = u32(lo + 42)
  x = lo + 46 + nl; xend = x + xl; z64 = 0
  while (x < xend - 3) {
    dend = x + 4 + u16(x + 2)
    if (dend > xend) fail("extra field length exceeds extra field buffer size")
    if (u16(x) == 1 && !z64) {
      z64 = 1; k = x + 4
      if (usize == 4294967295) { if (k + 8 > dend) fail("zip64 extended information extra field does not include uncompressed size"); usize = u64(k); k += 8 }
      if (csize == 4294967295) { if (k + 8 > dend) fail("zip64 extended information extra field does not include compressed size"); csize = u64(k); k += 8 }
      if (off == 4294967295) { if (k + 8 > dend) fail("zip64 extended information extra field does not include relative header offset"); off = u64(k); k += 8 }
    }
    x = dend
  }
  if (method == 0 && csize != (flags % 2 ? usize + 12 : usize)) fail("compressed/uncompressed size mismatch for stored file: " sprintf("%.0f", csize) " != " sprintf("%.0f", usize))
  name = ""
  for (j = 0; j < nl; j++) name = name CHR[B[lo + 46 + j]]
  for (j = lo; j < lo + len; j++) delete B[j]
  lo += len
  ne++
  # Names are checked as they come; after the first refusal only the directory is still read.
  if (RULE == "") rules(name, usize, method, csize, crc, off, flags)
  return 1
}
BEGIN { init(); GM = "none"; lo = 0; hi = 0; ne = 0; total = 0 }
DONE { exit }
{
  for (i = 1; i <= NF; i++) B[hi++] = $i + 0
  while (entry()) ;
}
END {
  if (FAILED) exit 1
  if (ne < count) fail("unexpected EOF")
  if (RULE != "") fail(RULE)
  print "gomod " GM
  if (CONTENT != "") print "content " CONTENT
}'

MAX_INFO=4194304
MAX_MOD=16777216
MAX_ZIP=524288000

# h1_gomod FILE: the go.sum hash of FILE as a go.mod (golang.org/x/mod/sumdb/dirhash Hash1).
h1_gomod() {
  printf 'h1:%s\n' "$(printf '%s  go.mod\n' "$(sha256sum < "$1" | awk '{ print $1 }')" | openssl dgst -sha256 -binary | base64)"
}

# check_zip PATH MODULE VERSION MODPATH INFOPATH: goproxy checkModuleZip, then the zip's go.mod
# against the .mod.
check_zip() {
  _p=$1; _m=$2; _v=$3; _mod=$4; _info=$5; _z="$X/$1"; _mv="$2@$3"
  _size=$(wc -c < "$_z" | tr -d ' ')
  [ "$_size" -le "$MAX_ZIP" ] || die "$_p: $_mv: module zip file is too large ($_size bytes; limit is $MAX_ZIP bytes)"
  _tl=65577
  [ "$_size" -ge "$_tl" ] || _tl=$_size
  tail -c "$_tl" "$_z" | od -An -tu1 -v | run_awk "$TMP/eocd" "$EOCD_AWK" size="$_size" - || die "$_p: $_mv: $(head -n 1 "$TMP/err")"
  read -r _disk _count _cd _z64 < "$TMP/eocd"
  if [ "$_z64" != -1 ]; then
    tail -c +$((_z64 + 1)) "$_z" | head -c 56 | od -An -tu1 -v | run_awk "$TMP/eocd" "$EOCD64_AWK" size="$_size" - || die "$_p: $_mv: $(head -n 1 "$TMP/err")"
    read -r _disk _count _cd < "$TMP/eocd"
  fi
  [ "$_disk" = 0 ] || die "$_p: $_mv: not a readable zip: multi-disk zip files are not supported: found disk number: $_disk"
  tail -c +$((_cd + 1)) "$_z" | od -An -tu1 -v | run_awk "$TMP/zipres" "$CD_AWK" count="$_count" mv="$_mv" max="$MAX_ZIP" size="$_size" - \
    || die "$_p: $_mv: $(head -n 1 "$TMP/err")"
  _content=$(sed -n 's/^content //p' "$TMP/zipres")
  [ -z "$_content" ] || die "$_p: $_mv: $_content"
  set -- $(sed -n 's/^gomod //p' "$TMP/zipres")
  if [ "$1" = none ]; then
    # No go.mod in the zip: the .mod must be what go synthesizes for it, the module line alone.
    run_awk "$TMP/modres" "$MODFILES_AWK" module="$_m" version="$_v" infof="$X/$_info" "$X/$_info" "$X/$_mod" || die "$_p: $(head -n 1 "$TMP/err")"
    read -r _only _extra < "$TMP/modres"
    [ "$_only" = 1 ] || die "$_p: $_mv: the zip has no go.mod, so the .mod must be the one go synthesizes (\"module $_m\"), but it also declares $_extra"
    return 0
  fi
  _method=$1; _csize=$2; _usize=$3; _off=$5; _trailer=$7
  _shown="\"$_mv/go.mod\""
  _cant="zip entry $_shown: cannot read (declared uncompressed size $_usize): entry $_shown"
  [ $((_off + 30)) -le "$_size" ] || die "$_p: $_mv: $_cant: unexpected EOF"
  _lh=$(tail -c +$((_off + 1)) "$_z" | head -c 30 | od -An -tu1 -v | awk '
    { for (i = 1; i <= NF; i++) b[n++] = $i + 0 }
    END { if (b[0] != 80 || b[1] != 75 || b[2] != 3 || b[3] != 4) { printf "sig %02x%02x%02x%02x\n", b[3], b[2], b[1], b[0]; exit } print b[26] + 256 * b[27] + b[28] + 256 * b[29] }')
  case "$_lh" in
    sig*) die "$_p: $_mv: $_cant: invalid local file header signature: 0x$(printf '%s' "$_lh" | sed 's/^sig 0*//')" ;;
  esac
  _start=$((_off + 30 + _lh))
  [ $((_start + _csize)) -le "$_size" ] || die "$_p: $_mv: $_cant: file data overflows file bounds: $_start + $_csize > $_size"
  rm -f "$TMP/gzfail"
  if [ "$_method" = 0 ]; then
    tail -c +$((_start + 1)) "$_z" | head -c "$_csize" > "$TMP/zipgomod"
  else
    # Raw deflate data in a gzip member whose trailer is the entry's CRC-32 and size from the
    # central directory; gzip checks both (as go does when it extracts; ferry import does not
    # check the CRC). Inflating stops one byte past the declared size.
    { printf '\037\213\010\000\000\000\000\000\000\377'; tail -c +$((_start + 1)) "$_z" | head -c "$_csize"; printf "$_trailer"; } > "$TMP/entry.gz"
    { gzip -dc < "$TMP/entry.gz" 2>/dev/null || echo failed > "$TMP/gzfail"; } | head -c $((_usize + 1)) > "$TMP/zipgomod"
  fi
  _got=$(wc -c < "$TMP/zipgomod" | tr -d ' ')
  [ "$_got" -le "$_usize" ] || die "$_p: $_mv: $_cant: too many bytes in the stream. expected $_usize. got at least $_got"
  [ "$_got" -ge "$_usize" ] || die "$_p: $_mv: $_cant: not enough bytes in the stream. expected $_usize. got only $_got"
  [ ! -f "$TMP/gzfail" ] || die "$_p: $_mv: $_cant: its data does not match the CRC-32 of the central directory"
  cmp -s "$TMP/zipgomod" "$X/$_mod" \
    || die "$_p: $_mv: the zip's go.mod ($(h1_gomod "$TMP/zipgomod")) differs from the .mod ($(h1_gomod "$X/$_mod")); go reads one and builds the other"
}

# Checked when the module tree is written (or the bundle is only verified), as ferry import
# does: a registry-only import leaves the modules alone.
if [ -n "$GOMOD_DIR" ] || [ -z "$REGISTRY" ]; then
  run_awk "$TMP/modplan" "$MODPLAN_AWK" part=m "$TMP/modules" part=f "$TMP/sums" || awk_die
  NMODS=0
  while read -r kind rest; do
    case "$kind" in
      error) die "$rest" ;;
      info)
        set -- $rest
        size=$(wc -c < "$X/$1" | tr -d ' ')
        [ "$size" -le "$MAX_INFO" ] || die "$1: the .info is $size bytes, more than $MAX_INFO" ;;
      mod)
        set -- $rest
        size=$(wc -c < "$X/$1" | tr -d ' ')
        [ "$size" -le "$MAX_MOD" ] || die "$1: the .mod is $size bytes, more than $MAX_MOD"
        run_awk "$TMP/modres" "$MODFILES_AWK" module="$2" version="$3" infof="$X/$5" "$X/$5" "$X/$1" || die "$1: $(head -n 1 "$TMP/err")"
        h=$(h1_gomod "$X/$1")
        [ "$h" = "$4" ] || die "$1: go.mod hash is $h, the signed module list says $4"
        NMODS=$((NMODS + 1)) ;;
      zip)
        set -- $rest
        check_zip "$1" "$2" "$3" "$4" "$5" ;;
    esac
  done < "$TMP/modplan"
  [ "$NMODS" = 0 ] || say "go modules: $NMODS version(s) checked (zip rules, .info, .mod, go.mod)"
fi

# ---- 3. push images --------------------------------------------------------------------------
PUSHED_BLOBS=0
SKIPPED_BLOBS=0
PUSHED_MANIFESTS=0
PUSHED_TAGS=0
HTTP_CODE=000

esc_conf() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

# reg_req METHOD URL OUTFILE [curl args...]: one registry request; on 401 authenticates once
# (Basic, or a Bearer token for $SCOPE) and retries. Sets HTTP_CODE; headers land in $TMP/hdr.
reg_req() {
  _m=$1; _u=$2; _o=$3; shift 3
  _try=0
  while :; do
    if [ "$_m" = HEAD ]; then
      HTTP_CODE=$(curl -K "$TMP/curl.conf" -K "$AUTH_CONF" -I -D "$TMP/hdr" -o /dev/null -w '%{http_code}' "$@" "$_u") || HTTP_CODE=000
    else
      HTTP_CODE=$(curl -K "$TMP/curl.conf" -K "$AUTH_CONF" -X "$_m" -D "$TMP/hdr" -o "$_o" -w '%{http_code}' "$@" "$_u") || HTTP_CODE=000
    fi
    [ "$HTTP_CODE" = 401 ] && [ "$_try" = 0 ] || return 0
    _try=1
    authenticate || return 0
  done
}

# authenticate: reads WWW-Authenticate from the last response and sets AUTH_CONF.
authenticate() {
  _wa=$(grep -i '^www-authenticate:' "$TMP/hdr" | tail -n 1 | tr -d '\r' | sed 's/^[^:]*:[[:space:]]*//')
  case "$_wa" in
    [Bb]asic*)
      [ -n "$USER_NAME" ] || die "$REGISTRY requires credentials (--user and --password-file)"
      AUTH_CONF="$TMP/basic.conf"
      return 0 ;;
    [Bb]earer*)
      _realm=$(printf '%s' "$_wa" | sed -n 's/.*[Rr]ealm="\([^"]*\)".*/\1/p')
      _service=$(printf '%s' "$_wa" | sed -n 's/.*[Ss]ervice="\([^"]*\)".*/\1/p')
      [ -n "$_realm" ] || die "$REGISTRY sent a Bearer challenge without a realm"
      set -- -G
      [ -z "$_service" ] || set -- "$@" --data-urlencode "service=$_service"
      [ -z "$SCOPE" ] || set -- "$@" --data-urlencode "scope=$SCOPE"
      _cred="$TMP/none.conf"
      [ -z "$USER_NAME" ] || _cred="$TMP/basic.conf"
      _tc=$(curl -K "$TMP/curl.conf" -K "$_cred" -o "$TMP/token.json" -w '%{http_code}' "$@" "$_realm") || _tc=000
      [ "$_tc" = 200 ] || die "token request to $_realm failed (HTTP $_tc)"
      _tok=$(tr -d '\r\n' < "$TMP/token.json" | sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
      [ -n "$_tok" ] || _tok=$(tr -d '\r\n' < "$TMP/token.json" | sed -n 's/.*"access_token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
      [ -n "$_tok" ] || die "token response from $_realm has no token"
      printf 'header = "Authorization: Bearer %s"\n' "$(esc_conf "$_tok")" > "$TMP/bearer.conf"
      AUTH_CONF="$TMP/bearer.conf"
      return 0 ;;
    *) return 1 ;;
  esac
}

blob_exists() { # REPO DIGEST: 0 when the registry has it as a blob or a manifest
  reg_req HEAD "$BASE/v2/$1/blobs/$2" /dev/null
  [ "$HTTP_CODE" = 200 ] && return 0
  reg_req HEAD "$BASE/v2/$1/manifests/$2" /dev/null -H "Accept: $ACCEPT"
  [ "$HTTP_CODE" = 200 ]
}

push_blob() { # REPO DIGEST FILE
  reg_req HEAD "$BASE/v2/$1/blobs/$2" /dev/null
  if [ "$HTTP_CODE" = 200 ]; then SKIPPED_BLOBS=$((SKIPPED_BLOBS + 1)); return 0; fi
  reg_req POST "$BASE/v2/$1/blobs/uploads/" /dev/null -H 'Content-Length: 0'
  [ "$HTTP_CODE" = 202 ] || die "starting the upload of $2 to $1 failed (HTTP $HTTP_CODE)"
  _loc=$(grep -i '^location:' "$TMP/hdr" | tail -n 1 | tr -d '\r' | sed 's/^[^:]*:[[:space:]]*//')
  case "$_loc" in
    http://*|https://*) ;;
    /*) _loc="$BASE$_loc" ;;
    *) die "the registry sent no upload location for $2" ;;
  esac
  _q=$(printf '%s' "$2" | sed 's/:/%3A/')
  case "$_loc" in *\?*) _loc="$_loc&digest=$_q" ;; *) _loc="$_loc?digest=$_q" ;; esac
  reg_req PUT "$_loc" /dev/null -H 'Content-Type: application/octet-stream' -T "$3"
  [ "$HTTP_CODE" = 201 ] || die "uploading blob $2 to $1 failed (HTTP $HTTP_CODE)"
  PUSHED_BLOBS=$((PUSHED_BLOBS + 1))
}

push_manifest() { # REPO REF MEDIATYPE FILE
  reg_req PUT "$BASE/v2/$1/manifests/$2" "$TMP/put.out" -H "Content-Type: $3" -T "$4"
  [ "$HTTP_CODE" = 201 ] || die "pushing manifest $1:$2 failed (HTTP $HTTP_CODE): $(head -c 300 "$TMP/put.out" 2>/dev/null)"
}

# refused_for_missing_children: the last manifest PUT was refused because children of the index
# are not in the repository (as ferry import decides: MANIFEST_BLOB_UNKNOWN, BLOB_UNKNOWN or
# MANIFEST_UNKNOWN in the error body, or MANIFEST_INVALID with HTTP 400).
refused_for_missing_children() {
  case "$HTTP_CODE" in 4[0-9][0-9]) ;; *) return 1 ;; esac
  grep -Eqi '"code"[[:space:]]*:[[:space:]]*"(MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN|MANIFEST_UNKNOWN)"' "$TMP/put.out" 2>/dev/null && return 0
  [ "$HTTP_CODE" = 400 ] && grep -Eqi '"code"[[:space:]]*:[[:space:]]*"MANIFEST_INVALID"' "$TMP/put.out" 2>/dev/null
}

# push_filtered REPO DIGEST MEDIATYPE FILTERED: a platform-filtered image's index, upstream first;
# when the registry refuses it for the children left out, the filtered index the bundle carries
# (the bytes ferry import pushes too). Records "REPO DIGEST PUSHED" in $TMP/chosen.
push_filtered() {
  _f="$X/blobs/sha256/$(printf '%s' "$2" | sed 's/^sha256://')"
  reg_req PUT "$BASE/v2/$1/manifests/$2" "$TMP/put.out" -H "Content-Type: $3" -T "$_f"
  if [ "$HTTP_CODE" = 201 ]; then
    echo "$1 $2 $2" >> "$TMP/chosen"
  elif refused_for_missing_children; then
    push_manifest "$1" "$4" "$3" "$X/blobs/sha256/$(printf '%s' "$4" | sed 's/^sha256://')"
    echo "$1 $2 $4" >> "$TMP/chosen"
    FILTERED=$((FILTERED + 1))
  else
    die "pushing manifest $1:$2 failed (HTTP $HTTP_CODE): $(head -c 300 "$TMP/put.out" 2>/dev/null)"
  fi
  PUSHED_MANIFESTS=$((PUSHED_MANIFESTS + 1))
}

ACCEPT='application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.docker.distribution.manifest.v2+json'
FILTERED=0
if [ "$NIMAGES" -gt 0 ] && [ -z "$REGISTRY" ]; then
  say "the bundle carries $NIMAGES image tag(s); pass --registry to push them"
elif [ "$NIMAGES" -gt 0 ]; then
  if [ "$PLAIN" = 1 ]; then BASE="http://$REGISTRY"; else BASE="https://$REGISTRY"; fi
  { echo silent; echo show-error; echo 'connect-timeout = 30'; [ "$INSECURE" = 0 ] || echo insecure; } > "$TMP/curl.conf"
  : > "$TMP/none.conf"
  AUTH_CONF="$TMP/none.conf"
  if [ -n "$USER_NAME" ]; then
    [ -r "$PASS_FILE" ] || die "cannot read the password file $PASS_FILE"
    _pw=$(head -n 1 "$PASS_FILE" | tr -d '\r')
    printf 'user = "%s:%s"\n' "$(esc_conf "$USER_NAME")" "$(esc_conf "$_pw")" > "$TMP/basic.conf"
    _pw=''
  fi
  SCOPE=''
  reg_req GET "$BASE/v2/" /dev/null
  [ "$HTTP_CODE" = 200 ] || die "registry $BASE/v2/ answered HTTP $HTTP_CODE"

  # The plan of every image first (image-plan.txt): tags are pushed only after every blob and
  # manifest of every image. What the bundle does not carry (an earlier bundle did) must
  # already be in the registry; a foreign layer the bundle does not carry is left out, by design.
  : > "$TMP/foreign"
  : > "$TMP/chosen"
  while read -r target kind dg hex mt filt; do
    if [ -f "$X/blobs/sha256/$hex" ]; then have=1; else have=0; fi
    case "$kind" in
      blob) if [ "$have" = 1 ]; then echo "$target blob $dg"; else echo "$target external $dg"; fi ;;
      foreign)
        if [ "$have" = 1 ]; then echo "$target blob $dg"; else echo "$dg" >> "$TMP/foreign"; echo "$target external $dg"; fi ;;
      manifest) if [ "$have" = 1 ]; then echo "$target manifest $dg $mt"; else echo "$target external $dg"; fi ;;
      root)
        if [ "$filt" != - ]; then echo "$target filtered $dg $mt $filt"
        elif [ "$have" = 1 ]; then echo "$target manifest $dg $mt"
        else echo "$target external $dg"; fi ;;
    esac
  done < "$TMP/planned" > "$TMP/plan"
  awk '!seen[$0]++' "$TMP/plan" > "$TMP/plan.u"
  : > "$TMP/tags"
  while read -r target tag dg mt filt plats ref; do
    echo "$target $tag $dg $mt $filt $ref" >> "$TMP/tags"
  done < "$TMP/images"

  # Content a manifest references but the bundle does not carry must already be in the registry.
  nmiss=0
  while read -r repo kind dg rest; do
    [ "$kind" = external ] || continue
    if grep -qx "$dg" "$TMP/foreign"; then
      say "$repo: foreign layer $dg not carried (non-distributable; clients fetch it from its urls)"
      continue
    fi
    SCOPE="repository:$repo:pull,push"
    if ! blob_exists "$repo" "$dg"; then
      warn "$repo: $dg is referenced but neither in the bundle nor in the registry"
      nmiss=$((nmiss + 1))
    fi
  done < "$TMP/plan.u"
  if [ "$nmiss" != 0 ]; then
    die "$nmiss referenced digest(s) missing (import the earlier bundles of the chain first); nothing was tagged"
  fi

  while read -r repo kind dg mt filt; do
    SCOPE="repository:$repo:pull,push"
    hex=$(printf '%s' "$dg" | sed 's/^sha256://')
    case "$kind" in
      blob) push_blob "$repo" "$dg" "$X/blobs/sha256/$hex" ;;
      manifest)
        push_manifest "$repo" "$dg" "$mt" "$X/blobs/sha256/$hex"
        PUSHED_MANIFESTS=$((PUSHED_MANIFESTS + 1)) ;;
      filtered) push_filtered "$repo" "$dg" "$mt" "$filt" ;;
      external) ;;
    esac
  done < "$TMP/plan.u"

  while read -r repo tag dg mt filt ref; do
    SCOPE="repository:$repo:pull,push"
    note="from $ref"
    if [ "$filt" != - ]; then
      pushed=$(awk -v r="$repo" -v d="$dg" '$1 == r && $2 == d { print $3; exit }' "$TMP/chosen")
      if [ "$pushed" = "$filt" ]; then
        note="from $ref; the registry refused the index with platforms left out, so it holds the filtered index (io.ferry.filtered-from $dg)"
        dg=$filt
      fi
    fi
    hex=$(printf '%s' "$dg" | sed 's/^sha256://')
    mf="$X/blobs/sha256/$hex"
    if [ ! -f "$mf" ]; then
      # A tag moved to a manifest an earlier bundle carried: fetch its exact bytes to re-tag it.
      reg_req GET "$BASE/v2/$repo/manifests/$dg" "$TMP/retag.json" -H "Accept: $mt"
      [ "$HTTP_CODE" = 200 ] || die "cannot fetch $repo@$dg to tag it (HTTP $HTTP_CODE)"
      [ "$(sha256sum < "$TMP/retag.json" | awk '{print $1}')" = "$hex" ] || die "$repo@$dg: registry returned other bytes"
      mf="$TMP/retag.json"
    fi
    push_manifest "$repo" "$tag" "$mt" "$mf"
    PUSHED_TAGS=$((PUSHED_TAGS + 1))
    say "tagged $REGISTRY/$repo:$tag = $dg ($note)"
  done < "$TMP/tags"
  say "images: $PUSHED_BLOBS blob(s) uploaded, $SKIPPED_BLOBS already present, $PUSHED_MANIFESTS manifest(s), $PUSHED_TAGS tag(s), $FILTERED filtered index(es)"
fi

# ---- 4. merge the Go module tree ---------------------------------------------------------------
if [ -d "$X/gomod" ]; then
  (cd "$X/gomod" && find . -type f) | sed 's|^\./||' | LC_ALL=C sort > "$TMP/gofiles"
  NGO=$(wc -l < "$TMP/gofiles" | tr -d ' ')
  if [ -z "$GOMOD_DIR" ]; then
    say "the bundle carries $NGO Go module file(s); pass --gomod-dir to install them"
  else
    if printf 'v1\n' | sort -V >/dev/null 2>&1; then VSORT='sort -V'; else VSORT='sort'; fi
    mkdir -p "$GOMOD_DIR" || die "cannot create $GOMOD_DIR"
    added=0
    kept=0
    while IFS= read -r f; do
      src="$X/gomod/$f"
      dst="$GOMOD_DIR/$f"
      mkdir -p "$(dirname "$dst")" || die "cannot create the directory of $dst"
      case "$f" in
        */@v/list)
          # The union of the versions already served and the new ones.
          { [ ! -f "$dst" ] || cat "$dst"; cat "$src"; } | grep -v '^[[:space:]]*$' | LC_ALL=C sort -u | $VSORT > "$dst.ferry-tmp" \
            && mv -f "$dst.ferry-tmp" "$dst" || die "cannot write $dst"
          ;;
        sumdb/*)
          cp "$src" "$dst.ferry-tmp" && mv -f "$dst.ferry-tmp" "$dst" || die "cannot write $dst"
          added=$((added + 1))
          ;;
        *)
          if [ -f "$dst" ]; then
            # Module files are immutable: checksums are over their exact bytes, so never rewrite them.
            cmp -s "$src" "$dst" || warn "$dst exists with other content; kept the existing file"
            kept=$((kept + 1))
          else
            cp "$src" "$dst.ferry-tmp" && mv -f "$dst.ferry-tmp" "$dst" || die "cannot write $dst"
            added=$((added + 1))
          fi
          ;;
      esac
    done < "$TMP/gofiles"
    say "go modules: $added file(s) installed, $kept already present, lists merged in $GOMOD_DIR"
  fi
fi
say "done: bundle $BUNDLE_ID imported"
exit 0
`;
