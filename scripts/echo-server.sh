#!/usr/bin/env bash
# Starts the example echo server (installs what it needs first). Extra arguments go to the
# server, for example: scripts/echo-server.sh --listen 127.0.0.1:4430
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo run --release -p columba-examples --bin echo-server -- "$@"
