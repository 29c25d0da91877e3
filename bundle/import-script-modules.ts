/**
 * import.sh, section 2b: the signed module list, the order ferry import checks module files in,
 * and a version's .info and .mod (with the go.mod reader for its module directive).
 * A part of import.sh (import-script.ts assembles it): no "${" and no backquote, so
 * String.raw keeps every byte as written.
 */

/** Reads modules[] into $TMP/modules; MODPLAN_AWK orders the module file checks, MODFILES_AWK checks a .info and .mod. */
export const SH_MODULES: string = String.raw`# ---- 2b. the Go module files, checked as ferry import checks them ------------------------------
# modules[]: one {"path","version","h1","goModH1","time"} object per line.
# $TMP/modules: PATH VERSION H1|- GOMODH1
run_awk "$TMP/modules" '
function h1(x) { return length(x) == 47 && x ~ /^h1:[A-Za-z0-9+\/]+=$/ }
function bad(what) { fail("ferry-bundle.json: modules[" k "]" what) }
BEGIN { init() }
/^  "modules": \[\],?$/ { found = 1; exit }
/^  "modules": \[$/ { found = 1; f = 1; next }
f && /^  \]/ { f = 0; exit }
f {
  s = $0; k = n++
  if (!lit("    {\"path\":") || !jstr("plain")) bad(" is not in the canonical layout")
  p = V
  if (!lit(",\"version\":") || !jstr("plain")) bad(" is not in the canonical layout")
  v = V
  if (!lit(",\"h1\":")) bad(" is not in the canonical layout")
  h = "-"
  if (!lit("null")) { if (!jstr("plain")) bad(" is not in the canonical layout"); h = V; if (!h1(h)) bad(".h1 must be h1:<base64 sha256>") }
  if (!lit(",\"goModH1\":") || !jstr("plain")) bad(" is not in the canonical layout")
  g = V
  if (!h1(g)) bad(".goModH1 must be h1:<base64 sha256>")
  if (!lit(",\"time\":") || !jstr("plain")) bad(" is not in the canonical layout")
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

`;
