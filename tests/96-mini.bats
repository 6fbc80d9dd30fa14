#!/usr/bin/env bats
# tests/96-mini.bats — pipelines/mini.mk, the study in miniature that `make
# demo` runs, on a toy configuration (32-px phantoms, a few hundred images,
# three pre-training steps): the plumbing from cxrphantom to the table, not
# the result (that is examples/study-mini.md, made by the full settings).

load test_helper

@test "mini.mk: phantoms -> pairpack -> vlptrain -> cxreval grid -> table, recall line; a re-run redoes nothing" {
  command -v gnuplot >/dev/null || skip "gnuplot not installed (tools/install-deps.sh adds gnuplot-nox)"
  command -v parallel >/dev/null || skip "GNU parallel not installed"
  local toy=(BINDIR="$BINDIR" OUT="$TMP/mini" JOBS=2 SIZE=32 CROP=32 PRE_COUNT=48 EVAL_COUNT=300
    'ARCH={"layers":[1,1,1,1],"stem_width":4,"planes":4}' PRE_STEPS=3 PRE_BATCH=8
    'PRE_ARGS=--embed-dim 8 --proj-hidden 16 --val-every 3 --log-every 1' FRACTIONS="0.1 1"
    'EVAL_ARGS=--epochs 3 --patience 2 --bootstrap 20')
  run -0 make -s -C "$ROOT" -f pipelines/mini.mk "${toy[@]}"
  assert_line --partial "| Method | CheXpert (AUROC) 10% | CheXpert (AUROC) 100% | RSNA (AUROC) 10% |"
  assert_line --regexp '^\| convirt \| [0-9.]+ \([0-9.]+-[0-9.]+\) \|'
  assert_line --regexp '^\| random \| [0-9.]+ \([0-9.]+-[0-9.]+\) \|'
  assert_line --regexp '^mini.mk: ConVIRT validation at step 3 \([0-9]+ held-out pairs\): image->text recall@10 [0-9.]+, .* chance [0-9.]+$'
  [ "$(wc -l <"$TMP/mini/study/results.jsonl")" = 12 ]   # 2 sources x 3 datasets x 2 fractions
  [ "$(jq -r .dataset "$TMP/mini/study/results.jsonl" | sort -u | tr '\n' ' ')" = "chexpert covidx rsna " ]
  [ "$(jq -r .checkpoint "$TMP/mini/study/results.jsonl" | sort -u | tr '\n' ' ')" = "$TMP/mini/convirt.safetensors null " ]
  [ -s "$TMP/mini/convirt.safetensors" ] && [ -s "$TMP/mini/study/study.png" ]
  # every step is a file target: nothing is remade
  local before; before=$(stat -c %Y "$TMP/mini/convirt.safetensors")
  run -0 make -s -C "$ROOT" -f pipelines/mini.mk "${toy[@]}"
  [ "$(stat -c %Y "$TMP/mini/convirt.safetensors")" = "$before" ]
  assert_line --regexp '^\| convirt \| '
}
