#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a set time each (default 300 s):
#   bash scripts/fuzz.sh [seconds-per-target] [target...]
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Corpora live in
# fuzz/corpus/<target>, crashes in fuzz/artifacts/<target>, logs in $FUZZ_LOG_DIR
# (default /tmp/kvmbus-fuzz); the exit status is non-zero if any target found a crash.
# FUZZ_SANITIZER=none builds without AddressSanitizer (faster builds, fewer bugs seen).
# An empty corpus is seeded: config_toml from configs/*.toml, multiboot from the guest
# ELFs of an earlier `cargo build` (target/*/build/vmm-core-*/out/guests).
# Each target ends with one summary line:
#   == <target>: <seconds> s, <execs> execs, cov <cov>, ft <ft>, corpus <files>, crash <yes|no>
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
secs=${1:-300}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
san=(-s "${FUZZ_SANITIZER:-address}")
logs=${FUZZ_LOG_DIR:-/tmp/kvmbus-fuzz}
mkdir -p "$logs"
# One build of every target (cargo fuzz build takes at most one target name).
cargo +nightly fuzz build -O "${san[@]}"

seed() {
    local t=$1 dir=corpus/$1
    [ -n "$(ls -A "$dir" 2>/dev/null)" ] && return 0
    case $t in
        config_toml) cp "$root"/configs/*.toml "$dir"/ 2>/dev/null || true ;;
        multiboot)
            find "$root/target" -path '*/build/vmm-core-*/out/guests/*.elf' -size -64k \
                -exec cp {} "$dir"/ \; 2>/dev/null || true ;;
    esac
}

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    seed "$t"
    log="$logs/$t.log"
    echo "== $t: ${secs}s (log $log)"
    # Rebuilds what changed since the build above (a fix in a crate) outside the clock.
    cargo +nightly fuzz build -O "${san[@]}" "$t"
    start=$(date +%s)
    crash=no
    if ! cargo +nightly fuzz run -O "${san[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1; then
        echo "!! $t: crash, see fuzz/artifacts/$t and $log"
        crash=yes
        status=1
    fi
    took=$(($(date +%s) - start))
    # libFuzzer's own count of fuzzing seconds when it ran to the end.
    done_s=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    took=${done_s:-$took}
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    files=$(find "corpus/$t" -type f | wc -l)
    echo "== $t: ${took} s, ${execs:-?} execs, cov ${cov:-?}, ft ${ft:-?}, corpus $files, crash $crash"
done
exit $status
