#!/bin/sh
# test_options.sh: the option tables of every command against what a user reads:
# each option appears in its command's --help, in the man page and in the README's
# command reference; --help exits 0 everywhere; out-of-range values and unknown
# options are usage errors (exit 2) naming the option and the range; the man page
# renders without warnings; the bash completion completes commands and options.
# Prints "ok - NAME" or "FAIL - NAME: ..." per check and one "N passed, N failed" line.
#   BUILD=build sh tests/test_options.sh
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
make_tmp options

"$CNNLAB" help --options >"$tmp/options" || fail "help --options" "exit status $?"
commands=$(cut -d' ' -f1 "$tmp/options" | uniq)
[ "$(echo "$commands" | wc -w)" -ge 10 ] && [ "$(wc -l <"$tmp/options")" -ge 50 ] &&
    ok "help --options lists the options of $(echo "$commands" | wc -w) commands" ||
    fail "help --options" "$(cat "$tmp/options")"

# The README's section of a command: from its "### `cnnlab CMD" heading to the next heading.
readme_section() {
    awk -v h="### \`cnnlab $1 " 'index($0, h) == 1 { on = 1; print; next }
        on && /^##/ { exit } on { print }' README.md
}

"$CNNLAB" help --man >"$tmp/man.1" || fail "help --man" "exit status $?"
for cmd in $commands; do
    check "$cmd --help exits 0" 0 "^usage: cnnlab $cmd " -- "$CNNLAB" "$cmd" --help
    cp "$tmp/out" "$tmp/help"
    check "help $cmd is $cmd --help" 0 "^usage: cnnlab $cmd " -- "$CNNLAB" help "$cmd"
    cmp -s "$tmp/out" "$tmp/help" || fail "help $cmd" "differs from $cmd --help"
    readme_section "$cmd" >"$tmp/readme"
    [ -s "$tmp/readme" ] || fail "README section of $cmd" "no heading '### \`cnnlab $cmd ...'"
    missing_help='' missing_readme='' missing_man=''
    for opt in $(awk -v c="$cmd" '$1 == c { print $2 }' "$tmp/options"); do
        grep -qE -- "^  $opt( |$)" "$tmp/help" || missing_help="$missing_help $opt"
        grep -qE -- "$opt([^a-z-]|$)" "$tmp/readme" || missing_readme="$missing_readme $opt"
        grep -qF -- "\\fB$(echo "$opt" | sed 's/-/\\-/g')\\fR" "$tmp/man.1" || missing_man="$missing_man $opt"
    done
    [ -z "$missing_help" ] && ok "$cmd --help lists every option" || fail "$cmd --help" "missing$missing_help"
    [ -z "$missing_readme" ] && ok "README documents every option of $cmd" ||
        fail "README section of $cmd" "missing$missing_readme"
    [ -z "$missing_man" ] && ok "man page lists every option of $cmd" || fail "man page of $cmd" "missing$missing_man"
    grep -qF ".SS \"$(echo "$cmd" | sed 's/-/\\-/g') " "$tmp/man.1" && ok "man page has a section for $cmd" || fail "man page" "no .SS for $cmd"
    check "$cmd: unknown option is a usage error" 2 "unknown or incomplete option '--no-such-option'" -- \
        "$CNNLAB" "$cmd" x --no-such-option
done

# ---- values out of range, malformed values ----
check "stats --per-class 100000: range named" 2 "--per-class: expected a whole number from 1 to 100, got '100000'" -- \
    "$CNNLAB" stats mnist --per-class 100000
check "bench --batch 0: range named" 2 "--batch: expected a whole number from 1 to 65536" -- \
    "$CNNLAB" bench models/mnist.net --batch 0
check "train --epochs=0: range named" 2 "--epochs: expected a whole number from 1 to" -- \
    "$CNNLAB" train models/mnist.net --epochs=0
check "compare --target 1.5: range named" 2 "--target: expected a number from 0 \(excluded\) to 1" -- \
    "$CNNLAB" compare runs/x --target 1.5
check "compare --target 0: the lower bound is excluded" 2 "--target: expected a number from 0 \(excluded\)" -- \
    "$CNNLAB" compare runs/x --target 0
check "augment-preview --k 51: range named" 2 "--k: expected a whole number from 1 to 50" -- \
    "$CNNLAB" augment-preview --aug hflip --k 51
