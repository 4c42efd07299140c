"""Telethon 1.45.0 against the Columba echo server.

Usage: python telethon_echo.py HOST PORT PEM_FILE LOGIN_CODE

1. Telethon's own MTProto sender over every transport it ships (full, abridged,
   intermediate, obfuscated): a key exchange, `ping`,
   sign-in, a raw `messages.sendMessage` to @echo, and the echo's reply as a pushed update.
2. The high-level `TelegramClient`: sign-in, `get_me`, a message to @echo answered through an
   event handler, `get_messages`, a 3 MB file and a 15 MB file (big-file parts) sent to @echo
   and the echoed copies downloaded and compared, a photo (PNG) likewise, an edit and a delete.

The server must have been started with `--login-code LOGIN_CODE`. Fails (exit status 1) on
any exception, and on any warning or error Telethon logs (security errors, protocol errors,
messages it had to ignore).
"""

import asyncio
import hashlib
import logging
import os
import sys
import tempfile

from telethon import TelegramClient, events
from telethon.crypto import rsa
from telethon.network import (
    ConnectionTcpAbridged,
    ConnectionTcpFull,
    ConnectionTcpIntermediate,
    ConnectionTcpObfuscated,
    MTProtoSender,
)
from telethon.sessions import MemorySession
from telethon.tl import functions, types
from telethon.tl.alltlobjects import LAYER

from interop_common import finish, png_image, watch_warnings

ECHO_USER_ID = 100


TRANSPORTS = {
    "full": ConnectionTcpFull,
    "abridged": ConnectionTcpAbridged,
    "intermediate": ConnectionTcpIntermediate,
    "obfuscated": ConnectionTcpObfuscated,
}
# Not the padded intermediate framing: Telethon ships it only for MTProxy, and its reader
# strips `len % 4` bytes, assuming less than 4 bytes of padding where the spec allows 0-15.


class Loggers(dict):
    """What MTProtoSender takes as `loggers`: one logger per module name."""

    def __missing__(self, name):
        return logging.getLogger(name)


def client_for(host, port, **kwargs):
    session = MemorySession()
    session.set_dc(1, host, port)
    return TelegramClient(session, api_id=1, api_hash="0" * 32, **kwargs)


async def raw_sender(host, port, code, name, connection_class, phone):
    loggers = Loggers()
    updates = asyncio.Queue()
    sender = MTProtoSender(
        None,
        loggers=loggers,
        retries=3,
        delay=1,
        auto_reconnect=False,
        connect_timeout=10,
        updates_queue=updates,
    )
    await sender.connect(connection_class(host, port, 1, loggers=loggers))
    pong = await sender.send(functions.PingRequest(ping_id=0x5EED))
    assert pong.ping_id == 0x5EED, pong
    await sender.send(
        functions.InvokeWithLayerRequest(
            LAYER,
            functions.InitConnectionRequest(
                api_id=1,
                device_model="interop",
                system_version="1",
                app_version="1",
                system_lang_code="en",
                lang_pack="",
                lang_code="en",
                query=functions.help.GetConfigRequest(),
            ),
        )
    )
    sent = await sender.send(
        functions.auth.SendCodeRequest(phone, 1, "0" * 32, types.CodeSettings())
    )
    await sender.send(
        functions.auth.SignInRequest(phone, sent.phone_code_hash, phone_code=code)
    )
    resolved = await sender.send(functions.contacts.ResolveUsernameRequest("echo"))
    echo = next(u for u in resolved.users if u.id == ECHO_USER_ID)
    text = "raw hello over " + name
    result = await sender.send(
        functions.messages.SendMessageRequest(
            peer=types.InputPeerUser(echo.id, echo.access_hash), message=text
        )
    )
    assert isinstance(result, types.Updates), result
    # The sender queues the request's own result too; wait for the echo's message.
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        timeout = deadline - asyncio.get_running_loop().time()
        update = await asyncio.wait_for(updates.get(), max(timeout, 0.01))
        if getattr(update, "_self_outgoing", False):
            continue
        messages = [
            u.message for u in getattr(update, "updates", []) if isinstance(u, types.UpdateNewMessage)
        ]
        if any(not m.out and m.message == text for m in messages):
            break
    await sender.disconnect()
    print(f"{name}: key exchange, ping, sign-in, sendMessage and the echo's update")


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

    image = png_image(320, 200)
    with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
        f.write(image)
        path = f.name
    try:
        echoed = asyncio.get_running_loop().create_future()
        await client.send_file("@echo", path)
        reply = await asyncio.wait_for(echoed, 60)
        assert reply.photo is not None, reply
        size = reply.photo.sizes[-1]
        assert (size.w, size.h) == (320, 200), size
        got = await client.download_media(reply, file=bytes)
        assert got == image, (len(got), len(image))
        print("photo echoed and downloaded intact")
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
    watcher = watch_warnings()
    for index, (name, connection_class) in enumerate(TRANSPORTS.items()):
        asyncio.run(raw_sender(host, port, code, name, connection_class, f"1555010{index}"))
    asyncio.run(high_level(host, port, code))
    finish(watcher, "telethon interop")


if __name__ == "__main__":
    main()
