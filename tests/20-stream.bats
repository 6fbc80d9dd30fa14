#!/usr/bin/env bats
# tests/20-stream.bats — the stream format through cxrstream(1) as a user meets
# it: the summary of a valid stream, empty input, --kind, every corrupt stream
# that tests/helpers/mkstream makes (exit 2, the fault and the record named on
# stderr, nothing on stdout), streaming before EOF, and the Python reader of
# cxrstream(5) run on a stream the C writer made.
load test_helper

# stderr_has TEXT: the last run's stderr contains TEXT.

# bad NAME TEXT...: `mkstream NAME | cxrstream --check` exits 2, prints nothing
# on stdout and one message on stderr containing every TEXT.
bad() {
  local name=$1; shift
  mkstream "$name" >"$TMP/s"
  run -2 --separate-stderr cxrstream --check "$TMP/s"
  assert_equal "$output" ""
  [[ $stderr == "cxrstream: $TMP/s: "* ]] || { echo "stderr: $stderr" >&2; return 1; }
  [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
  local t
  for t in "$@"; do stderr_has "$t"; done
}

@test "valid stream: one JSON line for the header and per record, no data" {
  run -0 --separate-stderr bash -c 'mkstream valid | cxrstream'
  assert_equal "$stderr" ""
  assert_equal "${#lines[@]}" 4
  assert_line --index 0 '{"magic":"cxrstream","version":1,"kind":"test","producer":"mkstream 0.1.0","meta":{"model":"tiny-sd","run":{"seed_base":42,"tools":["rep2lat","denoise"]}},"tensors":{"uncond":{"dtype":"f32","shape":[2,3]}}}'
  assert_line --index 1 '{"index":1,"id":"p10_s5","meta":{"text":"Small left pleural effusion — no pneumothorax. Épanchement ✓","seed":5,"guidance":7.5,"flags":[true,false,null],"nested":{"a":{"b":[1,-2,3.25]}}},"tensors":{"a_f32":{"dtype":"f32","shape":[2,3]},"b_f16":{"dtype":"f16","shape":[4]},"c_bf16":{"dtype":"bf16","shape":[2,2]},"d_i32":{"dtype":"i32","shape":[3]},"e_i64":{"dtype":"i64","shape":[2]},"f_u8":{"dtype":"u8","shape":[5]}}}'
  assert_line --index 2 '{"index":2,"id":"p11_s6","meta":{},"tensors":{"latents":{"dtype":"f32","shape":[4,8,8]}}}'
  assert_line --index 3 '{"index":3,"id":"ünïcode-id","meta":{"text":"左肺 — ∅"},"tensors":{"empty":{"dtype":"f32","shape":[0,3]},"s":{"dtype":"i64","shape":[]}}}'
}

@test "FILE, - and stdin give the same summary; --check prints nothing" {
  mkstream valid >"$TMP/v.cxr"
  cxrstream <"$TMP/v.cxr" >"$TMP/a"
  cxrstream "$TMP/v.cxr" >"$TMP/b"
  cxrstream - <"$TMP/v.cxr" >"$TMP/c"
  cmp "$TMP/a" "$TMP/b"
  cmp "$TMP/a" "$TMP/c"
  [ "$(wc -l <"$TMP/a")" -eq 4 ]
  run -0 --separate-stderr cxrstream --check "$TMP/v.cxr"
  assert_equal "$output" ""
  assert_equal "$stderr" ""
}

@test "empty input is a valid stream with zero records" {
  run -0 --separate-stderr cxrstream </dev/null
  assert_equal "$output" ""
  assert_equal "$stderr" ""
  run -0 --separate-stderr bash -c 'mkstream empty | cxrstream --check --kind latents'
  assert_equal "$output" ""
  assert_equal "$stderr" ""
}

@test "a header with no records is valid: one line" {
  run -0 --separate-stderr bash -c 'mkstream header-only | cxrstream'
  assert_equal "$stderr" ""
  assert_output '{"magic":"cxrstream","version":1,"kind":"latents","producer":"mkstream 0.1.0","meta":{},"tensors":{}}'
}

@test "--kind: the right kind passes, the wrong one names both" {
  run -0 --separate-stderr bash -c 'mkstream conditioning | cxrstream --check --kind conditioning'
  mkstream latents >"$TMP/l"
  run -2 --separate-stderr cxrstream --kind conditioning "$TMP/l"
  assert_equal "$output" ""
  stderr_has "cxrstream: $TMP/l: expected a conditioning stream (from rep2lat), got latents (from mkstream 0.1.0)"
}

@test "unknown top-level keys are kept and counted" {
  run -0 --separate-stderr bash -c 'mkstream extra-key | cxrstream'
  assert_line --index 1 '{"index":1,"id":"p1","meta":{},"tensors":{},"extra_keys":1}'
}

@test "truncated inside the header" {
  bad truncated-header "header: truncated: the input ends 20 bytes into it"
}
@test "truncated just after a record's map marker" {
  bad truncated-map "record 1: truncated: the input ends 1 byte into it"
}
@test "truncated inside a tensor's data" {
  bad truncated-data "record 3: truncated"
}
@test "not msgpack" {
  bad not-msgpack "record 1: not valid msgpack near byte"
}
@test "plain text is not a stream" {
  bad text "not a cxrstream: the input starts with a msgpack positive integer, not a header map (it looks like text)"
}
@test "JSON Lines (reports fed to the wrong program) are not a stream" {
  bad json "not a cxrstream" "looks like JSON text"
}
@test "header missing: a record comes first" {
  bad no-header 'header missing: the first map is a record (id "p10_s5")'
}
@test "a first map without magic" {
  bad no-magic 'header missing: the first map has no "magic" key'
}
@test "wrong magic" {
  bad bad-magic 'header: magic is "cxrstreem", expected "cxrstream"'
}
@test "unsupported version" {
  bad version-2 "header: unsupported version 2 (this program reads version 1)"
}
@test "header without kind" {
  bad no-kind 'header: missing "kind"'
}
@test "a record that is not a map" {
  bad record-not-map "record 3: a msgpack array, not a map"
}
@test "a second header (two streams joined with cat)" {
  bad second-header "record 3: a second header inside the stream"
}
@test "unknown dtype f8" {
  bad unknown-dtype 'record 3 (id "p3"): tensor "latents": unknown dtype "f8"'
}
@test "data size differs from shape" {
  bad size-mismatch 'record 3 (id "p10_s5"): tensor "latents": 16384 bytes of data, but shape [4, 64, 64] f32 needs 65536'
}
@test "negative shape entry" {
  bad negative-shape 'record 3 (id "p3"): tensor "latents": shape entry 1 is -1 (negative)'
}
@test "shape entry that is not an integer" {
  bad shape-not-int 'record 3 (id "p3"): tensor "latents": shape entry 0 is a float, not an integer'
}
@test "more than 8 dimensions" {
  bad too-many-dims 'record 3 (id "p3"): tensor "latents": shape has 9 dimensions (at most 8)'
}
@test "data that is not bin" {
  bad data-not-bin 'record 3 (id "p3"): tensor "latents": data is a string, not bin'
}
@test "unknown key inside a tensor" {
  bad tensor-extra-key 'record 3 (id "p3"): tensor "latents": unknown key "order"'
}
@test "missing id" {
  bad missing-id 'record 3: missing "id"'
}
@test "id not a string" {
  bad id-not-string 'record 3: "id" is a positive integer, not a string'
}
@test "empty id" {
  bad empty-id 'record 3 (id ""): the id is empty'
}
@test "a key twice in a record" {
  bad duplicate-key 'record 3 (id "p3"): key "id" appears twice'
}
@test "meta not a map" {
  bad meta-not-map 'record 3 (id "p3"): "meta" is a string, not a map'
}
@test "bin inside meta names the key" {
  bad bin-in-meta 'record 3 (id "p3"): meta.source.blob is msgpack bin'
}
@test "NaN inside meta names the key" {
  bad nan-in-meta 'record 3 (id "p3"): meta.guidance is nan'
}
@test "meta nested deeper than msgpack-c allows" {
  bad deep-meta "record 3: cannot decode" "nest more than 32 deep"
}
@test "a map that declares 2^32-1 entries" {
  # msgpack-c asks malloc for 128 GB at once; ASan would abort where the
  # release build's malloc returns NULL, so let ASan return NULL too.
  export ASAN_OPTIONS="${ASAN_OPTIONS:-}:allocator_may_return_null=1"
  bad huge-map "record 3: cannot decode: a map or array declares more entries than memory allows"
}

@test "without --check, the records before a fault are printed, then exit 2" {
  mkstream size-mismatch >"$TMP/s"
  run -2 --separate-stderr cxrstream "$TMP/s"
  assert_equal "${#lines[@]}" 3
  assert_line --index 2 --partial '"id":"p2"'
  stderr_has 'record 3 (id "p10_s5")'
}

@test "every corrupt stream of mkstream is covered above" {
  # A new corrupt case in mkstream must get its own test here.
  local n covered
  covered=$(grep -o '^  bad [a-z0-9-]*' "$BATS_TEST_FILENAME" | awk '{print $2}' | sort -u)
  for n in $(mkstream list); do
    case $n in valid|empty|header-only|conditioning|latents|extra-key) continue ;; esac
    grep -qx "$n" <<<"$covered" || { echo "no test for mkstream $n" >&2; return 1; }
  done
}

