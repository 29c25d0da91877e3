/**
 * import.sh, sections 2a and 2a': the signed image list checked as ferry import checks it, the
 * filtered indexes, and the image plan (each image's closure as Ferry's image graph gives it).
 * A part of import.sh (import-script.ts assembles it): no "${" and no backquote, so
 * String.raw keeps every byte as written.
 */

/** Reads and checks images[] and image-plan.txt into $TMP/images and $TMP/planned. */
export const SH_IMAGES: string = String.raw`# ---- 2a. the signed image list ---------------------------------------------------------------
# images[] in ferry-bundle.json (not index.json, which is only the OCI layout) says what goes
# where: one object per line, keys in a fixed order, checked as ferry import checks them.
# $TMP/images: TARGET TAG DIGEST MEDIATYPE FILTERED|- PLATFORMS|- REFERENCE
run_awk "$TMP/images" '
function bad(what) { fail("ferry-bundle.json: images[" k "]" what) }
function digest(d) { return d ~ /^sha256:[0-9a-f]+$/ && length(d) == 71 }
BEGIN { init() }
/^  "images": \[\],?$/ { found = 1; exit }
/^  "images": \[$/ { found = 1; f = 1; next }
f && /^  \]/ { f = 0; exit }
f {
  s = $0; k = n++
  if (!lit("    {\"reference\":") || !jstr("json")) bad(" is not in the canonical layout")
  ref = V
  if (!lit(",\"target\":") || !jstr("json")) bad(" is not in the canonical layout")
  target = V
  if (!lit(",\"tag\":") || !jstr("json")) bad(" is not in the canonical layout")
  tag = V
  if (!lit(",\"digest\":") || !jstr("json")) bad(" is not in the canonical layout")
  dg = V
  if (!lit(",\"mediaType\":") || !jstr("json")) bad(" is not in the canonical layout")
  mt = V
  if (!lit(",\"platforms\":")) bad(" is not in the canonical layout")
  plats = ""
  if (!lit("null")) {
    if (!lit("[")) bad(" is not in the canonical layout")
    while (1) {
      if (!jstr("json")) bad(" is not in the canonical layout")
      if (V !~ /^[a-z0-9._-]+\/[a-z0-9._-]+(\/[a-z0-9._-]+)?$/) bad(".platforms: " jq(V) " must be os/arch[/variant]")
      plats = plats (plats == "" ? "" : ",") V
      if (lit("]")) break
      if (!lit(",")) bad(" is not in the canonical layout")
    }
  }
  filt = "-"
  if (lit(",\"filtered\":")) { if (!jstr("json")) bad(" is not in the canonical layout"); filt = V }
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
  # Only the filtered images, each with its line number (a shell read loop over every image would
  # cost a system call per byte).
  awk '$5 != "-" { print NR, $0 }' "$TMP/images" > "$TMP/filtered"
  while read -r i target tag dg mt filt plats ref; do
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
  done < "$TMP/filtered"
fi

# ---- 2a'. the image plan ----------------------------------------------------------------------
# ferry export writes each image's closure as Ferry's image graph gives it into image-plan.txt
# (ferry verify and ferry import check it is the graph's own): the blobs and manifests to push,
# children before parents, each image's root (with its filtered index), its attachments' digest
# tags and referrers, and its tag. import.sh follows it rather than walking manifests itself, so
# both importers push the same content.
# $TMP/planned: TARGET KIND DIGEST HEX MEDIATYPE|- FILTERED|- (KIND: blob, foreign, manifest, root)
#   and TARGET digest-tag DIGEST HEX MEDIATYPE TAG, TARGET referrer DIGEST HEX SUBJECT DESCRIPTOR
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
  } else if (kind == "digest-tag") {
    if (NF != 5 || $3 !~ /^sha256-[0-9a-f]+\.(sig|att|sbom)$/ || length($3) != 75 || !digest($4) || $5 !~ /^application\/vnd\.(oci\.image\.(index|manifest)\.v1|docker\.distribution\.manifest\.(list\.)?v2)\+json$/) bad("is not \"IMAGE digest-tag sha256-<hex>.sig|.att|.sbom DIGEST MEDIATYPE\"")
    if (!(k in rooted)) bad("an attachment of images[" k "] before its root")
    print target[k], kind, $4, substr($4, 8), $5, $3
  } else if (kind == "referrer") {
    d = $0
    for (i = 1; i <= 4; i++) sub(/^[^ ]+ /, "", d)
    if (NF < 5 || !digest($3) || !digest($4) || substr(d, 1, 1) != "{" || substr(d, length(d)) != "}" || index(d, "\"digest\":\"" $4 "\"") == 0) bad("is not \"IMAGE referrer SUBJECT DIGEST DESCRIPTOR\"")
    if (!(k in rooted)) bad("an attachment of images[" k "] before its root")
    print target[k], kind, $4, substr($4, 8), $3, d
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

`;
