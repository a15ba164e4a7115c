#!/bin/sh
# Run every cmocka unit-test binary given; show the log of failures; print
# one summary line.
pass=0; fail=0
log=$(mktemp)
for t in "$@"; do
    if "$t" >"$log" 2>&1; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAILED: $t"; cat "$log"; fi
done
rm -f "$log"
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
