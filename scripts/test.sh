#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests of every crate, with every
# feature (the Telegram API schema included). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo test --workspace --all-features "$@"
