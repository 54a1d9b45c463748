#!/usr/bin/env bash
# Runs every benchmark of crates/vmm-core (each [[bench]] in its Cargo.toml) and writes
# BENCHMARKS.md and bench-plots/*.svg: the machine, the command, and per workload every
# system's min/median/max and ratios, all from this run (benches print `BENCH ...` and
# `GOAL ...` lines, see crates/vmm-core/benches/common/result.rs).
#
#   bash scripts/bench.sh                       # full size, ~10 minutes on 2 cores
#   BENCH_SCALE=tiny bash scripts/bench.sh      # every workload once, tiny (harness check)
#   BENCH_OUT=dir  BENCH_ONLY="launch exits"    # where to write; a subset of benches
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${BENCH_OUT:-$root}
mkdir -p "$out/bench-logs"
out=$(cd "$out" && pwd)
scale=${BENCH_SCALE:-full}
export BENCH_SCALE=$scale
per_bench_timeout=$([ "$scale" = tiny ] && echo 300 || echo 900)

benches=${BENCH_ONLY:-$(awk '/^\[\[bench\]\]/{b=1;next} b&&/^name *=/{gsub(/[" ]/,"");sub("name=","");print;b=0}' crates/vmm-core/Cargo.toml)}

echo "bench.sh: building (release)" >&2
cargo bench -p vmm-core --no-run >&2
cargo build --release -p vmm-core --example bench_report --example bare_runner >&2

start=$(date +%s)
failed=()
logs=()
for b in $benches; do
    log="$out/bench-logs/$b.log"
    echo "bench.sh: $b" >&2
    if timeout "$per_bench_timeout" cargo bench -q -p vmm-core --bench "$b" >"$log" 2>"$log.err"; then
        :
    else
        echo "bench.sh: $b FAILED (see $log.err)" >&2
        failed+=("$b")
    fi
    logs+=("$log")
done
elapsed=$(( $(date +%s) - start ))

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
kvm_mods=$(ls /sys/module | grep -E '^kvm' | tr '\n' ' ' || true)
kvm_dmesg=$( (dmesg 2>/dev/null || true) | grep -iE 'kvm|pvm' | tail -n 3 | sed 's/^\[[^]]*\] *//' | tr '\n' ';' || true)
cmd="bash scripts/bench.sh"
[ "$scale" = tiny ] && cmd="BENCH_SCALE=tiny $cmd"

{
    echo "# Benchmarks"
    echo
    echo "Written by \`$cmd\` on $(date -u '+%Y-%m-%d %H:%M UTC') in ${elapsed} s; every figure"
    echo "below comes from this one run (compared systems alternate round by round)."
    echo
    echo "| machine | |"
    echo "|---|---|"
    echo "| CPU | $cpu |"
    echo "| cores | $(nproc) |"
    echo "| kernel | $(uname -r) |"
    echo "| KVM | modules: ${kvm_mods:-none}${kvm_dmesg:+; dmesg: $kvm_dmesg} |"
    echo "| load average at the end | $(cut -d' ' -f1-3 /proc/loadavg) |"
    echo "| QEMU | $(qemu-system-x86_64 --version | head -n1) |"
    echo "| scale | $scale |"
    echo
    echo "Systems: **kvmbus** (\`kvmbus run\`), **bare** (a minimal kvm-ioctls exit loop on"
    echo "the same guest: the limit), **qemu** (QEMU with KVM, the same multiboot ELF). Ratios"
    echo "are of medians, against the first system of each metric. Raw logs: \`bench-logs/\`."
    echo
    if [ ${#failed[@]} -gt 0 ]; then
        echo "**Failed benches:** ${failed[*]} (see \`bench-logs/*.log.err\`)."
        echo
    fi
    target/release/examples/bench_report "$out" "${logs[@]}"
    echo
    cat docs/bench-goals.md
} >"$out/BENCHMARKS.md.tmp"
mv "$out/BENCHMARKS.md.tmp" "$out/BENCHMARKS.md"
echo "bench.sh: wrote $out/BENCHMARKS.md in ${elapsed} s" >&2
[ ${#failed[@]} -eq 0 ]
