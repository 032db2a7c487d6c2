#!/bin/sh
# run_all.sh: runs each test binary given as an argument (from the repository root),
# shows its output, adds up the "N passed, N failed" lines and ends with
# "tests: N passed, N failed"; exits non-zero if any binary failed or crashed (a crash,
# or a binary that ends without its summary line, counts as one failure). Each test's
# wall time follows its output ("-- TEST: N s"): CI has a 30-minute budget.
#   sh tests/run_all.sh build/tests/test_ops build/tests/test_loss ...
cd "$(dirname "$0")/.." || exit 2

passed=0
failed=0
bad=0
out=$(mktemp "${TMPDIR:-/tmp}/cnnlab-tests.XXXXXX") || exit 2
trap 'rm -f "$out"' EXIT

for t in "$@"; do
    echo "== $t"
    start=$(date +%s)
    "$t" >"$out" 2>&1
    rc=$?
    cat "$out"
    echo "-- $t: $(($(date +%s) - start)) s"
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    if [ -n "$summary" ]; then
        p=${summary%% passed*}
        f=${summary#*passed, }
        f=${f%% failed*}
        passed=$((passed + p))
        failed=$((failed + f))
    fi
    if [ "$rc" -gt 128 ]; then
        echo "FAIL - $t: crashed (signal $((rc - 128)))"
        failed=$((failed + 1))
        bad=1
    elif [ -z "$summary" ]; then
        echo "FAIL - $t: exited with status $rc without a summary line"
        failed=$((failed + 1))
        bad=1
    elif [ "$rc" -ne 0 ]; then
        bad=1
        if [ "$f" -eq 0 ]; then
            echo "FAIL - $t: exited with status $rc but reported no failures"
            failed=$((failed + 1))
        fi
    fi
done

echo "tests: $passed passed, $failed failed"
[ "$bad" -eq 0 ] && [ "$failed" -eq 0 ]
