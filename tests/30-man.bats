#!/usr/bin/env bats
# tests/30-man.bats — the manual pages: groff-clean, the sections a reader
# looks for, and the same long options as the program's --help, so that the
# page and the program cannot drift apart.
load test_helper
bats_require_minimum_version 1.5.0

PROGS="rep2lat denoise lat2png pairpack vlptrain cxreval cxrphantom"
SECTIONS=("NAME" "SYNOPSIS" "DESCRIPTION" "OPTIONS" "INPUT" "OUTPUT" "EXIT STATUS"
          "DIAGNOSTICS" "EXAMPLES" "SEE ALSO")

page() { echo "$ROOT/man/man1/$1.1"; }

# help_options PROG: the long option each option line of --help starts with.
help_options() {
  "$1" --help | sed -nE 's/^ +(-[A-Za-z], )?(--[a-z][a-z0-9-]*).*/\2/p' | sort -u
}

# man_options PAGE: the long options named in the item tags (.TP/.TQ) of OPTIONS.
man_options() {
  awk '/^\.SH / { sec = $0 } sec == ".SH OPTIONS" && (prev == ".TP" || prev == ".TQ") { print }
       { prev = $0 }' "$1" |
    grep -oE '\\-\\-[a-z][a-z0-9\\-]*' | sed 's/\\//g' | sort -u
}

check_sections() {
  local p=$1 f
  f=$(page "$p")
  [ -f "$f" ] || fail "$p has no man page at man/man1/$p.1"
  assert_regex "$(head -3 "$f")" "\.TH $(echo "$p" | tr a-z A-Z) 1 "
  local s
  for s in "${SECTIONS[@]}"; do
    grep -qx "\.SH \"\?$s\"\?" "$f" || fail "$p.1 lacks the section $s"
  done
  grep -qxE '\.SH "?(STATUS|BUGS)"?' "$f" || fail "$p.1 lacks a STATUS (or BUGS) section"
  # NAME is "prog \- what it does" (what whatis/apropos read).
  run -0 awk '/^\.SH NAME/ { getline; print; exit }' "$f"
  assert_output --regexp "^$p \\\\- [a-z]"
  # EXIT STATUS documents 0, 1 and 2; SEE ALSO names the stream format.
  run -0 awk '/^\.SH "?EXIT STATUS/ { on = 1; next } /^\.SH / { on = 0 } on && /^\.B [0-9]$/' "$f"
  assert_output $'.B 0\n.B 1\n.B 2'
  run -0 awk '/^\.SH "?SEE ALSO/ { on = 1; next } /^\.SH / { on = 0 } on' "$f"
  assert_output --partial 'cxrstream (5)'
}

check_options_agree() {
  local p=$1 f h m
  f=$(page "$p")
  h=$(help_options "$p")
  m=$(man_options "$f")
  [ -n "$h" ] || fail "no options parsed from $p --help"
  [ -n "$m" ] || fail "no options parsed from $p.1"
  run comm -23 <(echo "$h") <(echo "$m")
  [ -z "$output" ] || fail "in $p --help but not in $p.1: $output"
  run comm -13 <(echo "$h") <(echo "$m")
  [ -z "$output" ] || fail "in $p.1 but not in $p --help: $output"
}

@test "every man page is groff-clean (groff -man -ww -z)" {
  local f n=0
  for f in "$ROOT"/man/man1/*.1 "$ROOT"/man/man5/*.5; do
    [ -e "$f" ] || continue
    run -0 env LC_ALL=C groff -man -ww -z "$f"
    [ -z "$output" ] || fail "$(basename "$f"): $output"
    n=$((n + 1))
  done
  [ "$n" -ge 6 ] || fail "only $n man pages found"
}

@test "every program has a man page" {
  local p
  for p in $PROGS; do [ -f "$(page "$p")" ] || fail "man/man1/$p.1 is missing"; done
}

@test "rep2lat.1 has the sections" { check_sections rep2lat; }
@test "denoise.1 has the sections" { check_sections denoise; }
@test "lat2png.1 has the sections" { check_sections lat2png; }
@test "pairpack.1 has the sections" { check_sections pairpack; }
@test "vlptrain.1 has the sections" { check_sections vlptrain; }
@test "cxreval.1 has the sections" { check_sections cxreval; }
@test "cxrphantom.1 has the sections" { check_sections cxrphantom; }

@test "rep2lat --help and rep2lat.1 list the same options" { check_options_agree rep2lat; }
@test "denoise --help and denoise.1 list the same options" { check_options_agree denoise; }
@test "lat2png --help and lat2png.1 list the same options" { check_options_agree lat2png; }
@test "pairpack --help and pairpack.1 list the same options" { check_options_agree pairpack; }
@test "vlptrain --help and vlptrain.1 list the same options" { check_options_agree vlptrain; }
@test "cxreval --help and cxreval.1 list the same options" { check_options_agree cxreval; }
@test "cxrphantom --help and cxrphantom.1 list the same options" { check_options_agree cxrphantom; }
