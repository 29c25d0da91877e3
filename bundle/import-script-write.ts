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
  # A registry with the referrers API answers the PUT of a manifest with a subject with OCI-Subject.
  _subj=$(awk 'tolower($0) ~ /^oci-subject:/ { v = $0; sub(/^[^:]*:[[:space:]]*/, "", v); sub(/\r$/, "", v) } END { printf "%s", v }' "$TMP/hdr")
  [ -z "$_subj" ] || echo "$1 $_subj" >> "$TMP/indexed"
}

# tag_manifest REPO TAG DIGEST MEDIATYPE: puts the manifest's exact bytes under TAG: the bundle's,
# or (a manifest an earlier bundle carried) the registry's, fetched and checked against DIGEST.
tag_manifest() {
  _h=$(printf '%s' "$3" | sed 's/^sha256://')
  _mf="$X/blobs/sha256/$_h"
  if [ ! -f "$_mf" ]; then
    reg_req GET "$BASE/v2/$1/manifests/$3" "$TMP/retag.json" -H "Accept: $4"
    [ "$HTTP_CODE" = 200 ] || die "cannot fetch $1@$3 to tag it $2 (HTTP $HTTP_CODE)"
    [ "$(sha256sum < "$TMP/retag.json" | awk '{print $1}')" = "$_h" ] || die "$1@$3: registry returned other bytes"
    _mf="$TMP/retag.json"
  fi
  push_manifest "$1" "$2" "$4" "$_mf"
}

# The compact referrers index Ferry writes under a fallback tag, up to its first entry.
REFIDX_HEAD='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['

