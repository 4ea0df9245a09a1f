#!/bin/sh
# Run every program at several rank counts over several BTLs and check the
# RESULT lines; also checks that the corruption self-tests and abort.c FAIL.
#   usage: ./matrix.sh [BTL ...]        (default: self,tcp self,vader)
#   env:   NPS="2 4 8"  BUILD=../../build/mpi  EXTRA="--mca ..." (appended)
#          MPIRUN="mpirun ..." replaces the default loopback-only launcher prefix
# bench runs a reduced sweep here (--max-size 1M --time-budget-ms 50).
# Exits non-zero if any check went the wrong way.  Prints one line per run:
#   PASS|FAIL <btl> np=<n> <prog> <seconds>s <last RESULT line>
set -u
cd "$(dirname "$0")"
BUILD=${BUILD:-../../build/mpi}
NPS=${NPS:-"2 4 8"}
MPIRUN=${MPIRUN:-"mpirun --allow-run-as-root --oversubscribe --mca pml ob1 --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo"}
[ $# -gt 0 ] || set -- self,tcp self,vader
bad=0

run() { # run <btl> <np> <expect: ok|fail|abort> <prog> [args...]
    btl=$1 np=$2 want=$3 prog=$4
    shift 4
    out=$(mktemp)
    t0=$(date +%s.%N)
    timeout 300 $MPIRUN -np "$np" --mca btl "$btl" ${EXTRA:-} "$BUILD/$prog" "$@" >"$out" 2>&1
    rc=$?
    secs=$(echo "$(date +%s.%N) - $t0" | bc)
    last=$(grep '^RESULT' "$out" | tail -n 1)
    case $want in
    ok) [ $rc -eq 0 ] && [ "$(grep -c '^RESULT' "$out")" -eq 1 ] && echo "$last" | grep -q '^RESULT ok' ;;
    fail) [ $rc -ne 0 ] && grep -q '^RESULT fail' "$out" && ! grep -q '^RESULT ok' "$out" ;;
    abort) [ $rc -ne 0 ] && grep -q '^RESULT abort-sent' "$out" && ! grep -q '^RESULT ok' "$out" &&
           [ "$(echo "$secs < 10" | bc)" -eq 1 ] ;;
    esac
    if [ $? -eq 0 ]; then st=PASS; else st=FAIL; bad=1; tail -n 20 "$out"; fi
    printf '%s %s np=%s %s %s %.2fs rc=%s %s\n' "$st" "$btl" "$np" "$prog" "$*" "$secs" "$rc" "$last"
    rm -f "$out"
}

for btl in "$@"; do
    for np in $NPS; do
        for p in pingpong collectives anysource outstanding datatypes stress; do
            run "$btl" "$np" ok $p
        done
        run "$btl" "$np" ok bench --max-size 1M --time-budget-ms 50
        run "$btl" "$np" fail pingpong --self-test-corrupt
        run "$btl" "$np" fail stress --self-test-corrupt
        run "$btl" "$np" abort abort
    done
done
exit $bad
