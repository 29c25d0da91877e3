/**
 * The text of import.sh, the POSIX sh importer shipped inside every bundle and beside it.
 * This string is the source of truth (the build compiles only .ts). It contains no "${" and
 * no backquote, so String.raw keeps every byte as written; test/bundle checks it with sh -n
 * and runs it against a real registry.
 */

/** The import script text (POSIX sh; needs tar, sha256sum, openssl, base64 and curl). */
export const IMPORT_SCRIPT: string = String.raw`#!/bin/sh
# Ferry bundle importer. Verifies a signed Ferry bundle completely (parts, signature, every
# file's sha256) before it changes anything, then pushes the bundle's images into a registry
# (blobs, then manifests children first, then tags last) and merges its Go module tree into a
# GOPROXY directory. Needs only a POSIX sh, tar, sha256sum, openssl, base64 and curl (plus the
# usual sed, awk, grep, sort, find, comm, cmp).
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
for tool in tar sha256sum openssl base64 sed awk grep sort find comm cmp; do
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

# walk DIGEST [MEDIATYPE]: prints the push plan for one manifest tree, children before parents:
# "blob D", "manifest D MT" (carried) or "external D" (not carried: must already be in the registry).
walk() (
  _d=$1
  _hex=$(printf '%s' "$_d" | sed 's/^sha256://')
  _f="$X/blobs/sha256/$_hex"
  if [ ! -f "$_f" ]; then echo "external $_d"; exit 0; fi
  _mt=$(awk -v h="$_hex" '$1 == h { print $2; exit }' "$TMP/manifests")
  [ -n "$_mt" ] || _mt=$2
  if [ -z "$_mt" ]; then echo "blob $_d"; exit 0; fi
  # Descriptors are the only objects with a "digest" member; annotations never match this.
  for _c in $(grep -o '"digest"[[:space:]]*:[[:space:]]*"sha256:[0-9a-f]\{64\}"' "$_f" | sed 's/.*"\(sha256:[0-9a-f]*\)"$/\1/'); do
    walk "$_c" || exit 1
  done
  echo "manifest $_d $_mt"
)

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

ACCEPT='application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.docker.distribution.manifest.v2+json'
NIMAGES=0
if [ -f "$X/index.json" ]; then
  sed -n '/^    {"mediaType":/p' "$X/index.json" > "$TMP/index.lines"
  NIMAGES=$(wc -l < "$TMP/index.lines" | tr -d ' ')
fi

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

  # Plan every image first: tags are pushed only after every blob and manifest of every image.
  : > "$TMP/plan"
  : > "$TMP/tags"
  while IFS= read -r line; do
    mt=$(printf '%s\n' "$line" | sed -n 's/^    {"mediaType":"\([^"]*\)".*/\1/p')
    dg=$(printf '%s\n' "$line" | sed -n 's/.*"digest":"\(sha256:[0-9a-f]\{64\}\)".*/\1/p')
    ref=$(printf '%s\n' "$line" | sed -n 's/.*"org\.opencontainers\.image\.ref\.name":"\([^"]*\)".*/\1/p')
    target=$(printf '%s\n' "$line" | sed -n 's/.*"io\.ferry\.target":"\([^"]*\)".*/\1/p')
    tag=$(printf '%s' "$ref" | sed 's/.*://')
    [ -n "$mt" ] && [ -n "$dg" ] && [ -n "$target" ] && [ -n "$tag" ] || die "index.json: unreadable entry: $line"
    printf '%s' "$target" | grep -q '^[a-z0-9][a-z0-9._/-]*$' || die "index.json: bad target repository $target"
    printf '%s' "$tag" | grep -q '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' || die "index.json: bad tag in $ref"
    walk "$dg" "$mt" > "$TMP/walk" || die "cannot plan $ref"
    sed "s|^|$target |" "$TMP/walk" >> "$TMP/plan"
    echo "$target $tag $dg $mt $ref" >> "$TMP/tags"
  done < "$TMP/index.lines"
  awk '!seen[$0]++' "$TMP/plan" > "$TMP/plan.u"

  # Foreign (non-distributable) layers that manifests name by urls travel in no bundle, by design.
  : > "$TMP/foreign"
  while read -r hex _mt; do
    tr -d '\n\r\t ' < "$X/blobs/sha256/$hex" | tr '{}' '\n\n' \
      | grep -E '"mediaType":"application/vnd\.(docker\.image\.rootfs\.foreign\.diff\.tar\.gzip|oci\.image\.layer\.nondistributable\.v1\.tar[+a-z]*)"' \
      | grep '"urls":\[' | grep -o 'sha256:[0-9a-f]\{64\}' >> "$TMP/foreign" || :
  done < "$TMP/manifests"

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
  [ "$nmiss" = 0 ] || die "$nmiss referenced digest(s) missing (import the earlier bundles of the chain first); nothing was tagged"

  while read -r repo kind dg mt; do
    SCOPE="repository:$repo:pull,push"
    hex=$(printf '%s' "$dg" | sed 's/^sha256://')
    case "$kind" in
      blob) push_blob "$repo" "$dg" "$X/blobs/sha256/$hex" ;;
      manifest)
        push_manifest "$repo" "$dg" "$mt" "$X/blobs/sha256/$hex"
        PUSHED_MANIFESTS=$((PUSHED_MANIFESTS + 1)) ;;
      external) ;;
    esac
  done < "$TMP/plan.u"

  while read -r repo tag dg mt ref; do
    SCOPE="repository:$repo:pull,push"
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
    say "tagged $REGISTRY/$repo:$tag = $dg (from $ref)"
  done < "$TMP/tags"
  say "images: $PUSHED_BLOBS blob(s) uploaded, $SKIPPED_BLOBS already present, $PUSHED_MANIFESTS manifest(s), $PUSHED_TAGS tag(s)"
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
