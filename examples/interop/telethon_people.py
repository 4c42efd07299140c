"""Telethon 1.45.0 against the Columba echo server: two people find and see each other.

Usage: python telethon_people.py HOST PORT PEM_FILE LOGIN_CODE

Alice and Bob sign in on their own clients. Alice sets a username and a profile; Bob imports
her phone number (`contacts.importContacts`) and finds her with `get_entity("+...")`, Alice
finds Bob by username. They exchange messages (each seen as an event by the other), with a
reply (shown against each side's own copy) and a forward (with its origin), a pin (seen by
both, with its service message) and a reaction (seen by the other side), Bob's
read receipt reaches Alice, Alice's typing and online status reach Bob (who has her as a contact),
Alice uploads a profile photo that Bob downloads, both list their dialogs, and Alice signs in
on a second client, sees two authorizations and resets the other one, whose client is then
logged out. Contact search, blocking and username checks are exercised on the way. Last,
Carol's client believes it is on DC 2 (as Pyrogram-family clients do): it uploads a file and
downloads the echoed copy from DC 1 through an exported authorization.

The server must have been started with `--login-code LOGIN_CODE`. Fails (exit status 1) on
any exception, and on any warning or error Telethon logs.
"""

import asyncio
import os
import sys
import tempfile

from telethon import TelegramClient, errors, events
from telethon.crypto import rsa
from telethon.sessions import MemorySession
from telethon.tl import functions, types

from interop_common import finish, png_image, watch_warnings

ALICE = "+15550201"
BOB = "+15550202"
CAROL = "+15550203"


async def signed_in(host, port, code, phone, device):
    session = MemorySession()
    session.set_dc(1, host, port)
    client = TelegramClient(session, api_id=1, api_hash="0" * 32, device_model=device)
    await client.connect()
    sent = await client.send_code_request(phone)
    await client.sign_in(phone, code, phone_code_hash=sent.phone_code_hash)
    return client


async def next_event(future, what):
    try:
        return await asyncio.wait_for(future, 20)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} within 20 s") from None


