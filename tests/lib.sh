# tests/lib.sh: what every shell test starts with. A test changes to the repository
# root, then sources this file:
#   cd "$(dirname "$0")/.." || exit 2
#   . tests/lib.sh
#   make_tmp NAME            # $tmp, a fresh folder removed at exit
# and ends with `finish`. Output follows run_all.sh's protocol: one "ok - ..." or
# "FAIL - ..." line per check, then "N passed, N failed"; the exit status is 0 only
# when nothing failed.

BUILD=${BUILD:-build}
CNNLAB=$BUILD/cnnlab
passed=0
failed=0
tmp=

ok() { echo "ok - $1"; passed=$((passed + 1)); }

# fail NAME [DETAIL]
fail() {
    if [ $# -gt 1 ]; then echo "FAIL - $1: $2"; else echo "FAIL - $1"; fi
    failed=$((failed + 1))
}

# show FILE [LINES]: the first lines of FILE, indented, under a failure
show() { sed 's/^/    /' "$1" | head -n "${2:-15}"; }

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

# skip_all WHAT WHY: the whole test cannot run here (counts as one pass, says why)
skip_all() {
    echo "ok - $1 (skipped: $2)"
    echo "1 passed, 0 failed"
    exit 0
}

# make_tmp NAME: $tmp, removed at exit. A test with background processes sets its own
# EXIT trap after this one, and removes $tmp in it.
make_tmp() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/cnnlab-$1.XXXXXX") || exit 2
    trap 'rm -rf "$tmp"' EXIT
}

# check NAME EXPECTED_STATUS PATTERN -- COMMAND...: runs COMMAND, wants the exit
# status and a line of its output (stdout and stderr, kept in $tmp/out) matching the
# extended regex.
check() {
    check_name=$1 check_want=$2 check_pattern=$3
    shift 4
    "$@" >"$tmp/out" 2>&1
    check_rc=$?
    if [ "$check_rc" -ne "$check_want" ]; then
        fail "$check_name" "exit status $check_rc, expected $check_want"
        show "$tmp/out" 5
    elif ! grep -qE -- "$check_pattern" "$tmp/out"; then
        fail "$check_name" "no line matches '$check_pattern'"
        show "$tmp/out" 5
    else
        ok "$check_name"
    fi
}

# have_data [mnist|cifar10]: the shared dataset files (both without an argument) are
# beside the project
have_data() {
    case ${1:-both} in
    mnist) [ -f ../shared/data/mnist/train-images-idx3-ubyte.gz ] ;;
    cifar10) [ -f ../shared/data/cifar-10-batches-bin/data_batch_1.bin ] ;;
    *) have_data mnist && have_data cifar10 ;;
    esac
}
