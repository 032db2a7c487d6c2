#!/bin/sh
# test_kill.sh: a training run under fire. A small MNIST run (dropout in every block,
# augmentation, one thread) is started and hit by SIGKILL, SIGTERM or SIGINT at a
# random moment (seeded: the same rounds every time), then resumed, for 20 rounds
# (under CNNLAB_QUICK, the sanitized and portable builds: 6 rounds of a smaller run;
# KILL_ROUNDS and KILL_SEED override). After each round the last checkpoint must
# load (`cnnlab eval` works on it). At the end an undisturbed resume finishes the
# run, whose metrics.csv must equal the uninterrupted run's, seconds aside, with no
# temporary file left. The moments scale with the length of the uninterrupted run,
# so the rounds land in setup, training, evaluation, checkpointing or the report on a
# fast machine as on a slow one.
# Prints "ok - NAME" / "FAIL - NAME: ..." and "N passed, N failed".
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
make_tmp kill
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
metrics() { cut -d, -f1-6 "$1/metrics.csv"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

have_data mnist || skip_all "kill test" "no ../shared/data"
rounds=${KILL_ROUNDS:-20}
[ -n "$CNNLAB_QUICK" ] && rounds=${KILL_ROUNDS:-6}
seed=${KILL_SEED:-12}

sed 's/^defaults .*/defaults norm=bn act=relu dropout=0.1/' models/mnist.net >"$tmp/net"
common="$tmp/net --data mnist --epochs 3 --train-subset 1024 --test-subset 256 --batch 32 --threads 1 --aug crop:2"
# the sanitized build runs several times slower: a smaller run
[ -n "$CNNLAB_QUICK" ] && common="$tmp/net --data mnist --epochs 2 --train-subset 384 --test-subset 128 --batch 32 --threads 1 --aug crop:2"

t0=$(now_ms)
"$CNNLAB" train $common --out "$tmp/ref" >"$tmp/ref.log" 2>&1
rc=$?
span=$(($(now_ms) - t0))
if [ $rc -ne 0 ] || [ "$(wc -l <"$tmp/ref/metrics.csv")" -lt 3 ]; then
    fail "uninterrupted run" "exit status $rc: $(tail -n 2 "$tmp/ref.log")"
    echo "$passed passed, $failed failed"
    exit 1
fi

# Round i: a signal (KILL, TERM or INT) after 30 ms to 40% of the uninterrupted run.
awk -v seed="$seed" -v n="$rounds" -v span="$span" 'BEGIN {
    srand(seed)
    split("KILL TERM INT", sig, " ")
    for (i = 1; i <= n; i++) printf "%s %.3f\n", sig[1 + int(rand() * 3)], (30 + rand() * 0.4 * span) / 1000
}' >"$tmp/plan"

run="$tmp/run"
bad=0
loads=0
hits=""
while read -r sig delay; do
    if [ -f "$run/last.safetensors" ]; then
        "$CNNLAB" train --resume "$run" >>"$tmp/rounds.log" 2>&1 &
    else
        "$CNNLAB" train $common --out "$run" >>"$tmp/rounds.log" 2>&1 &
    fi
    pid=$!
    sleep "$delay"
    kill -"$sig" $pid 2>/dev/null
    { wait $pid; } 2>/dev/null # no "Killed" from the shell
    rc=$?
    pid=
    hits="$hits $sig@${delay}s:$rc"
    case $rc in
    0 | 130 | 137 | 143) ;;
    *)
        fail "round $sig after $delay s" "exit status $rc: $(tail -n 3 "$tmp/rounds.log")"
        bad=1
        break
        ;;
    esac
    if [ -f "$run/last.safetensors" ]; then
        if "$CNNLAB" eval "$run/last.safetensors" --test-subset 32 --threads 1 --out "$tmp" >"$tmp/eval.log" 2>&1; then
            loads=$((loads + 1))
        else
            fail "round $sig after $delay s: the last checkpoint does not load" "$(tail -n 2 "$tmp/eval.log")"
            bad=1
            break
        fi
    fi
done <"$tmp/plan"
count() { echo "$hits" | tr ' ' '\n' | grep -c "^$1@"; }
[ $bad -eq 0 ] && ok "$rounds rounds of signals ($(count KILL) SIGKILL, $(count TERM) SIGTERM, $(count INT) SIGINT within the first 40% of a $span ms run): exit statuses 0/130/137/143, the last checkpoint loaded after $loads"
echo "  signal@delay:exit status:$hits"

# The undisturbed end of the run.
if [ -f "$run/last.safetensors" ]; then
    "$CNNLAB" train --resume "$run" >"$tmp/final.log" 2>&1
else
    "$CNNLAB" train $common --out "$run" >"$tmp/final.log" 2>&1
fi
rc=$?
if [ $rc -eq 0 ] && [ "$(metrics "$tmp/ref")" = "$(metrics "$run")" ]; then
    ok "after the signals, metrics.csv equals the uninterrupted run's (seconds aside)"
else
    fail "final metrics" "exit status $rc; got: $(metrics "$run" | tr '\n' ' '); expected: $(metrics "$tmp/ref" | tr '\n' ' ')"
fi
left=$(ls "$run" | grep '\.tmp')
[ -z "$left" ] && ok "no temporary file left in the run folder" || fail "temporary files" "$left"

finish
