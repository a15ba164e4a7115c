#!/bin/sh
# `make test`: unit tests (cmocka), then black-box tests (pytest against the
# real binary and real kernels).  The last line is pytest's summary.
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
case "$BUILD" in build-*) export NBHUB_SANITIZER="${BUILD#build-}" ;; esac
export VIRTUAL_ENV="$PWD/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
unit_rc=0
scripts/run-unit.sh "$BUILD"/tests/test_* || unit_rc=1
# Fuzz corpora as regression inputs: each harness over its own corpus.
fz_pass=0; fz_fail=0
for r in "$BUILD"/replay/fuzz_*; do
    name=${r##*/fuzz_}
    if "$r" fuzz/corpus/"$name" >/dev/null; then fz_pass=$((fz_pass+1)); else fz_fail=$((fz_fail+1)); echo "FAILED: $r"; unit_rc=1; fi
done
echo "fuzz corpora: $fz_pass passed, $fz_fail failed"
NBHUB_BIN="$PWD/$BUILD/nbhub" .venv/bin/python -m pytest -p no:cacheprovider -q --durations=12 tests/blackbox
py_rc=$?
# Nothing is printed after pytest: its summary must stay the last line.
[ $unit_rc -ne 0 ] && exit 1
exit $py_rc
