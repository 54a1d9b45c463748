#!/usr/bin/env bash
# The test command: every crate's unit tests and the integration tests (tests/), which
# boot real guests on /dev/kvm (they print "SKIP (no /dev/kvm): <name>" without it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace -- --test-threads=2
# The benchmark harness, every workload once at a tiny size (not a speed test).
bash scripts/bench_test.sh
