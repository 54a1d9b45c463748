#!/usr/bin/env bash
# The benchmark harness's test: every workload once at a tiny size (BENCH_SCALE=tiny)
# through scripts/bench.sh, then checks that it completed and its report is sane (every
# workload's table, numbers, goals, plots). It asserts nothing about speed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    echo "SKIP (no /dev/kvm): bench_test"
    exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
BENCH_SCALE=tiny BENCH_OUT="$out" bash scripts/bench.sh
md="$out/BENCHMARKS.md"
fail() { echo "bench_test: $*" >&2; exit 1; }
[ -s "$md" ] || fail "no BENCHMARKS.md"
grep -q '^| CPU | .\+ |$' "$md" || fail "no CPU model"
grep -q '^| kernel | .\+ |$' "$md" || fail "no kernel"
grep -q 'Failed benches' "$md" && fail "a bench failed"
for w in pio-exit cam-read irq hypercall exit-costs launch memory idle launch-steps; do
    grep -q "^### $w\$" "$md" || fail "no '$w' table"
done
# Every kvmbus launch row has a positive median (column 7 of the table).
awk -F'|' '/^\| kvmbus \| to-hello-exit /{ if ($7+0 <= 0) exit 1; found=1 } END { exit !found }' "$md" \
    || fail "no sane kvmbus launch figure"
grep -q '^### Goals$' "$md" || fail "no goals"
grep -Eq '\| (met|\*\*missed by [0-9.]+%\*\*) \|$' "$md" || fail "no goal outcome"
n=$(ls "$out"/bench-plots/*.svg | wc -l)
[ "$n" -ge 5 ] || fail "only $n plots"
grep -q '<svg' "$out"/bench-plots/launch-to-hello-exit.svg || fail "launch plot is not SVG"
grep -q '](bench-plots/launch-to-hello-exit.svg)' "$md" || fail "plot not linked"
echo "bench_test: ok ($n plots)"