@test "records are summarised as they arrive, before the input ends" {
  # The writer side stays open for 2 s after the records; a reader waiting
  # for EOF (or a full read buffer) prints nothing before timeout stops it.
  run bash -c '{ mkstream valid; sleep 2; } | timeout 1 cxrstream'
  assert_equal "$status" 124
  assert_equal "${#lines[@]}" 4
  assert_line --index 3 --partial '"id":"ünïcode-id"'
}

@test "the Python reader in cxrstream(5) reads a stream the C writer made" {
  local page="$ROOT/man/man5/cxrstream.5"
  sed -n '/BEGIN python-reader/,/END python-reader/p' "$page" | grep -v '^\.' >"$TMP/reader.py"
  [ "$(wc -l <"$TMP/reader.py")" -le 10 ]
  mkstream valid >"$TMP/v.cxr"
  cat >"$TMP/use.py" <<'PY'
import sys
exec(open(sys.argv[1]).read())
for m in read_stream(open(sys.argv[2], "rb")):
    print(m["id"] if "id" in m else "header:" + m["kind"], m["meta"].get("text", "-"))
    for k, t in m.get("tensors", {}).items():
        print(" ", k, t["dtype"], t["shape"], values(t)[:6])
PY
  run -0 --separate-stderr /usr/bin/python3 "$TMP/use.py" "$TMP/reader.py" "$TMP/v.cxr"
  assert_equal "$stderr" ""
  assert_output - <<'OUT'
header:test -
  uncond f32 [2, 3] [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
p10_s5 Small left pleural effusion — no pneumothorax. Épanchement ✓
  a_f32 f32 [2, 3] [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75]
  b_f16 f16 [4] [-1.0, 0.5, 2.0, 3.5]
  c_bf16 bf16 [2, 2] [0.5, 2.5, 4.5, 6.5]
  d_i32 i32 [3] [7, -993, -1993]
  e_i64 i64 [2] [-5, -2]
  f_u8 u8 [5] [0, 60, 120, 180, 240]
p11_s6 -
  latents f32 [4, 8, 8] [0.0, 0.009999999776482582, 0.019999999552965164, 0.029999999329447746, 0.03999999910593033, 0.05000000074505806]
ünïcode-id 左肺 — ∅
  empty f32 [0, 3] []
  s i64 [] [7]
OUT
  # The reader refuses what is not a version-1 stream.
  mkstream version-2 >"$TMP/v2.cxr"
  run -1 --separate-stderr /usr/bin/python3 "$TMP/use.py" "$TMP/reader.py" "$TMP/v2.cxr"
  stderr_has "not a cxrstream"
}

@test "command line: --help, --version, bad options, missing file" {
  run -0 --separate-stderr cxrstream --help
  assert_line --index 0 --partial 'Usage: cxrstream '
  assert_line --partial '--check'
  assert_equal "$stderr" ""
  run -0 --separate-stderr cxrstream --version
  assert_output --regexp '^cxrstream \(synthcxr\) [0-9]+\.[0-9]+\.[0-9]+$'
  run -1 --separate-stderr cxrstream --bogus
  assert_equal "$output" ""
  run -1 --separate-stderr cxrstream a b
  assert_equal "$output" ""
  stderr_has "one FILE at most"
  run -1 --separate-stderr cxrstream --kind ''
  run -2 --separate-stderr cxrstream "$TMP/nonexistent"
  assert_equal "$output" ""
  stderr_has "cannot open $TMP/nonexistent"
}

@test "man pages cxrstream(1) and cxrstream(5) are groff-clean" {
  run -0 bash -c "LC_ALL=C groff -man -ww -z '$ROOT/man/man1/cxrstream.1' '$ROOT/man/man5/cxrstream.5' 2>&1"
  assert_output ""
}
