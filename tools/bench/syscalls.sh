#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Counts the syscalls made per round and per side in every pattern of
# bench-barrier: the barrier's symmetric and ping-pong, their floors
# floor-symmetric and floor-ping-pong (the same eventfds and pipe, polled by
# hand), and raw. raw and floor-ping-pong are also a check of the method:
# they must come out at exactly 2 (write, read) and 3 (write, poll, read).
# floor-symmetric needs at most 3; less when a point that arrived early
# spares a side its next wait.
#
# Usage: tools/bench/syscalls.sh [-n ROUNDS] [PATH/TO/bench-barrier]
#
# The default binary is build/tools/bench/bench-barrier below the source
# tree; the default number of rounds is 20000.
#
# Each pattern runs once under "strace -f -c" with ROUNDS rounds and once
# with none; the difference of the two (so the start-up and fork() of the
# process do not count) is divided by ROUNDS * 2 sides. Counted are read,
# write, ppoll and poll; "EAGAIN" is the part of the reads that found the
# eventfd empty.
#
# strace stops both processes at every syscall, which changes who runs when
# and so how often a wait finds the peer's sync point already there: its
# counts differ from those of an untraced run, in either direction. If
# perf(1) can count the syscall tracepoints, the same counts are taken again
# with it, without ptrace: those are the numbers of an untraced run.

set -eu

rounds=20000
while getopts n:h opt; do
    case $opt in
        n) rounds=$OPTARG ;;
        h)
            sed -n '4,28s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))

case $rounds in
    '' | *[!0-9]* | 0)
        echo "syscalls.sh: -n needs a positive number of rounds" >&2
        exit 2
        ;;
esac

srcdir=$(cd "$(dirname "$0")/../.." && pwd)
bench=${1:-$srcdir/build/tools/bench/bench-barrier}
if [ ! -x "$bench" ]; then
    echo "syscalls.sh: no benchmark at $bench (build it, or pass its path)" >&2
    exit 1
fi
if ! command -v strace >/dev/null 2>&1; then
    echo "syscalls.sh: strace is not installed" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# run_strace PATTERN ROUNDS OUTFILE: "name calls errors" lines.
run_strace() {
    strace -f -c -U name,calls,errors -o "$tmp/strace.out" \
        "$bench" --only "$1" --rounds "$2" --reps 1 --warmup 0 >/dev/null
    awk '$1 ~ /^(read|write|ppoll|poll)$/ { print $1, $2, ($3 == "" ? 0 : $3) }' \
        "$tmp/strace.out" >"$3"
}

# run_perf PATTERN ROUNDS OUTFILE: the same lines, counted by perf.
run_perf() {
    perf stat -x, -o "$tmp/perf.out" \
        -e syscalls:sys_enter_read -e syscalls:sys_enter_write \
        -e syscalls:sys_enter_ppoll -e syscalls:sys_enter_poll \
        -e syscalls:sys_exit_read --filter 'ret == -11' \
        "$bench" --only "$1" --rounds "$2" --reps 1 --warmup 0 >/dev/null
    awk -F, '
        $3 ~ /^syscalls:sys_enter_/ { n = $3; sub(/^syscalls:sys_enter_/, "", n); calls[n] = $1 }
        $3 == "syscalls:sys_exit_read" { eagain = $1 }
        END {
            for (n in calls) print n, calls[n], (n == "read" ? eagain : 0)
        }' "$tmp/perf.out" >"$3"
}

# report TOOL PATTERN: prints the difference of the two runs per round and side.
report() {
    awk -v rounds="$rounds" -v tool="$1" -v pattern="$2" '
        FNR == NR { base_calls[$1] = $2; base_err[$1] = $3; next }
        { calls[$1] = $2 - base_calls[$1]; err[$1] = $3 - base_err[$1] }
        END {
            per = rounds * 2
            total = 0
            for (n in calls) total += calls[n]
            printf "%-15s %-6s %6.3f syscalls per round per side   (", pattern, tool, total / per
            sep = ""
            split("write read ppoll poll", order, " ")
            for (i = 1; i <= 4; i++) {
                n = order[i]
                if (!(n in calls) || calls[n] == 0) continue
                printf "%s%s %.3f", sep, n, calls[n] / per
                if (n == "read") printf " of which EAGAIN %.3f", err[n] / per
                sep = ", "
            }
            printf ")\n"
        }' "$tmp/base" "$tmp/run"
}

perf_works=false
if command -v perf >/dev/null 2>&1 &&
    perf stat -e syscalls:sys_enter_ppoll true >/dev/null 2>&1; then
    perf_works=true
fi

echo "syscalls per round per side, $rounds rounds (start-up subtracted)"
for pattern in symmetric floor-symmetric ping-pong floor-ping-pong raw; do
    run_strace "$pattern" 0 "$tmp/base"
    run_strace "$pattern" "$rounds" "$tmp/run"
    report strace "$pattern"
    if $perf_works; then
        run_perf "$pattern" 0 "$tmp/base"
        run_perf "$pattern" "$rounds" "$tmp/run"
        report perf "$pattern"
    fi
done
if ! $perf_works; then
    echo "(perf cannot count syscall tracepoints here: strace counts only)"
fi
