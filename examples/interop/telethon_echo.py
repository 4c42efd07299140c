"""Telethon against the Columba echo server.

Usage: python telethon_echo.py HOST PORT PEM_FILE LOGIN_CODE

Fails (exit status 1) on any exception, and on any warning or error Telethon logs.
"""

import asyncio
import hashlib
import logging
import os
import sys
import tempfile

from telethon import TelegramClient, events
from telethon.crypto import rsa
from telethon.sessions import MemorySession


class FailOnWarnings(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(self.format(record))


def client_for(host, port, **kwargs):
    session = MemorySession()
    session.set_dc(1, host, port)
    return TelegramClient(session, api_id=1, api_hash="0" * 32, **kwargs)


async def high_level(host, port, code):
    client = client_for(host, port)
    await client.connect()
    phone = "+15550001"
    sent = await client.send_code_request(phone)
    me = await client.sign_in(phone, code, phone_code_hash=sent.phone_code_hash)
    print("signed in as", me.id, me.first_name)
    again = await client.get_me()
    assert again.id == me.id, (again, me)

    echoed = asyncio.get_running_loop().create_future()

    @client.on(events.NewMessage(incoming=True))
    async def on_message(event):
        if not echoed.done():
            echoed.set_result(event.message)

    sent_message = await client.send_message("@echo", "hello, echo")
    reply = await asyncio.wait_for(echoed, 20)
    assert reply.text == "hello, echo", reply
    assert reply.sender_id == 100, reply.sender_id
    print("echo received:", reply.id, reply.text)

    history = await client.get_messages("@echo", limit=10)
    texts = [m.text for m in history]
    assert texts[:2] == ["hello, echo", "hello, echo"], texts
    print("history:", [(m.id, m.out, m.text) for m in history])

    for size in (3 * 1024 * 1024, 15 * 1024 * 1024):
        data = os.urandom(size)
        with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
            f.write(data)
            path = f.name
        try:
            loop = asyncio.get_running_loop()
            echoed = loop.create_future()
            await client.send_file("@echo", path, force_document=True)
            reply = await asyncio.wait_for(echoed, 60)
            assert reply.media is not None, reply
            got = await client.download_media(reply, file=bytes)
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), (len(got), size)
            print("file of", size, "bytes echoed and downloaded intact")
        finally:
            os.unlink(path)

    edited = await client.edit_message("@echo", sent_message, "hello, edited")
    assert edited.text == "hello, edited", edited
    await client.delete_messages("@echo", [sent_message.id], revoke=True)
    history = await client.get_messages("@echo", ids=[sent_message.id])
    assert history == [None], history
    print("edit and delete done")
    await client.disconnect()


def main():
    host, port, pem_path, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(pem_path, "rb") as f:
        rsa.add_key(f.read(), old=False)
    logging.basicConfig(level=logging.WARNING)
    watcher = FailOnWarnings()
    logging.getLogger().addHandler(watcher)
    asyncio.run(high_level(host, port, code))
    if watcher.records:
        print("Telethon logged warnings or errors:", *watcher.records, sep="\n  ")
        sys.exit(1)
    print("telethon interop: all passed")


if __name__ == "__main__":
    main()
