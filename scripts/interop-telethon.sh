#!/usr/bin/env bash
# The interoperability test with a real third-party client: installs Telethon 1.45.0 from PyPI
# into a virtual environment (kept in the cache directory), starts a fresh echo server on a
# free loopback port with a temporary data directory, runs examples/interop/telethon_echo.py
# (the echo, every framing, files) and telethon_people.py (two users finding and seeing each
# other), telethon_groups.py and telethon_bots.py (@BotFather, a bot signed in with its token,
# buttons) against it with the server's printed public key, and stops the server. Exit status: the
# script's (non-zero on any exception or any warning Telethon logs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cache="${COLUMBA_CACHE:-$HOME/.cache/columba}"
mkdir -p "$cache"
venv="$cache/telethon-1.45.0"
if ! "$venv/bin/python" -c 'import sys, telethon; sys.exit(telethon.__version__ != "1.45.0")' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check telethon==1.45.0
fi

# The echo server exactly as the test command builds it (for the examples' integration tests):
# `cargo build` would resolve features without the dev-dependencies and compile RocksDB's C++
# and a dozen crates a second time, about 15 minutes on a fresh machine.
cargo test --workspace --all-features --no-run --quiet
server="${CARGO_TARGET_DIR:-target}/debug/echo-server"

work="$(mktemp -d)"
code=24680
"$server" --listen 127.0.0.1:0 --data "$work/data" --login-code "$code" >"$work/out" 2>"$work/log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 300); do
  grep -q '^listening on ' "$work/out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; echo "interop: the server exited" >&2; exit 1; }
  sleep 0.1
done
port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/out")"
[ -n "$port" ] || { echo "interop: the server did not start listening" >&2; exit 1; }
sed -n '/BEGIN RSA PUBLIC KEY/,/END RSA PUBLIC KEY/p' "$work/out" >"$work/key.pem"

status=0
for script in telethon_echo.py telethon_people.py telethon_groups.py telethon_bots.py; do
  timeout 600 "$venv/bin/python" "examples/interop/$script" 127.0.0.1 "$port" "$work/key.pem" "$code" || status=$?
  [ "$status" -eq 0 ] || break
done
if [ "$status" -ne 0 ]; then
  echo "interop: failed; the server's log follows" >&2
  tail -n 50 "$work/log" >&2
fi
exit "$status"
