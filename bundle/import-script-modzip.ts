/**
 * import.sh: module zips read as ferry import reads them (end of central directory, zip64, the
 * central directory and golang.org/x/mod/zip rules, the zip's go.mod against the .mod), then the
 * pass that runs every module check.
 * A part of import.sh (import-script.ts assembles it): no "${" and no backquote, so
 * String.raw keeps every byte as written.
 */

/** EOCD_AWK, EOCD64_AWK, CD_AWK, h1_gomod, check_zip and the module check pass. */
export const SH_MODZIP: string = String.raw`# The end of central directory record of a zip (the last 64 KiB + 42 bytes), as ferry import
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

`;
