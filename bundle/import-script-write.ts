/**
 * import.sh, sections 3 and 4: what it changes, after everything is verified: images pushed into
 * the registry (blobs, manifests children first, tags last) and the module tree merged into
 * --gomod-dir.
 * A part of import.sh (import-script.ts assembles it): no "${" and no backquote, so
 * String.raw keeps every byte as written.
 */

/** Registry requests and authentication, then the push in plan order. */
export const SH_PUSH: string = String.raw`# ---- 3. push images --------------------------------------------------------------------------
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

`;

/** Merges the bundle's Go module tree (and its lists) into --gomod-dir. */
export const SH_GOMOD: string = String.raw`# ---- 4. merge the Go module tree ---------------------------------------------------------------
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
