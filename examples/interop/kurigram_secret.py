"""Kurigram 2.2.26 (Pyrogram fork) + tg-secret 0.1.3 against the Columba echo server: secret chats.

Usage: python kurigram_secret.py HOST PORT PEM_FILE LOGIN_CODE

1. Alice and Bob sign in (fresh phones; auth.signUp if the server asks for it). Bob sets a
   username, Alice requests a secret chat to it, Bob accepts (tg-secret's on_request handler).
   Texts both ways (and a reply), a ~100 KiB document from Alice (Bob checks size, name, mime
   and the encrypted file's key fingerprint; tg-secret cannot download), Alice deletes a message
   (Bob sees the random_ids), flushes the history (Bob sees it), and closes the chat with
   history deletion (Bob sees the close, history_deleted=True).
2. Alice opens a secret chat with @echo: a text and a file come back the same, then 110 texts
   each awaiting its echo, over which @echo re-keys (tg-secret's own re-key threshold is set to
   1,000,000 with force_rekey_threshold so that only @echo starts exchanges; tg-secret accepts).

Also fails if a client is handed the same secret update (qts) twice: Kurigram dispatches the
updates of all its sessions, its upload session's included, so a server that pushed an update
to every session of a key (and not, as Telegram, to the key's most recent one) would show here.
tg-secret 0.1.3's boxed-vector reader bug is patched at start (see `fix_tg_secret_vectors`).

The server must have been started with `--login-code LOGIN_CODE`. Exit status 0 on success, 1 on
any failed check, timeout, exception, or any warning/error logged by Kurigram or tg-secret
(tg-secret's update handler runs inside Kurigram's dispatcher, which only logs its exceptions).
"""

import asyncio
import base64
import io
import logging
import os
import random
import sys
from pathlib import Path

import pyrogram
from pyrogram import Client, ContinuePropagation, raw
from pyrogram.handlers import RawUpdateHandler
from pyrogram.crypto import rsa as pyrogram_rsa
from pyrogram.raw.core import Bytes as TLBytes
from pyrogram.storage import SQLiteStorage, UpdateState
from hashlib import sha1

from tg_secret import ChatRequestResult, MessageMediaType, ParseMode, TelegramSecretClient
from tg_secret.client_adapters.pyrogram_adapter import PyrogramClientAdapter
from tg_secret.raw.vector import Vector as SecretVector

EVENT_TIMEOUT = 20  # seconds for any one awaited event
STEP_TIMEOUT = 90  # seconds for any one client call (Pyrogram retries up to 10 x 15 s itself)
ECHO_ROUNDS = 110
FILE_SIZE = 100 * 1024 + 5  # not a multiple of 16: tg-secret pads the last AES block
NO_REKEY = 1_000_000  # tg-secret's threshold (forced): only @echo starts key exchanges


class Failed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failed(what)


# --- a tg-secret 0.1.3 bug, patched -------------------------------------------------------

def fix_tg_secret_vectors():
    """tg-secret 0.1.3 writes every Vector boxed (0x1cb5c415, count, items: raw/vector.py:39-52)
    but its generated readers for `attributes` (decryptedMessageMediaDocument/Video/Audio of
    layers 45/143) and `random_ids` (decryptedMessageActionDeleteMessages/ReadMessages/
    ScreenshotMessages) call Vector.read directly, which reads the count first
    (raw/vector.py:26-36): the constructor id is taken for the count and the read fails
    (KeyError: 1), so it cannot read a document or a deletion, not even its own. Patched here:
    skip a leading vector id. (Entities are read through SecretTLObject.read, which consumes
    the id and then calls Vector.read: a count never equals the id, so that path is unchanged.)"""
    original = SecretVector.read.__func__

    def read(cls, data, read_func=None, *args):
        start = data.tell()
        if int.from_bytes(data.read(4), "little") != cls.ID:
            data.seek(start)
        return original(cls, data, read_func, *args)

    SecretVector.read = classmethod(read)