# push_attachments: what ferry import records once the attachment manifests are in, before any
# tag moves: each cosign digest tag (sha256-<hex>.sig|.att|.sbom) pushed as a tag; for OCI
# referrers, nothing where the registry indexes them itself (it answered a PUT with OCI-Subject,
# or answers GET /v2/<name>/referrers/<digest>), else the fallback tag sha256-<hex>: an index of
# the referrers, merged with what the registry already lists there (others' entries kept as they
# are, ours appended). An existing fallback index that is not in the compact form Ferry writes is
# not rewritten in sh: import.sh refuses (ferry import merges any) rather than drop its entries.
push_attachments() {
  while read -r repo kind dg hex mt rest; do
    [ "$kind" = digest-tag ] || continue
    SCOPE="repository:$repo:pull,push"
    reg_req HEAD "$BASE/v2/$repo/manifests/$rest" /dev/null -H "Accept: $ACCEPT"
    if [ "$HTTP_CODE" = 200 ]; then
      _at=$(grep -i '^docker-content-digest:' "$TMP/hdr" | tail -n 1 | tr -d '\r' | sed 's/^[^:]*:[[:space:]]*//')
      [ "$_at" != "$dg" ] || continue
    fi
    tag_manifest "$repo" "$rest" "$dg" "$mt"
    DIGEST_TAGS=$((DIGEST_TAGS + 1))
    say "tagged $REGISTRY/$repo:$rest = $dg (attachment)"
  done < "$TMP/attach"
  awk '$2 == "referrer" { print $1, $5 }' "$TMP/attach" | LC_ALL=C sort -u > "$TMP/subjects"
  while read -r repo subject; do
    SCOPE="repository:$repo:pull,push"
    if grep -qx "$repo $subject" "$TMP/indexed"; then REFERRERS_API=1; continue; fi
    reg_req GET "$BASE/v2/$repo/referrers/$subject" "$TMP/refs.json" -H 'Accept: application/vnd.oci.image.index.v1+json'
    if [ "$HTTP_CODE" = 200 ] && grep -qi '^content-type:[[:space:]]*application/vnd\.oci\.image\.index\.v1+json' "$TMP/hdr"; then REFERRERS_API=1; continue; fi
    _ft="sha256-$(printf '%s' "$subject" | sed 's/^sha256://')"
    reg_req GET "$BASE/v2/$repo/manifests/$_ft" "$TMP/fb.json" -H 'Accept: application/vnd.oci.image.index.v1+json'
    case "$HTTP_CODE" in
      200) digests_of "$TMP/fb.json" > "$TMP/listed" ;;
      404) : > "$TMP/fb.json"; : > "$TMP/listed" ;;
      *) die "reading the fallback tag $repo:$_ft failed (HTTP $HTTP_CODE)" ;;
    esac
    awk -v r="$repo" -v s="$subject" '$1 == r && $2 == "referrer" && $5 == s { print $3 }' "$TMP/attach" | LC_ALL=C sort -u > "$TMP/ours"
    LC_ALL=C comm -23 "$TMP/ours" "$TMP/listed" > "$TMP/add"
    [ -s "$TMP/add" ] || continue
    # Our entries, in digest order (as ferry import writes them), joined by commas.
    LC_ALL=C sort -k3,3 "$TMP/attach" | awk -v r="$repo" -v s="$subject" 'FNR == NR { want[$1] = 1; next }
      $1 == r && $2 == "referrer" && $5 == s && ($3 in want) && !done[$3]++ {
        d = $0; for (i = 1; i <= 5; i++) sub(/^[^ ]+ /, "", d); out = out (n++ ? "," : "") d
      }
      END { printf "%s", out }' "$TMP/add" - > "$TMP/entries"
    if [ -s "$TMP/fb.json" ]; then
      # Splice into the registry's index only when it is the compact form: REFIDX_HEAD, then
      # objects separated by commas (strings and nesting scanned), then the closing "]}".
      if ! awk -v P="$REFIDX_HEAD" 'FNR == NR { if (FNR > 1) multi = 1; b = $0; next }
        { add = $0 }
        END {
          if (multi || substr(b, 1, length(P)) != P || substr(b, length(b) - 1) != "]}") exit 2
          x = substr(b, length(P) + 1, length(b) - length(P) - 2)
          depth = 0; ins = 0; expect = 1; n = length(x)
          for (i = 1; i <= n; i++) {
            c = substr(x, i, 1)
            if (ins) { if (c == "\\") i++; else if (c == "\"") ins = 0; continue }
            if (depth == 0) {
              if (expect) { if (c != "{") exit 2; expect = 0 }
              else if (c == ",") { expect = 1; continue }
              else exit 2
            }
            if (c == "\"") ins = 1
            else if (c == "{" || c == "[") depth++
            else if (c == "}" || c == "]") { depth--; if (depth < 0) exit 2 }
          }
          if (ins || depth != 0 || (expect && x != "")) exit 2
          printf "%s%s%s%s]}", P, x, (x == "" ? "" : ","), add
        }' "$TMP/fb.json" "$TMP/entries" > "$TMP/fb.new"; then
        die "$repo:$_ft (the referrers fallback tag of $subject) holds an index import.sh cannot merge without a JSON parser (not the compact form Ferry writes); refusing to overwrite it and drop its entries, nothing was tagged: import this bundle with ferry import, which merges it"
      fi
    else
      { printf '%s' "$REFIDX_HEAD"; cat "$TMP/entries"; printf ']}'; } > "$TMP/fb.new"
    fi
    push_manifest "$repo" "$_ft" application/vnd.oci.image.index.v1+json "$TMP/fb.new"
    FALLBACK_INDEXES=$((FALLBACK_INDEXES + 1))
    say "$REGISTRY/$repo:$_ft lists $(wc -l < "$TMP/add" | tr -d ' ') more referrer(s) of $subject (the registry has no referrers API)"
  done < "$TMP/subjects"
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
  : > "$TMP/attach"
  : > "$TMP/indexed"
  # One awk over the plan (a shell read loop costs a system call per byte): each step is a blob
  # or manifest the bundle carries, or one it does not (external).
  # $TMP/plan: TARGET blob|external DIGEST HEX, TARGET manifest DIGEST HEX MEDIATYPE, or
  #   TARGET filtered DIGEST HEX MEDIATYPE FILTERED
  (cd "$X/blobs/sha256" 2>/dev/null && ls) > "$TMP/carried"
  awk -v foreignf="$TMP/foreign" -v attachf="$TMP/attach" '
    FILENAME == ARGV[1] { have[$1] = 1; next }
    {
      target = $1; kind = $2; dg = $3; h = ($4 in have); mt = $5; filt = $6
      if (kind == "blob") { if (h) print target, "blob", dg, $4; else print target, "external", dg, $4 }
      else if (kind == "foreign") { if (h) print target, "blob", dg, $4; else { print dg > foreignf; print target, "external", dg, $4 } }
      else if (kind == "manifest") { if (h) print target, "manifest", dg, $4, mt; else print target, "external", dg, $4 }
      else if (kind == "digest-tag" || kind == "referrer") print > attachf
      else if (kind == "root") {
        if (filt != "-") print target, "filtered", dg, $4, mt, filt
        else if (h) print target, "manifest", dg, $4, mt
        else print target, "external", dg, $4
      }
    }' "$TMP/carried" "$TMP/planned" > "$TMP/plan"
  awk '!seen[$0]++' "$TMP/plan" > "$TMP/plan.u"
  # $TMP/tags: TARGET TAG DIGEST MEDIATYPE FILTERED|- REFERENCE
  awk '{ ref = $0; for (i = 1; i <= 6; i++) sub(/^[^ ]+ /, "", ref); print $1, $2, $3, $4, $5, ref }' "$TMP/images" > "$TMP/tags"

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

  while read -r repo kind dg hex mt filt; do
    SCOPE="repository:$repo:pull,push"
    case "$kind" in
      blob) push_blob "$repo" "$dg" "$X/blobs/sha256/$hex" ;;
      manifest)
        push_manifest "$repo" "$dg" "$mt" "$X/blobs/sha256/$hex"
        PUSHED_MANIFESTS=$((PUSHED_MANIFESTS + 1)) ;;
      filtered) push_filtered "$repo" "$dg" "$mt" "$filt" ;;
      external) ;;
    esac
  done < "$TMP/plan.u"

  # Attachments after their subjects, before any tag moves.
  DIGEST_TAGS=0
  FALLBACK_INDEXES=0
  REFERRERS_API=0
  push_attachments

  # Tags last, in batches: one curl sends every PUT of a batch, in parallel where curl has
  # --parallel (7.66 and later), else one after another over one connection. A tag is a PUT of
  # its manifest's exact bytes under the tag (the distribution API has no other way to set one):
  # the bundle's bytes or, for a manifest an earlier bundle carried, the registry's, fetched once
  # per digest and checked against it.
  # (The first file of each awk below may be empty: FILENAME, not FNR == NR, tells them apart.)
  # $TMP/tagjobs: N REPO TAG DIGEST MEDIATYPE NOTE, DIGEST the one the registry holds for the root.
  awk 'FILENAME == ARGV[1] { if (!(($1 " " $2) in chosen)) chosen[$1 " " $2] = $3; next }
    {
      repo = $1; tag = $2; dg = $3; mt = $4; filt = $5
      ref = $0; for (i = 1; i <= 5; i++) sub(/^[^ ]+ /, "", ref)
      note = "from " ref
      if (filt != "-" && chosen[repo " " dg] == filt) {
        note = note "; the registry refused the index with platforms left out, so it holds the filtered index (io.ferry.filtered-from " dg ")"
        dg = filt
      }
      print ++n, repo, tag, dg, mt, note
    }' "$TMP/chosen" "$TMP/tags" > "$TMP/tagjobs"
  awk '!seen[$2 " " $4]++ { print $2, $4, $5, $3 }' "$TMP/tagjobs" > "$TMP/tagdigests"
  : > "$TMP/fetched"
  k=0
  while read -r repo dg mt tag; do
    hex=$(printf '%s' "$dg" | sed 's/^sha256://')
    [ ! -f "$X/blobs/sha256/$hex" ] || continue
    SCOPE="repository:$repo:pull,push"
    k=$((k + 1))
    reg_req GET "$BASE/v2/$repo/manifests/$dg" "$TMP/retag.$k" -H "Accept: $mt"
    [ "$HTTP_CODE" = 200 ] || die "cannot fetch $repo@$dg to tag it $tag (HTTP $HTTP_CODE)"
    [ "$(sha256sum < "$TMP/retag.$k" | awk '{print $1}')" = "$hex" ] || die "$repo@$dg: registry returned other bytes"
    echo "$repo $dg $k" >> "$TMP/fetched"
  done < "$TMP/tagdigests"
  if curl --parallel --parallel-max 8 --no-progress-meter --version >/dev/null 2>&1; then PAR='--parallel --parallel-max 8 --no-progress-meter'; else PAR=''; fi
  awk '!seen[$2]++ { print $2, $4 }' "$TMP/tagjobs" > "$TMP/tagrepos"
  while read -r repo first; do
    SCOPE="repository:$repo:pull,push"
    # One request as this repository first, so the batches carry credentials for it.
    reg_req HEAD "$BASE/v2/$repo/manifests/$first" /dev/null -H "Accept: $ACCEPT"
    awk -v r="$repo" '$2 == r' "$TMP/tagjobs" > "$TMP/repojobs"
    total=$(wc -l < "$TMP/repojobs" | tr -d ' ')
    start=1
    while [ "$start" -le "$total" ]; do
      sed -n "$start,$((start + 499))p" "$TMP/repojobs" > "$TMP/batch"
      start=$((start + 500))
      rm -rf "$TMP/tb" && mkdir "$TMP/tb" || die "cannot create $TMP/tb"
      # One block per PUT (curl.conf and the credentials repeated: options end at "next").
      awk -v base="$BASE" -v tmp="$TMP" -v x="$X" -v conf="$TMP/curl.conf" -v auth="$AUTH_CONF" '
        function q(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
        BEGIN { while ((getline l < conf) > 0) common = common l "\n"; while ((getline l < auth) > 0) common = common l "\n" }
        FILENAME == ARGV[1] { fetched[$1 " " $2] = $3; next }
        {
          f = (($2 " " $4) in fetched) ? tmp "/retag." fetched[$2 " " $4] : x "/blobs/sha256/" substr($4, 8)
          if (c++) print "next"
          printf "%s", common
          print "url = " q(base "/v2/" $2 "/manifests/" $3)
          print "upload-file = " q(f)
          print "header = " q("Content-Type: " $5)
          print "output = " q(tmp "/tb/" $1)
          print "write-out = \"%{http_code} " $1 "\\n\""
        }' "$TMP/fetched" "$TMP/batch" > "$TMP/tb.conf"
      curl $PAR -K "$TMP/tb.conf" > "$TMP/tb.codes" 2> "$TMP/tb.err" || :
      # Tagged, to say; refused for credentials (a token that expired), to send again one by
      # one (reg_req authenticates again); anything else stops the import.
      awk -v prog="$PROG" -v reg="$REGISTRY" -v said="$TMP/tb.said" -v retry="$TMP/tb.retry" -v failed="$TMP/tb.fail" '
        BEGIN { printf "" > said; printf "" > retry; printf "" > failed }
        FILENAME == ARGV[1] { code[$2] = $1; next }
        {
          c = ($1 in code) ? code[$1] : "000"
          if (c == "201") {
            note = $0; for (i = 1; i <= 5; i++) sub(/^[^ ]+ /, "", note)
            printf "%s: tagged %s/%s:%s = %s (%s)\n", prog, reg, $2, $3, $4, note > said
          } else if (c == "401") print > retry
          else if (!bad++) print $2, $3, c, $1 > failed
        }' "$TMP/tb.codes" "$TMP/batch"
      cat "$TMP/tb.said"
      PUSHED_TAGS=$((PUSHED_TAGS + $(wc -l < "$TMP/tb.said" | tr -d ' ')))
      if [ -s "$TMP/tb.fail" ]; then
        read -r _r _t _c _n < "$TMP/tb.fail"
        if [ "$_c" = 000 ]; then die "pushing manifest $_r:$_t failed: $(head -n 1 "$TMP/tb.err")"; fi
        die "pushing manifest $_r:$_t failed (HTTP $_c): $(head -c 300 "$TMP/tb/$_n" 2>/dev/null)"
      fi
      while read -r _n _r _t dg mt note; do
        tag_manifest "$_r" "$_t" "$dg" "$mt"
        PUSHED_TAGS=$((PUSHED_TAGS + 1))
        say "tagged $REGISTRY/$_r:$_t = $dg ($note)"
      done < "$TMP/tb.retry"
    done
  done < "$TMP/tagrepos"
  say "images: $PUSHED_BLOBS blob(s) uploaded, $SKIPPED_BLOBS already present, $PUSHED_MANIFESTS manifest(s), $PUSHED_TAGS tag(s), $FILTERED filtered index(es)"
  if [ -s "$TMP/attach" ]; then
    if [ "$REFERRERS_API" = 1 ]; then _via='the registry indexes referrers itself'; else _via="$FALLBACK_INDEXES fallback tag index(es) written"; fi
    say "attachments: $DIGEST_TAGS digest tag(s) pushed; $_via"
    if [ "$FILTERED" != 0 ]; then say "signatures over an index the registry took only filtered verify only against the upstream index; the per-platform manifests keep their digests and their signatures"; fi
  fi
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
