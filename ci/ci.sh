#!/usr/bin/env bash
# Everything CI checks, in order. Runs as root on a fresh machine (rustup with stable and
# nightly); the xtask commands bootstrap the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
start=$(date +%s)
stage() { echo "ci: $1 ($(( $(date +%s) - start ))s elapsed)"; }

stage "fuzzing: every target for ${XDPWALL_FUZZ_SECS:-60} s"
cargo xtask fuzz --time "${XDPWALL_FUZZ_SECS:-60}"

stage "benchmark smoke run"
cargo xtask bench --mode both --quick
stage "NDR/PDR search smoke run"
cargo xtask bench --search --quick
stage "sets under traffic patterns smoke run (native, about a minute)"
cargo xtask bench --patterns --quick
stage "generator benchmark smoke run"
cargo xtask bench --generators --quick

# The host's kernel is covered by the test command below; the matrix boots the others.
stage "kernel matrix: Debian's 5.10, 6.1, 6.12 and 7.x kernels in QEMU"
cargo xtask vmtest --kernels bullseye,bookworm,trixie,trixie-backports

# Last, so its closing `tests: N passed, M failed` line is the run's closing line.
stage "tests (the README test command)"
cargo xtask test
