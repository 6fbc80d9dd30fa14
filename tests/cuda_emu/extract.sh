#!/bin/bash
# extract.sh FILE NAME... — prints each named kernel, device function or
# struct template of FILE (from the `template`/`__device__`/`__global__` line
# that opens its declaration to its closing brace), for the host emulation in
# this folder (run.sh).
f=$1; shift
for name in "$@"; do
  awk -v name="$name" '
    { lines[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) if (lines[i] ~ ("(^|[^A-Za-z0-9_])" name "( \\{|\\()")) { hit = i; break }
      if (!hit) { print "extract.sh: " name " not found" > "/dev/stderr"; exit 1 }
      s = hit
      while (s > 1 && lines[s] !~ /^(template|__device__|__global__)/) s--
      if (s > 1 && lines[s] ~ /^__global__/ && lines[s - 1] ~ /^template/) s--
      depth = 0; opened = 0
      for (i = s; i <= NR; i++) {
        print lines[i]
        n = split(lines[i], ch, "")
        for (j = 1; j <= n; j++) {
          if (ch[j] == "{") { depth++; opened = 1 }
          else if (ch[j] == "}") depth--
        }
        if (opened && depth == 0) break
      }
    }' "$f" || exit 1
done
