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

source scripts/interop-server.sh 24680 --bot-api 127.0.0.1:0
[ -n "$api_port" ] || { echo "interop: the Bot API did not start listening" >&2; exit 1; }

status=0
timeout 600 "$venv/bin/python" examples/interop/ptb_bot.py 127.0.0.1 "$port" "$work/key.pem" "$code" "$api_port" || status=$?
[ "$status" -eq 0 ] || interop_failed
exit "$status"
