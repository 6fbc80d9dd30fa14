# tests/test_helper.bash — loaded by every bats file (`load test_helper`): puts
# the built programs ($BINDIR, default bin) first on PATH, loads bats-support
# and bats-assert, and names the fixtures folder and a temp dir.
# (The programs helper's minimal copy; the lead merges it with the full one.)
ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
BINDIR=${BINDIR:-bin}
case $BINDIR in /*) ;; *) BINDIR="$ROOT/$BINDIR" ;; esac
PATH="$BINDIR:$PATH"
FIXTURES="$ROOT/tests/fixtures"
TMP=${BATS_TEST_TMPDIR:-${BATS_TMPDIR:-/tmp}}
export ROOT BINDIR PATH FIXTURES TMP

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
