/**
 * import.sh, section 2c: the sources the bundle announces as deprecated or archived
 * (`lifecycle` in ferry-bundle.json), checked like the other lists and announced as ferry import
 * announces them. A part of import.sh (import-script.ts assembles it): no "${" and no backquote,
 * so String.raw keeps every byte as written.
 */

/** Reads lifecycle[] (absent when every source is active) and warns about each deprecated source. */
export const SH_LIFECYCLE: string = String.raw`# ---- 2c. deprecated and archived sources ------------------------------------------------------
# lifecycle[]: one {"kind","name","target","state"[,"note"]} object per line, only when some
# source is not active. A deprecated image or module is still carried: say so, with its note.
run_awk "$TMP/lifecycle" '
# text V: the JSON string V as text; \uXXXX escapes stay as written, C1 controls are refused.
function text(v, what,   out, i, n, c, d) {
  if (v ~ /\302[\200-\237]/) bad("." what " must not contain control characters")
  out = ""; n = length(v)
  for (i = 1; i <= n; i++) {
    c = substr(v, i, 1)
    if (c == "\\") {
      d = substr(v, ++i, 1)
      if (d == "\"" || d == "\\" || d == "/") out = out d
      else if (d == "u") out = out "\\u"
      else bad("." what " has an escape that is not allowed in one line of text")
      continue
    }
    out = out c
  }
  return out
}
function bad(what) { fail("ferry-bundle.json: lifecycle[" k "]" what) }
BEGIN { init() }
/^  "lifecycle": \[$/ { f = 1; next }
f && /^  \]/ { f = 0; exit }
f {
  s = $0; k = n++
  if (!lit("    {\"kind\":") || !jstr("text")) bad(" is not in the canonical layout")
  kind = V
  if (kind != "image" && kind != "module") bad(".kind " jq(kind) " must be image or module")
  if (!lit(",\"name\":") || !jstr("text")) bad(" is not in the canonical layout")
  name = text(V, "name")
  if (name == "") bad(".name must not be empty")
  if (!lit(",\"target\":")) bad(" is not in the canonical layout")
  target = ""
  if (!lit("null")) { if (!jstr("text")) bad(" is not in the canonical layout"); target = text(V, "target") }
  if (!lit(",\"state\":") || !jstr("text")) bad(" is not in the canonical layout")
  state = V
  if (state != "deprecated" && state != "archived") bad(".state " jq(state) " must be deprecated or archived")
  note = ""
  if (lit(",\"note\":")) { if (!jstr("text")) bad(" is not in the canonical layout"); note = text(V, "note") }
  if (!lit("}") || (s != "" && s != ",")) bad(" is not in the canonical layout")
  if ((kind " " name) in seen) bad(" " kind " " jq(name) " is listed twice")
  seen[kind " " name] = 1
  if (state != "deprecated") next
  what = kind == "image" ? "image " target : (target != "" ? "Go module " target : "Go module root " name)
  print what " is deprecated" (note != "" ? ": " note : " (no note given)")
}
END {
  if (FAILED) exit 1
  if (f) fail("ferry-bundle.json: the lifecycle list is not closed")
}' "$M" || awk_die
while IFS= read -r line; do warn "$line"; done < "$TMP/lifecycle"

`;

/** Reads pruned[] (absent when no tag left) and says that import.sh deletes none of them. */
export const SH_PRUNED: string = String.raw`# ---- 2d. tags the bundle removes ---------------------------------------------------------------
# pruned[]: one {"target","tag","digest"} object per line, only when tags left upstream (an image
# entry with prune: true). import.sh has no ledger, so it cannot tell the tags Ferry placed from
# others: it deletes nothing, and names them.
run_awk "$TMP/pruned" '
BEGIN { init() }
/^  "pruned": \[$/ { f = 1; next }
f && /^  \]/ { f = 0; exit }
f {
  k = n++
  if ($0 !~ /^    \{"target":"[a-z0-9._\/-]+","tag":"[A-Za-z0-9_][A-Za-z0-9_.-]*","digest":"sha256:[0-9a-f]+"\},?$/) fail("ferry-bundle.json: pruned[" k "] is not in the canonical layout")
  s = $0
  sub(/^    \{"target":"/, "", s); t = s; sub(/".*$/, "", t)
  sub(/^[^"]*","tag":"/, "", s); g = s; sub(/".*$/, "", g)
  print t ":" g
}
END {
  if (FAILED) exit 1
  if (f) fail("ferry-bundle.json: the pruned list is not closed")
}' "$M" || awk_die
if [ -s "$TMP/pruned" ]; then
  warn "this bundle removes $(wc -l < "$TMP/pruned" | tr -d ' ') tag(s) that left upstream; import.sh deletes nothing (ferry import deletes those Ferry placed, as its ledger knows them):"
  while IFS= read -r line; do warn "  removed upstream: $line"; done < "$TMP/pruned"
fi

`;