# --- the server's RSA key -------------------------------------------------------------------

def _der_read(data, pos):
    """One DER TLV at pos: (tag, value, next_pos)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    return tag, data[pos:pos + length], pos + length


def rsa_key_from_pem(pem):
    """(n, e) of a PEM 'RSA PUBLIC KEY' (PKCS#1) or 'PUBLIC KEY' (SubjectPublicKeyInfo)."""
    lines = [line.strip() for line in pem.decode().splitlines()]
    body = "".join(line for line in lines if line and not line.startswith("-----"))
    der = base64.b64decode(body)
    tag, seq, _ = _der_read(der, 0)
    check(tag == 0x30, "PEM: not a DER SEQUENCE")
    tag, first, after = _der_read(seq, 0)
    if tag == 0x30:  # SubjectPublicKeyInfo: AlgorithmIdentifier, BIT STRING(RSAPublicKey)
        tag, bits, _ = _der_read(seq, after)
        check(tag == 0x03, "PEM: no BIT STRING")
        tag, seq, _ = _der_read(bits[1:], 0)
        tag, first, after = _der_read(seq, 0)
    check(tag == 0x02, "PEM: no modulus INTEGER")
    tag, exponent, _ = _der_read(seq, after)
    check(tag == 0x02, "PEM: no exponent INTEGER")
    return int.from_bytes(first, "big"), int.from_bytes(exponent, "big")


def telegram_fingerprint(n, e):
    """MTProto's key fingerprint: the low 64 bits of SHA1(TL bytes n + TL bytes e), as Pyrogram
    keys its `server_public_keys` (a signed little-endian int64)."""
    n_bytes = n.to_bytes((n.bit_length() + 7) // 8, "big")
    e_bytes = e.to_bytes((e.bit_length() + 7) // 8, "big")
    digest = sha1(bytes(TLBytes(n_bytes)) + bytes(TLBytes(e_bytes))).digest()
    return int.from_bytes(digest[-8:], "little", signed=True)


def install_server_key(pem_path):
    with open(pem_path, "rb") as f:
        n, e = rsa_key_from_pem(f.read())
    # pyrogram.crypto.rsa.encrypt() returns .to_bytes(256): only 2048-bit keys work.
    check(n.bit_length() <= 2048, f"server key is {n.bit_length()} bits; Pyrogram needs 2048")
    fingerprint = telegram_fingerprint(n, e)
    pyrogram_rsa.server_public_keys[fingerprint] = pyrogram_rsa.PublicKey(m=n, e=e)
    return fingerprint


# --- Kurigram pointed at our server ---------------------------------------------------------

class LocalStorage(SQLiteStorage):
    """In-memory session storage whose server address is always HOST:PORT. Client.load_session
    writes 149.154.167.51:443 (DC 2) into a fresh session; these accessors ignore the writes.
    The DC id stays 2; the echo server answers help.getConfig for DCs 1..5 at its own address,
    so the media connection used for uploads (get_dc_option(2, is_media=True)) lands here too."""

    def __init__(self, name, host, port):
        super().__init__(name, workdir=Path("."), in_memory=True)
        self._host, self._port = host, port

    async def server_address(self, value=object):
        return self._host if value is object else None

    async def port(self, value=object):
        return self._port if value is object else None


def make_client(name, host, port):
    # workers=1: tg-secret needs its updates handled one after another, in order.
    return Client(
        name,
        api_id=1,
        api_hash="0" * 32,
        device_model=f"kurigram-{name}",
        storage_engine=LocalStorage(name, host, port),
        workers=1,
    )


async def signed_in(client, phone, code, first_name, last_name):
    """What Client.start() does, without its interactive authorize(): connect (key exchange,
    ping, initConnection(help.getConfig)), auth.sendCode, auth.signIn (auth.signUp when the
    server answers authorizationSignUpRequired), updates.getState, users.getFullUser(self),
    then start the dispatcher."""
    await client.connect()
    sent = await client.send_code(phone)
    user = await client.sign_in(phone, sent.phone_code_hash, code)
    if not isinstance(user, pyrogram.types.User):
        terms = user if isinstance(user, pyrogram.types.TermsOfService) else None
        user = await client.sign_up(phone, sent.phone_code_hash, first_name, last_name)
        if terms is not None:
            await client.accept_terms_of_service(terms.id)
    state = await client.invoke(raw.functions.updates.GetState())
    await client.storage.set_update_state(UpdateState(0, state.pts, state.qts, state.date, state.seq))
    client.me = await client.get_me()
    await client.initialize()
    return client.me


# --- one account: a Kurigram client, its tg-secret client, and what they saw ----------------

class Account:
    def __init__(self, name, host, port):
        self.name = name
        self.client = make_client(name, host, port)
        self.secret = TelegramSecretClient(
            PyrogramClientAdapter(self.client),
            session_name=name,
            in_memory=True,
            rekey_threshold=NO_REKEY,
            force_rekey_threshold=True,
        )
        self.requests = asyncio.Queue()
        self.ready = asyncio.Queue()
        self.messages = asyncio.Queue()
        self.deleted = asyncio.Queue()
        self.flushed = asyncio.Queue()
        self.closed = asyncio.Queue()
        self.accept = True
        # Counts the key exchanges tg-secret starts itself (it must start none: see NO_REKEY).
        self.own_rekeys = 0
        original_rekey = self.secret.rekey

        async def counting_rekey(chat_id):
            self.own_rekeys += 1
            return await original_rekey(chat_id)

        self.secret.rekey = counting_rekey

        # Every qts dispatched more than once (Kurigram dispatches the updates of every session
        # of the client, its media session's included: pyrogram/session/session.py:443-445).
        self.seen_qts = set()
        self.duplicate_qts = []

        async def watch_qts(_, update, __, ___):
            if isinstance(update, raw.types.UpdateNewEncryptedMessage):
                if update.qts in self.seen_qts:
                    self.duplicate_qts.append(update.qts)
                self.seen_qts.add(update.qts)
            raise ContinuePropagation

        self.client.add_handler(RawUpdateHandler(watch_qts), group=-1)  # before tg-secret's (0)

        @self.secret.on_request
        async def on_request(chat):
            self.requests.put_nowait(chat)
            return ChatRequestResult.ACCEPT if self.accept else ChatRequestResult.IGNORE

        @self.secret.on_chat_ready
        async def on_ready(chat):
            self.ready.put_nowait(chat)

        @self.secret.on_new_message
        async def on_message(message):
            self.messages.put_nowait(message)

        @self.secret.on_messages_deleted
        async def on_deleted(chat, random_ids):
            self.deleted.put_nowait((chat, list(random_ids)))

        @self.secret.on_history_deleted
        async def on_flushed(chat):
            self.flushed.put_nowait(chat)

        @self.secret.on_chat_deleted
        async def on_closed(chat, history_deleted):
            self.closed.put_nowait((chat, history_deleted))

    async def start(self, phone, code, first_name, last_name=""):
        await self.secret.start()  # opens tg-secret's storage before any update can arrive
        self.me = await step(signed_in(self.client, phone, code, first_name, last_name), f"{self.name} sign-in")
        return self.me

    def lock(self):
        """The one dispatcher worker's lock: tg-secret's update handling runs under it, so a
        send made under it cannot interleave with an incoming update's handling (sequence
        numbers, key switches, and a request's chat stored before its updateEncryption)."""
        return self.client.dispatcher.locks_list[0]

    async def call(self, coroutine, what):
        async with self.lock():
            return await step(coroutine, f"{self.name}: {what}")

    async def stop(self):
        try:
            if self.client.is_initialized:
                await asyncio.wait_for(self.client.stop(), 30)
            elif self.client.is_connected:
                await asyncio.wait_for(self.client.disconnect(), 30)
        finally:
            if self.secret._storage.conn is not None:
                await self.secret.stop()


async def step(awaitable, what, timeout=STEP_TIMEOUT):
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise Failed(f"{what}: no answer within {timeout} s") from None


async def next_item(queue, what, timeout=EVENT_TIMEOUT):
    try:
        return await asyncio.wait_for(queue.get(), timeout)
    except asyncio.TimeoutError:
        raise Failed(f"no {what} within {timeout} s") from None


async def ready_chat(account, chat_id, what):
    while True:
        chat = await next_item(account.ready, what)
        if chat.id == chat_id:
            return chat


async def message_in(account, chat_id, what):
    while True:
        message = await next_item(account.messages, what)
        if message.chat.id == chat_id:
            return message
        print(f"({account.name}: a message in another chat {message.chat.id}, skipped)")


def document_info(message):
    """(size, file name, mime type) of a received document, from the decrypted media."""
    media = message._media  # tg-secret keeps the DecryptedMessageMedia* here (no public accessor)
    name = getattr(media, "file_name", None)
    for attribute in getattr(media, "attributes", None) or []:
        name = getattr(attribute, "file_name", name)
    return media.size, name, media.mime_type


async def stored_chat(account, chat_id):
    return await account.secret._storage.get_chat(chat_id)


# --- the tests ------------------------------------------------------------------------------

async def people(alice, bob):
    username = f"kuri_bob_{random.randrange(10**8):08d}"
    check(await step(bob.client.invoke(raw.functions.account.UpdateUsername(username=username)), "bob: account.updateUsername"), "username not set")
    peer = await step(alice.client.resolve_peer(username), "alice: contacts.resolveUsername")
    check(getattr(peer, "user_id", None) == bob.me.id, f"@{username} resolved to {peer}")

    # Request (Alice) and accept (Bob, on_request -> ACCEPT).
    chat = await alice.call(alice.secret.request_encryption(username), "requestEncryption")
    check(chat is not None, "requestEncryption answered encryptedChatDiscarded")
    check(chat.peer_id == bob.me.id and chat.originator, f"alice's chat {vars(chat)}")
    requested = await next_item(bob.requests, "secret chat request for Bob")
    check(requested.id == chat.id and requested.peer_id == alice.me.id, f"bob's request {vars(requested)}")
    bob_chat = await ready_chat(bob, chat.id, "ready chat on Bob's side")
    alice_chat = await ready_chat(alice, chat.id, "ready chat on Alice's side")
    a_key, b_key = await stored_chat(alice, chat.id), await stored_chat(bob, chat.id)
    check(a_key.key == b_key.key and a_key.key_fp == b_key.key_fp, "the two sides' keys differ")
    print(f"secret chat {chat.id} between {alice.me.id} and {bob.me.id} is ready (key fp {a_key.key_fp})")

    # Texts both ways, and a reply.
    sent = await alice.call(alice_chat.send_message("hello Bob, secretly", parse_mode=ParseMode.DISABLED), "sendEncrypted")
    got = await message_in(bob, chat.id, "Alice's text on Bob's side")
    check((got.text, got.id, got.from_id) == ("hello Bob, secretly", sent.id, alice.me.id), f"bob got {vars(got)}")
    answer = await bob.call(got.reply("hello Alice", parse_mode=ParseMode.DISABLED), "sendEncrypted (reply)")
    got_back = await message_in(alice, chat.id, "Bob's reply on Alice's side")
    check((got_back.text, got_back.id, got_back.reply_to_id) == ("hello Alice", answer.id, sent.id), f"alice got {vars(got_back)}")
    for i in range(3):
        text = f"alice #{i} ✓ ünïcode"
        await alice.call(alice_chat.send_message(text, parse_mode=ParseMode.DISABLED), "sendEncrypted")
        got = await message_in(bob, chat.id, f"Alice's text #{i}")
        check(got.text == text, f"bob got {got.text!r}, not {text!r}")
        text = f"bob #{i}"
        await bob.call(bob_chat.send_message(text, parse_mode=ParseMode.DISABLED), "sendEncrypted")
        got = await message_in(alice, chat.id, f"Bob's text #{i}")
        check(got.text == text, f"alice got {got.text!r}, not {text!r}")
    print("texts both ways, and a reply")

    # A document: upload.saveFilePart (media connection), messages.sendEncryptedFile.
    data = os.urandom(FILE_SIZE)
    sent_file = await alice.call(
        alice.secret.send_document(chat.id, io.BytesIO(data), caption="a file", file_name="random.bin"),
        "sendEncryptedFile",
    )
    check(sent_file._file is not None and sent_file._file.size >= FILE_SIZE, f"sentEncryptedFile file {sent_file._file}")
    got = await message_in(bob, chat.id, "Alice's document on Bob's side")
    check(got.media == MessageMediaType.DOCUMENT, f"bob's message media {got.media} ({got._media})")
    check(document_info(got) == (FILE_SIZE, "random.bin", "application/octet-stream"), f"document {document_info(got)}")
    check(got.text == "a file", f"caption {got.text!r}")
    # tg-secret already checked file.key_fingerprint against the key and iv in the message.
    check(got._file is not None and got._file.id == sent_file._file.id, f"encrypted file {got._file} vs {sent_file._file}")
    check(got._file.size == sent_file._file.size and got._file.size % 16 == 0, f"encrypted file size {got._file.size}")
    print(f"document of {FILE_SIZE} bytes: size, name, mime and key fingerprint as sent ({got._file})")

    # Delete a message (DecryptedMessageActionDeleteMessages), flush the history.
    await alice.call(alice.secret.delete_messages(chat.id, sent.id), "sendEncryptedService (delete)")
    deleted_chat, ids = await next_item(bob.deleted, "delete event on Bob's side")
    check(deleted_chat.id == chat.id and ids == [sent.id], f"deleted {ids} in {deleted_chat.id}")
    await alice.call(alice.secret.delete_chat_history(chat.id), "sendEncryptedService (flush)")
    flushed = await next_item(bob.flushed, "history flush on Bob's side")
    check(flushed.id == chat.id, f"flushed chat {flushed.id}")
    print("message deletion and history flush seen by Bob")

    # Close with history deletion: messages.discardEncryption(delete_history=True).
    await alice.call(alice.secret.discard_chat(chat.id, delete_history=True), "discardEncryption")
    closed_chat, history_deleted = await next_item(bob.closed, "chat close on Bob's side")
    check(closed_chat.id == chat.id and history_deleted is True, f"closed {closed_chat.id}, history_deleted={history_deleted}")
    check(await stored_chat(bob, chat.id) is None and await stored_chat(alice, chat.id) is None, "a closed chat is still stored")
    print("chat closed with history deletion, seen by Bob")


async def echo(alice):
    peer = await step(alice.client.resolve_peer("echo"), "alice: contacts.resolveUsername(echo)")
    echo_id = getattr(peer, "user_id", None)
    check(echo_id is not None, f"@echo resolved to {peer}")
    chat = await alice.call(alice.secret.request_encryption("echo"), "requestEncryption (@echo)")
    check(chat is not None, "@echo's chat was discarded at once")
    check(chat.peer_id == echo_id, f"chat peer {chat.peer_id}, @echo is {echo_id}")
    alice_chat = await ready_chat(alice, chat.id, "@echo accepting the secret chat")
    print(f"secret chat {chat.id} with @echo ({echo_id}) is ready")

    async def round_trip(text):
        sent = await alice.call(alice_chat.send_message(text, parse_mode=ParseMode.DISABLED), "sendEncrypted (@echo)")
        got = await message_in(alice, chat.id, f"@echo's answer to {text!r}")
        check(got.text == text and got.from_id == echo_id, f"@echo answered {got.text!r} from {got.from_id} to {text!r}")
        check(got.id != sent.id, "@echo's answer has the sent random_id")
        return got

    await round_trip("hello echo, secretly")
    print("text echoed")

    data = os.urandom(FILE_SIZE)
    sent_file = await alice.call(
        alice.secret.send_document(chat.id, io.BytesIO(data), caption="echo this", file_name="random.bin"),
        "sendEncryptedFile (@echo)",
    )
    got = await message_in(alice, chat.id, "@echo's file")
    check(got.media == MessageMediaType.DOCUMENT, f"@echo's message media {got.media} ({got._media})")
    check(document_info(got) == (FILE_SIZE, "random.bin", "application/octet-stream"), f"echoed document {document_info(got)}")
    check(got._file is not None and got._file.size == sent_file._file.size, f"echoed file {got._file} vs {sent_file._file}")
    print(f"file echoed (caption {got.text!r}, {got._file})")

    fingerprints = [(await stored_chat(alice, chat.id)).key_fp]
    for i in range(ECHO_ROUNDS):
        await round_trip(f"echo round {i}")
        fp = (await stored_chat(alice, chat.id)).key_fp
        if fp != fingerprints[-1]:
            print(f"  key replaced after round {i}: {fingerprints[-1]} -> {fp}")
            fingerprints.append(fp)
    # A re-key may be between acceptKey and commitKey: wait for it to finish.
    for _ in range(EVENT_TIMEOUT * 10):
        stored = await stored_chat(alice, chat.id)
        if stored.exchange_id is None:
            break
        await asyncio.sleep(0.1)
    else:
        raise Failed(f"a key exchange is still open after {EVENT_TIMEOUT} s: {stored.exchange_id}")
    check(alice.own_rekeys == 0, f"tg-secret started {alice.own_rekeys} key exchange(s) of its own")
    check(len(fingerprints) >= 2, f"no re-key in {ECHO_ROUNDS} rounds (key fp stayed {fingerprints[0]})")
    await round_trip("after the re-key")
    print(f"{ECHO_ROUNDS} texts echoed; @echo re-keyed {len(fingerprints) - 1} time(s), tg-secret accepted")


class Watcher(logging.Handler):
    """Keeps every warning or error logged (Kurigram logs, and does not raise, the exceptions
    of update handlers, tg-secret's included; asyncio logs those of handler tasks)."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(self.format(record))


async def run(host, port, code):
    alice = Account("alice", host, port)
    bob = Account("bob", host, port)
    try:
        base = random.randrange(10**6)
        # Digits only: Kurigram sends auth.sendCode the number as given but strips it to digits
        # for auth.signIn (and strips " +" for auth.signUp).
        await alice.start(f"1555{base:06d}", code, "Alice", "Kuri")
        await bob.start(f"1556{base:06d}", code, "Bob", "Kuri")
        print(f"signed in: alice {alice.me.id}, bob {bob.me.id}")
        await people(alice, bob)
        await echo(alice)
        for account in (alice, bob):
            check(
                not account.duplicate_qts,
                f"{account.name} was handed {len(account.duplicate_qts)} secret update(s) twice "
                f"(qts {account.duplicate_qts[:5]}...): an update went to more than one session "
                "of the key",
            )
    finally:
        for account in (alice, bob):
            try:
                await account.stop()
            except Exception as e:  # noqa: BLE001 - reported, the run's result stands
                print(f"({account.name}: stopping failed: {e!r})")


def main():
    if len(sys.argv) != 5:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    host, port, pem_path, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    logging.basicConfig(level=logging.WARNING)
    watcher = Watcher()
    logging.getLogger().addHandler(watcher)
    try:
        fix_tg_secret_vectors()
        fingerprint = install_server_key(pem_path)
        print(f"server key fingerprint {fingerprint}; Kurigram {pyrogram.__version__}")
        asyncio.run(run(host, port, code))
    except Failed as e:
        print(f"kurigram secret interop: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001
        print(f"kurigram secret interop: FAILED with {type(e).__name__}: {e}", file=sys.stderr)
        raise SystemExit(1) from e
    if watcher.records:
        print("Kurigram/tg-secret logged warnings or errors:", *watcher.records, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print("kurigram secret interop: all passed")


if __name__ == "__main__":
    main()