check "report --show -1: range named" 2 "--show: expected a whole number from 0 to 100, got '-1'" -- \
    "$CNNLAB" report runs/x --show -1
check "eval --batch x: not a number" 2 "--batch: expected a whole number, got 'x'" -- \
    "$CNNLAB" eval x.safetensors --batch x
check "a value is missing" 2 "--top needs a value" -- "$CNNLAB" predict x.safetensors img.png --top
check "train --milestones bad list" 2 "--milestones: expected comma-separated whole numbers" -- \
    "$CNNLAB" train models/mnist.net --milestones 10,x
check "train --opt adagrad: the choices named" 2 "--opt: expected one of sgd\|adam\|adamw, got 'adagrad'" -- \
    "$CNNLAB" train models/mnist.net --opt adagrad
check "train --sched=linear: the choices named" 2 "--sched: expected one of none\|step\|multistep" -- \
    "$CNNLAB" train models/mnist.net --sched=linear
check "too many operands" 2 "unexpected argument 'b.net'" -- "$CNNLAB" summary models/mnist.net b.net
check "--name=value form" 0 "^Within budget" -- "$CNNLAB" summary models/mnist.net --max-params=8000
check "augment-preview -o is --out" 2 "--k: expected" -- "$CNNLAB" augment-preview --aug hflip -o x.png --k 0
check "help of an unknown command" 2 "unknown command or option 'frobnicate'" -- "$CNNLAB" help frobnicate

# ---- the man page: renders without a warning, with the sections of a man page ----
for section in NAME SYNOPSIS DESCRIPTION COMMANDS "EXIT STATUS" ENVIRONMENT FILES "SEE ALSO"; do
    grep -q "^\.SH \"*$section\"*$" "$tmp/man.1" || fail "man page" "no section $section"
done
grep -q "CNNLAB_DATA" "$tmp/man.1" && ok "man page: every section, CNNLAB_DATA" || fail "man page" "no CNNLAB_DATA"
if command -v man >/dev/null 2>&1; then
    LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "$tmp/man.1" >"$tmp/man.txt" 2>"$tmp/man.err"
    rc=$?
    [ $rc -eq 0 ] && [ ! -s "$tmp/man.err" ] && grep -q "augment-preview" "$tmp/man.txt" &&
        ok "man -l renders the page without warnings" || fail "man -l" "exit $rc: $(head -5 "$tmp/man.err")"
else
    echo "skip - man is not installed"
fi

# ---- bash completion ----
if command -v bash >/dev/null 2>&1; then
    "$CNNLAB" help --bash-completion >"$tmp/complete.bash"
    # complete WORDS...: what _cnnlab offers for the last word
    cat >"$tmp/run.bash" <<'EOS'
. "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
_cnnlab
printf '%s\n' "${COMPREPLY[@]}"
EOS
    complete() { bash "$tmp/run.bash" "$tmp/complete.bash" "$@"; }
    [ "$(complete cnnlab sta)" = "stats" ] && ok "completion: a command" || fail "completion of 'sta'" "$(complete cnnlab sta)"
    [ "$(complete cnnlab stats --per)" = "--per-class" ] && ok "completion: an option" ||
        fail "completion of 'stats --per'" "$(complete cnnlab stats --per)"
    [ "$(complete cnnlab help --bash)" = "--bash-completion" ] && ok "completion: help's options" ||
        fail "completion of 'help --bash'" "$(complete cnnlab help --bash)"
    [ "$(complete cnnlab train --opt ad | tr '\n' ' ')" = "adam adamw " ] && ok "completion: the values of --opt" ||
        fail "completion of 'train --opt ad'" "$(complete cnnlab train --opt ad)"
    [ -z "$(complete cnnlab train models/)" ] && ok "completion: operands left to file names" ||
        fail "completion of a file name" "$(complete cnnlab train models/)"
    missing=''
    for cmd in $commands; do
        complete cnnlab "$cmd" -- >"$tmp/offered"
        for opt in $(awk -v c="$cmd" '$1 == c { print $2 }' "$tmp/options") --help; do
            grep -qx -- "$opt" "$tmp/offered" || missing="$missing $cmd:$opt"
        done
    done
    [ -z "$missing" ] && ok "completion: every option of every command" || fail "completion" "missing$missing"
else
    echo "skip - bash is not installed"
fi

finish
