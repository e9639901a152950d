#!/usr/bin/env bash
# Everything CI checks, in order. Runs as root on a fresh machine (rustup with stable and
# nightly); the xtask commands bootstrap the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
start=$(date +%s)
stage() { echo "ci: $1 ($(( $(date +%s) - start ))s elapsed)"; }

stage "tests (the README test command)"
cargo xtask test

stage "benchmark smoke run"
cargo xtask bench --mode both --quick

stage "done"
