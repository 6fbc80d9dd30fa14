# tests/test_helper.bash — loaded by every bats file (`load test_helper`): puts
# the built programs ($BINDIR, default bin) first on PATH and the test helper
# programs ($BUILD/tests/helpers, e.g. mkstream) after them, loads bats-support
# and bats-assert, and names the fixtures folder (FIXTURES) and a per-test
# temp dir (TMP, removed by bats after the test).
#   BINDIR=build/san/bin bats tests/     runs the tests on the sanitizer build
bats_require_minimum_version 1.5.0   # run -N and run --separate-stderr

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
BINDIR=${BINDIR:-bin}
case $BINDIR in /*) ;; *) BINDIR="$ROOT/$BINDIR" ;; esac
# The helpers belong to the same build as the programs (rel or san).
if [ -z "${BUILD:-}" ]; then
  case $BINDIR in */build/san/bin) BUILD=build/san ;; *) BUILD=build/rel ;; esac
fi
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
HELPERS="$BUILD/tests/helpers"
PATH="$BINDIR:$HELPERS:$PATH"
FIXTURES="$ROOT/tests/fixtures"
TMP=${BATS_TEST_TMPDIR:-${BATS_TMPDIR:-/tmp}}
export ROOT BINDIR BUILD HELPERS PATH FIXTURES TMP

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

# stderr_has TEXT (after `run --separate-stderr`): stderr contains TEXT, else
# say what it held.
stderr_has() {
  [[ $stderr == *"$1"* ]] && return 0
  printf 'stderr lacks: %s\nstderr was:\n%s\n' "$1" "$stderr" >&2
  return 1
}
