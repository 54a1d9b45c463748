#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, run and test kvmbus:
# gcc/binutils (the built-in guests), QEMU (side-by-side runs), pciutils (lspci checks
# of PCI config dumps), prometheus (promtool and a real server scraping kvmbus), tmux
# (driving the dashboard as a person does), acpica-tools (iasl decodes the ACPI tables in
# a test), lld (links kvmbus with its hot code packed, see crates/vmm-core/build.rs).
# Idempotent; needs root for apt-get.
set -euo pipefail
pkgs=(gcc binutils lld qemu-system-x86 pciutils prometheus tmux curl acpica-tools)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required" >&2; exit 1; }
