#!/usr/bin/env bash
# tests/run.sh — runs every C unit test and every bats file, gathers their TAP
# lines and ends with "N passed, N failed, N skipped". Run from the repo root
# by `make check` (BUILD and BINDIR come from the Makefile).
#   tests/run.sh          all tests (GPU tests skip without a GPU)
#   tests/run.sh --gpu    only the GPU tests (make check-gpu): test_gpu_*, tests/*-gpu.bats
# STRICT=1 or REQUIRE_GPU=1 turn a skipped GPU test into a failure.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/rel}
BINDIR=${BINDIR:-bin}
export PATH="$PWD/$BINDIR:$PATH" SYNTHCXR_BUILD="$BUILD" SYNTHCXR_ROOT="$PWD"
# Idle OpenMP threads sleep instead of spinning: the bats tests run programs
# in pipes and CI machines are shared, and spinning threads of one process
# slowed the others 4-9x on 2 cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:protect_shadow_gap=0}
mode=${1:-all}

passed=0 failed=0 skipped=0
failures=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# tally SUITE: read TAP on stdin, echo it, count it.
tally() {
  local suite=$1 line
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
      "not ok "*) failed=$((failed + 1)); failures+=("$suite: ${line#not ok }") ;;
      "ok "*"# skip"*|"ok "*"# SKIP"*)
        if [ "${REQUIRE_GPU:-0}" = 1 ] || [ "${STRICT:-0}" = 1 ]; then
          failed=$((failed + 1)); failures+=("$suite: ${line#ok } (skip counts as failure here)")
        else skipped=$((skipped + 1)); fi ;;
      "ok "*) passed=$((passed + 1)) ;;
    esac
  done
}

for t in "$BUILD"/tests/unit/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  case "$mode:$name" in --gpu:test_gpu_*|all:*) ;; *) continue ;; esac
  echo "# $name"
  "$t" >"$log" 2>&1
  rc=$?
  tally "$name" <"$log"
  if [ $rc -ne 0 ] && ! grep -q '^not ok' "$log"; then
    failed=$((failed + 1)); failures+=("$name: exited $rc without a failing test line")
  fi
done

# --gpu: the bats tests whose name begins "GPU" too (programs on the GPU
# against the CPU: tests/57-pipeline-gpu.bats, and those of each program's file)
if [ "$mode" = all ] || [ "$mode" = --gpu ]; then
  bats_files=(tests/*.bats) filter=()
  [ "$mode" = --gpu ] && filter=(--filter '^GPU')
  if [ -e "${bats_files[0]}" ]; then
    echo "# bats"
    bats --tap "${filter[@]}" "${bats_files[@]}" >"$log" 2>&1
    rc=$?
    tally bats <"$log"
    if [ $rc -ne 0 ] && ! grep -q '^not ok' "$log"; then
      failed=$((failed + 1)); failures+=("bats: exited $rc without a failing test line")
    fi
  fi
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo "# failed:"
  printf '#   %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ $((passed + skipped)) -gt 0 ]