async def people(host, port, code):
    alice = await signed_in(host, port, code, ALICE, "alice-pc")
    bob = await signed_in(host, port, code, BOB, "bob-phone")
    loop = asyncio.get_running_loop()

    # Alice's profile: username (checked first), names, about.
    assert await alice(functions.account.CheckUsernameRequest("alice_columba"))
    me = await alice(functions.account.UpdateUsernameRequest("alice_columba"))
    assert me.username == "alice_columba", me
    try:
        await bob(functions.account.UpdateUsernameRequest("ALICE_columba"))
        raise AssertionError("a username taken in another case was accepted")
    except errors.UsernameOccupiedError:
        pass
    me = await alice(
        functions.account.UpdateProfileRequest(first_name="Alice", last_name="Liddell", about="Down the hole")
    )
    assert (me.first_name, me.last_name) == ("Alice", "Liddell"), me
    await bob(functions.account.UpdateUsernameRequest("bob_columba"))
    print("profiles set")

    # Bob finds Alice by phone: import, then get_entity("+...") through the contact list.
    imported = await bob(
        functions.contacts.ImportContactsRequest(
            [types.InputPhoneContact(client_id=42, phone=ALICE, first_name="Ally", last_name="")]
        )
    )
    assert [(c.client_id, c.user_id) for c in imported.imported] == [(42, imported.users[0].id)], imported
    alice_for_bob = await bob.get_entity(ALICE)
    assert alice_for_bob.username == "alice_columba", alice_for_bob
    assert alice_for_bob.contact and not alice_for_bob.mutual_contact, alice_for_bob
    full = await bob(functions.users.GetFullUserRequest(alice_for_bob))
    assert full.full_user.about == "Down the hole", full.full_user
    # Alice finds Bob by username, and by a search of his name's prefix.
    bob_for_alice = await alice.get_entity("@bob_columba")
    found = await alice(functions.contacts.SearchRequest(q="bob_col", limit=10))
    assert any(getattr(p, "user_id", None) == bob_for_alice.id for p in found.results), found
    print("found each other:", alice_for_bob.id, bob_for_alice.id)

    # Messages both ways, each seen by the other as an event; Bob's read reaches Alice.
    got_by_bob = loop.create_future()
    got_by_alice = loop.create_future()
    read_by_bob = loop.create_future()

    @bob.on(events.NewMessage(incoming=True))
    async def bob_got(event):
        if not got_by_bob.done():
            got_by_bob.set_result(event.message)

    @alice.on(events.NewMessage(incoming=True))
    async def alice_got(event):
        if not got_by_alice.done():
            got_by_alice.set_result(event.message)

    @alice.on(events.MessageRead(inbox=False))
    async def alice_read(event):
        if not read_by_bob.done():
            read_by_bob.set_result(event.max_id)

    sent = await alice.send_message(bob_for_alice, "hello Bob")
    message = await next_event(got_by_bob, "message for Bob")
    assert message.text == "hello Bob" and message.sender_id == alice_for_bob.id, message
    await bob.send_read_acknowledge(alice_for_bob, message)
    max_id = await next_event(read_by_bob, "read receipt for Alice")
    assert max_id >= sent.id, (max_id, sent.id)
    # Bob answers as a reply: each side sees it as a reply to its own copy of Alice's message.
    reply = await bob.send_message(alice_for_bob, "hello Alice", reply_to=message.id)
    assert reply.reply_to_msg_id == message.id, reply
    message = await next_event(got_by_alice, "message for Alice")
    assert message.text == "hello Alice", message
    assert message.reply_to_msg_id == sent.id, (message.reply_to_msg_id, sent.id)
    print("messages, a reply and a read receipt exchanged")

    # Alice forwards Bob's reply back to him: he sees it as a forward of his own message.
    forwarded_to_bob = loop.create_future()

    @bob.on(events.NewMessage(incoming=True))
    async def bob_got_forward(event):
        if event.message.fwd_from is not None and not forwarded_to_bob.done():
            forwarded_to_bob.set_result(event.message)

    await alice.forward_messages(bob_for_alice, message)
    forward = await next_event(forwarded_to_bob, "forward for Bob")
    assert forward.text == "hello Alice", forward
    assert forward.fwd_from.from_id.user_id == bob_for_alice.id, forward.fwd_from
    print("forward seen with its origin")

    # Alice pins Bob's reply for both: Bob is told and sees it pinned, the pin is recorded by
    # a service message, and unpinning everything clears it.
    pinned_for_bob = loop.create_future()

    @bob.on(events.Raw(types.UpdatePinnedMessages))
    async def bob_pinned(update):
        if update.pinned and not pinned_for_bob.done():
            pinned_for_bob.set_result(update)

    service = await alice.pin_message(bob_for_alice, message.id)
    assert isinstance(service.action, types.MessageActionPinMessage), service
    assert service.reply_to_msg_id == message.id, service
    update = await next_event(pinned_for_bob, "pin for Bob")
    assert update.messages == [reply.id], (update.messages, reply.id)
    full = await bob(functions.users.GetFullUserRequest(alice_for_bob))
    assert full.full_user.pinned_msg_id == reply.id, full.full_user
    pinned = await bob.get_messages(alice_for_bob, filter=types.InputMessagesFilterPinned())
    assert [m.id for m in pinned] == [reply.id], pinned
    [mine] = await alice.get_messages(bob_for_alice, ids=[message.id])
    assert mine.pinned, mine
    await alice.unpin_message(bob_for_alice)
    full = await bob(functions.users.GetFullUserRequest(alice_for_bob))
    assert full.full_user.pinned_msg_id is None, full.full_user
    print("pin seen by both, recorded by a service message, and cleared")

    # Bob reacts to Alice's first message: Alice is told, both copies carry it, one reaction
    # per user, and taking it back twice is refused the second time.
    reacted = loop.create_future()

    @alice.on(events.Raw(types.UpdateMessageReactions))
    async def alice_reaction(update):
        if not reacted.done():
            reacted.set_result(update)

    bobs_copy = reply.reply_to_msg_id
    await bob(functions.messages.SendReactionRequest(alice_for_bob, bobs_copy, reaction=[types.ReactionEmoji("👍")]))
    update = await next_event(reacted, "reaction for Alice")
    assert update.msg_id == sent.id, (update.msg_id, sent.id)
    [count] = update.reactions.results
    assert (count.reaction.emoticon, count.count, count.chosen_order) == ("👍", 1, None), count
    await bob(functions.messages.SendReactionRequest(alice_for_bob, bobs_copy, reaction=[types.ReactionEmoji("🔥")]))
    [mine] = await alice.get_messages(bob_for_alice, ids=[sent.id])
    assert [(c.reaction.emoticon, c.count) for c in mine.reactions.results] == [("🔥", 1)], mine.reactions
    [theirs] = await bob.get_messages(alice_for_bob, ids=[bobs_copy])
    assert theirs.reactions.results[0].chosen_order == 0, theirs.reactions
    await bob(functions.messages.SendReactionRequest(alice_for_bob, bobs_copy, reaction=[]))
    try:
        await bob(functions.messages.SendReactionRequest(alice_for_bob, bobs_copy, reaction=[]))
        raise AssertionError("taking back no reaction was accepted")
    except errors.MessageNotModifiedError:
        pass
    [mine] = await alice.get_messages(bob_for_alice, ids=[sent.id])
    assert mine.reactions is None, mine.reactions
    print("reaction seen by the other side, replaced and taken back")

    # Alice types: Bob sees it.
    typing = loop.create_future()

    @bob.on(events.UserUpdate)
    async def bob_typing(event):
        if event.user_id == alice_for_bob.id and event.typing and not typing.done():
            typing.set_result(True)

    await alice(functions.messages.SetTypingRequest(bob_for_alice, types.SendMessageTypingAction()))
    await next_event(typing, "Alice's typing for Bob")
    print("typing seen")

    # Alice comes online: Bob, who has her as a contact, is told.
    online = loop.create_future()

    @bob.on(events.UserUpdate)
    async def bob_status(event):
        if event.user_id == alice_for_bob.id and event.online and not online.done():
            online.set_result(True)

    await alice(functions.account.UpdateStatusRequest(offline=False))
    await next_event(online, "Alice's status for Bob")
    statuses = await bob(functions.contacts.GetStatusesRequest())
    assert any(
        s.user_id == alice_for_bob.id and isinstance(s.status, types.UserStatusOnline) for s in statuses
    ), statuses
    print("online status seen")

    # A profile photo, uploaded by Alice and downloaded by Bob.
    image = png_image(160, 120)
    with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
        f.write(image)
        path = f.name
    try:
        uploaded = await alice(functions.photos.UploadProfilePhotoRequest(file=await alice.upload_file(path)))
        size = uploaded.photo.sizes[-1]
        assert (size.w, size.h) == (160, 120), size
    finally:
        os.unlink(path)
    alice_for_bob = await bob.get_entity(alice_for_bob.id)
    assert alice_for_bob.photo is not None, alice_for_bob
    got = await bob.download_profile_photo(alice_for_bob, file=bytes)
    assert got == image, (len(got or b""), len(image))
    photos = await bob(functions.photos.GetUserPhotosRequest(alice_for_bob, 0, 0, 10))
    assert len(photos.photos) == 1, photos
    print("profile photo uploaded and downloaded intact")

    # Dialogs of both.
    dialogs = [d.entity.id for d in await alice.get_dialogs()]
    assert bob_for_alice.id in dialogs, dialogs
    dialogs = [d.entity.id for d in await bob.get_dialogs()]
    assert alice_for_bob.id in dialogs, dialogs
    print("dialogs listed")

    # Blocking, and the contact list's hash.
    await alice(functions.contacts.BlockRequest(bob_for_alice))
    blocked = await alice(functions.contacts.GetBlockedRequest(offset=0, limit=10))
    assert [b.peer_id.user_id for b in blocked.blocked] == [bob_for_alice.id], blocked
    await alice(functions.contacts.UnblockRequest(bob_for_alice))
    contacts = await bob(functions.contacts.GetContactsRequest(hash=0))
    again = await bob(functions.contacts.GetContactsRequest(hash=contacts_hash(contacts)))
    assert isinstance(again, types.contacts.ContactsNotModified), again
    print("blocking and the contacts hash work")

    # A second device of Alice's, listed and reset: that client is logged out.
    second = await signed_in(host, port, code, ALICE, "alice-tablet")
    assert (await second.get_me()).id == alice_for_bob.id
    listed = await alice(functions.account.GetAuthorizationsRequest())
    models = sorted(a.device_model for a in listed.authorizations)
    assert models == ["alice-pc", "alice-tablet"], models
    other = next(a for a in listed.authorizations if not a.current)
    assert other.device_model == "alice-tablet", other
    assert await alice(functions.account.ResetAuthorizationRequest(other.hash))
    # (`is_user_authorized` answers from Telethon's cache: ask the server.)
    try:
        await second(functions.updates.GetStateRequest())
        raise AssertionError("the reset client is still signed in")
    except errors.AuthKeyUnregisteredError:
        pass
    listed = await alice(functions.account.GetAuthorizationsRequest())
    assert [a.device_model for a in listed.authorizations] == ["alice-pc"], listed
    print("authorization listed and reset; the reset client is logged out")

    for client in (alice, bob, second):
        await client.disconnect()

    # A client that believes it is on DC 2 (the default of Pyrogram-family clients): it
    # uploads a file to its DC, and downloads the echoed copy, which names DC 1, through a
    # second connection signed in with auth.exportAuthorization/importAuthorization.
    session = MemorySession()
    session.set_dc(2, host, port)
    carol = TelegramClient(session, api_id=1, api_hash="0" * 32)
    await carol.connect()
    sent = await carol.send_code_request(CAROL)
    await carol.sign_in(CAROL, code, phone_code_hash=sent.phone_code_hash)
    echoed = loop.create_future()

    @carol.on(events.NewMessage(incoming=True))
    async def carol_got(event):
        if event.message.media is not None and not echoed.done():
            echoed.set_result(event.message)

    data = os.urandom(300 * 1024)
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(data)
        path = f.name
    try:
        await carol.send_file("@echo", path, force_document=True)
    finally:
        os.unlink(path)
    reply = await next_event(echoed, "the echo's file for Carol")
    assert reply.media.document.dc_id == 1, reply.media.document.dc_id
    got = await carol.download_media(reply, file=bytes)
    assert got == data, (len(got or b""), len(data))
    await carol.disconnect()
    print("a client on DC 2 uploaded, and downloaded from DC 1 with an exported authorization")


def contacts_hash(contacts):
    """Telegram's hash of a contact list: saved_count, then the ids in order."""
    value = 0
    for item in [contacts.saved_count] + sorted(c.user_id for c in contacts.contacts):
        value ^= value >> 21
        value ^= (value << 35) & 0xFFFFFFFFFFFFFFFF
        value ^= value >> 4
        value = (value + item) & 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def main():
    host, port, pem_path, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(pem_path, "rb") as f:
        rsa.add_key(f.read(), old=False)
    watcher = watch_warnings()
    asyncio.run(people(host, port, code))
    finish(watcher, "telethon people interop")


if __name__ == "__main__":
    main()
