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

source scripts/interop-server.sh 24680

status=0
for script in telethon_echo.py telethon_people.py telethon_groups.py telethon_bots.py; do
  timeout 600 "$venv/bin/python" "examples/interop/$script" 127.0.0.1 "$port" "$work/key.pem" "$code" || status=$?
  [ "$status" -eq 0 ] || break
done
[ "$status" -eq 0 ] || interop_failed
exit "$status"
