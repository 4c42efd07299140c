#!/usr/bin/env bash
# The Bot API interoperability test: installs python-telegram-bot 22.8 (with its webhook
# server) and Telethon 1.45.0 from PyPI into a virtual environment (kept in the cache
# directory), starts a fresh echo server with its Bot API front on free loopback ports, and
# runs examples/interop/ptb_bot.py: a bot made with @BotFather, run by an unmodified
# python-telegram-bot Application with polling and then with a webhook, talked to by a
# Telethon user. Exit status: the script's (non-zero on any exception or warning).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cache="${COLUMBA_CACHE:-$HOME/.cache/columba}"
mkdir -p "$cache"
venv="$cache/ptb-22.8"
if ! "$venv/bin/python" -c 'import sys, telegram, telethon, tornado; sys.exit(telegram.__version__ != "22.8" or telethon.__version__ != "1.45.0")' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "python-telegram-bot[webhooks]==22.8" telethon==1.45.0
fi

# The echo server as the test command builds it (see interop-telethon.sh).
cargo test --workspace --all-features --no-run --quiet
server="${CARGO_TARGET_DIR:-target}/debug/echo-server"

work="$(mktemp -d)"
code=24680
"$server" --listen 127.0.0.1:0 --data "$work/data" --login-code "$code" --bot-api 127.0.0.1:0 \
  >"$work/out" 2>"$work/log" &
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
api_port="$(sed -n 's/^bot api listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/out")"
[ -n "$port" ] && [ -n "$api_port" ] || { echo "interop: the server did not start listening" >&2; exit 1; }
sed -n '/BEGIN RSA PUBLIC KEY/,/END RSA PUBLIC KEY/p' "$work/out" >"$work/key.pem"

status=0
timeout 600 "$venv/bin/python" examples/interop/ptb_bot.py 127.0.0.1 "$port" "$work/key.pem" "$code" "$api_port" || status=$?
if [ "$status" -ne 0 ]; then
  echo "interop: failed; the server's log follows" >&2
  tail -n 50 "$work/log" >&2
fi
exit "$status"
