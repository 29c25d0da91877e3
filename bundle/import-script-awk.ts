/**
 * import.sh: the awk library its checks share (golang.org/x/mod module path and semver rules,
 * JSON quoting, UTF-8) and run_awk, which runs a program with it byte-wise.
 * A part of import.sh (import-script.ts assembles it): no "${" and no backquote, so
 * String.raw keeps every byte as written.
 */

/** AWKLIB, run_awk and awk_die. */
export const SH_AWKLIB: string = String.raw`# The awk below runs byte-wise (LC_ALL=C); each program writes its refusal to $TMP/err and
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
# lit T: takes the literal T off the front of s (the rest of the line being read); 0 when s
# does not start with it. jstr RULE: takes a JSON string off the front of s into V (its
# escapes kept as written); 0 when s does not start with one. RULE says which bytes a string
# may not hold: "json" control characters, "text" control characters and DEL, "plain"
# backslashes, control characters and spaces.
function lit(t) { if (substr(s, 1, length(t)) != t) return 0; s = substr(s, length(t) + 1); return 1 }
function jstr(rule,   i, n, c, o) {
  if (substr(s, 1, 1) != "\"") return 0
  n = length(s)
  for (i = 2; i <= n; i++) {
    c = substr(s, i, 1); o = ORD[c]
    if (c == "\\") { if (rule == "plain") return 0; i++; continue }
    if (o < 32 || (o == 127 && rule == "text") || (o == 32 && rule == "plain")) return 0
    if (c == "\"") { V = substr(s, 2, i - 2); s = substr(s, i + 1); return 1 }
  }
  return 0
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

`;
