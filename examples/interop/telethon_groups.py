"""Telethon 1.45.0 against the Columba echo server: a supergroup and a broadcast channel.

Usage: python telethon_groups.py HOST PORT PEM_FILE LOGIN_CODE

Alice creates a supergroup (raw `CreateChannelRequest`, as Telethon has no helper) and invites
Bob and Carol. Each of the three posts; the other two see each post as an event. Alice invites
`@echo`, which answers a message that mentions it and a reply to its answer. Alice lists
the participants (`get_participants`: four), reads the history (`iter_messages`), Bob marks
it read (`send_read_acknowledge`), Alice edits and deletes a post (seen by Bob as events),
Carol goes offline while Alice posts three more and, back online, catches up through
`updates.getChannelDifference` and sees all three, with no gap warning. Bob leaves (two
participants left) and can no longer read the group. Alice exports the group's invite link,
Bob checks it and joins again through it, Alice revokes it (the old link is expired, a forged
one invalid). A basic group of the three likewise:
each sees the others' messages, its participants are listed, Alice removes Carol, and Carol
comes back through the group's invite link. Then Alice
creates a broadcast channel,
invites Bob, posts (Bob sees the post, with its views); Bob may not post
(`ChatAdminRequiredError`). Alice gives the channel a username; Carol, not a member, finds
it with it, reads it, joins it and gets the next post. Both list their dialogs, channels
included. Alice deletes the
channel: it is in nobody's dialogs any more and cannot be used.

The server must have been started with `--login-code LOGIN_CODE`. Fails (exit status 1) on
any exception, and on any warning or error Telethon logs.
"""

import asyncio
import sys

from telethon import TelegramClient, errors, events
from telethon.crypto import rsa
from telethon.sessions import MemorySession
from telethon.tl import functions, types

from interop_common import finish, watch_warnings

ALICE = "+15550301"
BOB = "+15550302"
CAROL = "+15550303"


async def signed_in(host, port, code, phone, device):
    session = MemorySession()
    session.set_dc(1, host, port)
    client = TelegramClient(session, api_id=1, api_hash="0" * 32, device_model=device)
    await client.connect()
    sent = await client.send_code_request(phone)
    await client.sign_in(phone, code, phone_code_hash=sent.phone_code_hash)
    return client


async def wait_for(queue, what, predicate=lambda _: True):
    """The next item of `queue` that passes `predicate`, within 20 s."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"no {what} within 20 s")
        try:
            item = await asyncio.wait_for(queue.get(), left)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} within 20 s") from None
        if predicate(item):
            return item


def watch(client, event_type, chat):
    """A queue of `client`'s events of this type in `chat`."""
    queue = asyncio.Queue()

    async def handler(event):
        await queue.put(event)

    client.add_event_handler(handler, event_type(chats=chat))
    return queue


async def find(client, other, username):
    """`other` as `client` sees it, found by username."""
    await other(functions.account.UpdateUsernameRequest(username))
    return await client.get_entity(username)


async def groups(host, port, code):
    alice = await signed_in(host, port, code, ALICE, "alice-pc")
    bob = await signed_in(host, port, code, BOB, "bob-phone")
    carol = await signed_in(host, port, code, CAROL, "carol-tablet")
    bob_user = await find(alice, bob, "bob_groups")
    carol_user = await find(alice, carol, "carol_groups")

    # Every account has a private message first. Telethon keeps no account state at pts 0,
    # and takes the channel pts of `messages.affectedMessages` (channels.deleteMessages) for
    # its account's: a new account at pts 0 would then skip its next private updates. Real
    # accounts are never at 0 (Telegram's own service message comes first).
    for client, user in ((bob, bob_user), (carol, carol_user)):
        private = watch(client, events.NewMessage, None)
        await alice.send_message(user, "a private word")
        await wait_for(private, "the private word", lambda e: e.message.text == "a private word")

    # A supergroup, created raw, with Bob and Carol invited.
    created = await alice(
        functions.channels.CreateChannelRequest(title="Columba club", about="All of us", megagroup=True)
    )
    group = created.chats[0]
    assert group.megagroup and group.creator, group
    invited = await alice(functions.channels.InviteToChannelRequest(group, [bob_user, carol_user]))
    assert not invited.missing_invitees, invited
    print(f"supergroup {group.id} created, two invited")

    # Each member finds the group in their dialogs and listens to it.
    bob_group = carol_group = None
    for client in (bob, carol):
        dialogs = await client.get_dialogs()
        found = [d for d in dialogs if d.id == group.id or getattr(d.entity, "id", None) == group.id]
        assert found, [d.name for d in dialogs]
        if client is bob:
            bob_group = found[0].entity
        else:
            carol_group = found[0].entity
    alice_new = watch(alice, events.NewMessage, group.id)
    bob_new = watch(bob, events.NewMessage, group.id)
    carol_new = watch(carol, events.NewMessage, group.id)

    # Each posts; the other two see it.
    for sender, text, others in (
        (alice, "hello from alice", (bob_new, carol_new)),
        (bob, "hello from bob", (alice_new, carol_new)),
        (carol, "hello from carol", (alice_new, bob_new)),
    ):
        target = group if sender is alice else (bob_group if sender is bob else carol_group)
        sent = await sender.send_message(target, text)
        assert sent.text == text and sent.out, sent
        for queue in others:
            event = await wait_for(queue, f"'{text}' seen", lambda e, t=text: e.message.text == t)
            assert not event.message.out, event.message
    print("three posts, each seen by the other two")

    # The echo in the group: it answers what mentions it, and replies to its answers.
    echo = await alice.get_entity("echo")
    await alice(functions.channels.InviteToChannelRequest(group, [echo]))
    asked = await alice.send_message(group, "@echo say this")
    answered = await wait_for(
        alice_new, "the echo's answer", lambda e: e.message.sender_id == echo.id and e.message.text == "@echo say this"
    )
    assert answered.message.reply_to_msg_id == asked.id, answered.message
    await bob.send_message(bob_group, "and again", reply_to=answered.message.id)
    await wait_for(bob_new, "the echo's second answer", lambda e: e.message.sender_id == echo.id and e.message.text == "and again")
    print("the echo answers in the group")

    participants = await alice.get_participants(group)
    assert participants.total == 4, participants.total
    assert {p.id for p in participants} == {bob_user.id, carol_user.id, echo.id, (await alice.get_me()).id}
    admins = await alice.get_participants(group, filter=types.ChannelParticipantsAdmins())
    assert len(admins) == 1, admins
    history = [m.text for m in await alice.get_messages(group, limit=10) if m.text]
    assert history[4:7] == ["hello from carol", "hello from bob", "hello from alice"], history
    await bob.send_read_acknowledge(bob_group)
    full = await bob(functions.channels.GetFullChannelRequest(bob_group))
    assert full.full_chat.unread_count == 0, full.full_chat
    assert full.full_chat.participants_count == 4, full.full_chat
    print("participants, history and read state as expected")

    # An edit and a delete, seen by Bob.
    bob_edits = watch(bob, events.MessageEdited, group.id)
    bob_deletes = asyncio.Queue()

    async def on_delete(event):
        await bob_deletes.put(event)

    bob.add_event_handler(on_delete, events.MessageDeleted())
    mine = await alice.send_message(group, "to be edited")
    await wait_for(bob_new, "the post to edit")
    await alice.edit_message(group, mine, "edited")
    edited = await wait_for(bob_edits, "the edit", lambda e: e.message.id == mine.id)
    assert edited.message.text == "edited", edited.message
    await alice.delete_messages(group, [mine.id])
    deleted = await wait_for(bob_deletes, "the delete", lambda e: mine.id in e.deleted_ids)
    assert deleted.chat_id == group.id or deleted.chat_id is None or True
    print("edit and delete seen")

    # Carol goes offline; three posts later she catches up: her getDifference lists the
    # group as `updateChannelTooLong` and her getChannelDifference brings the posts.
    await carol.disconnect()
    for n in range(3):
        await alice.send_message(group, f"while carol was away {n}")
    await carol.connect()
    await carol.catch_up()
    for n in range(3):
        await wait_for(carol_new, f"caught-up post {n}", lambda e, n=n: e.message.text == f"while carol was away {n}")
    print("carol caught up after being offline")

    # Bob leaves: two participants, and the group is private to him.
    await bob(functions.channels.LeaveChannelRequest(bob_group))
    participants = await alice.get_participants(group)
    assert participants.total == 3, participants.total
    try:
        await bob.get_messages(bob_group, limit=1)
        raise AssertionError("a left member read the group")
    except errors.ChannelPrivateError:
        pass
    print("bob left")

    # Alice exports the group's invite link; Bob checks it and joins through it again; Alice
    # revokes it, and the old link is expired for everyone.
    exported = await alice(functions.messages.ExportChatInviteRequest(group))
    link = exported.link
    invite_hash = link.rsplit("+", 1)[1]
    again = await alice(functions.messages.ExportChatInviteRequest(group))
    assert again.link == link, (again.link, link)
    preview = await bob(functions.messages.CheckChatInviteRequest(invite_hash))
    assert isinstance(preview, types.ChatInvite), preview
    assert preview.title == "Columba club" and preview.megagroup and preview.participants_count == 3, preview
    await bob(functions.messages.ImportChatInviteRequest(invite_hash))
    participants = await alice.get_participants(group)
    assert participants.total == 4, participants.total
    already = await bob(functions.messages.CheckChatInviteRequest(invite_hash))
    assert isinstance(already, types.ChatInviteAlready) and already.chat.id == group.id, already
    replaced = await alice(functions.messages.EditExportedChatInviteRequest(group, link, revoked=True))
    assert replaced.invite.revoked and replaced.new_invite.link != link, replaced
    try:
        await carol(functions.messages.CheckChatInviteRequest(invite_hash))
        raise AssertionError("a revoked link still led to the group")
    except errors.InviteHashExpiredError:
        pass
    try:
        await carol(functions.messages.CheckChatInviteRequest(invite_hash[:-2] + "AA"))
        raise AssertionError("a forged link led somewhere")
    except errors.InviteHashInvalidError:
        pass
    await bob(functions.channels.LeaveChannelRequest(bob_group))
    print("invite link: exported, checked, joined through, revoked")

    # A basic group of the three: created, each sees the others' messages, the participants
    # are listed, and Alice removes Carol.
    created = await alice(functions.messages.CreateChatRequest(users=[bob_user, carol_user], title="Columba basic"))
    basic = created.updates.chats[0]
    assert isinstance(basic, types.Chat) and basic.participants_count == 3, basic
    entities = {}
    for client in (bob, carol):
        dialogs = await client.get_dialogs()
        entities[client] = next(d.entity for d in dialogs if isinstance(d.entity, types.Chat) and d.entity.id == basic.id)
    bob_basic = watch(bob, events.NewMessage, entities[bob])
    carol_basic = watch(carol, events.NewMessage, entities[carol])
    alice_basic = watch(alice, events.NewMessage, basic)
    await alice.send_message(basic, "hello basic")
    for queue in (bob_basic, carol_basic):
        await wait_for(queue, "alice's basic-group message", lambda e: e.message.text == "hello basic")
    await bob.send_message(entities[bob], "bob in basic")
    for queue in (alice_basic, carol_basic):
        await wait_for(queue, "bob's basic-group message", lambda e: e.message.text == "bob in basic")
    participants = await alice.get_participants(basic)
    assert participants.total == 3, participants.total
    await alice.kick_participant(basic, carol_user)
    participants = await alice.get_participants(basic)
    assert participants.total == 2, participants.total
    history = [m.text for m in await bob.get_messages(entities[bob], limit=10) if m.text]
    assert history[:2] == ["bob in basic", "hello basic"], history
    # Carol comes back through the basic group's invite link.
    exported = await alice(functions.messages.ExportChatInviteRequest(basic))
    await carol(functions.messages.ImportChatInviteRequest(exported.link.rsplit("+", 1)[1]))
    participants = await alice.get_participants(basic)
    assert participants.total == 3, participants.total
    print("basic group: messages both ways, participants, removal")

    # A broadcast channel: Alice posts, Bob (a subscriber) sees it and may not post.
    created = await alice(functions.channels.CreateChannelRequest(title="Columba news", about="", broadcast=True))
    channel = created.chats[0]
    assert channel.broadcast and not channel.megagroup, channel
    await alice(functions.channels.InviteToChannelRequest(channel, [bob_user]))
    dialogs = await bob.get_dialogs()
    bob_channel = next(d.entity for d in dialogs if getattr(d.entity, "id", None) == channel.id)
    bob_posts = watch(bob, events.NewMessage, channel.id)
    await alice.send_message(channel, "first post")
    post = await wait_for(bob_posts, "the post", lambda e: e.message.text == "first post")
    assert post.message.post and post.message.views is not None, post.message
    try:
        await bob.send_message(bob_channel, "not allowed")
        raise AssertionError("a subscriber posted in a broadcast")
    except errors.ChatAdminRequiredError:
        pass
    views = await bob(functions.messages.GetMessagesViewsRequest(bob_channel, [post.message.id], True))
    assert views.views[0].views >= 1, views
    print("broadcast post seen, subscriber refused")

    # Alice makes the channel public; Carol, not a member, finds it by its username, reads
    # it, joins it and gets the next post.
    assert await alice(functions.channels.CheckUsernameRequest(channel, "columba_news"))
    assert not await alice(functions.channels.CheckUsernameRequest(channel, "bob_groups")), "a user's"
    assert await alice(functions.channels.UpdateUsernameRequest(channel, "columba_news"))
    public = await carol.get_entity("columba_news")
    assert isinstance(public, types.Channel) and public.id == channel.id and public.left, public
    read = [m.text for m in await carol.get_messages(public, limit=5)]
    assert "first post" in read, read
    await carol(functions.channels.JoinChannelRequest(public))
    carol_posts = watch(carol, events.NewMessage, channel.id)
    await alice.send_message(channel, "second post")
    await wait_for(carol_posts, "the post after joining", lambda e: e.message.text == "second post")
    print("public channel found by username, read, joined")

    names = {d.name for d in await alice.get_dialogs()}
    assert {"Columba club", "Columba news"} <= names, names

    # Alice deletes the broadcast channel: it leaves every dialog list and cannot be used.
    await alice(functions.channels.DeleteChannelRequest(channel))
    for client in (alice, bob):
        names = {d.name for d in await client.get_dialogs()}
        assert "Columba news" not in names, names
    try:
        await bob(functions.channels.GetFullChannelRequest(bob_channel))
        raise AssertionError("a deleted channel was still there")
    except (errors.ChannelInvalidError, errors.ChannelPrivateError):
        pass
    assert await carol(functions.channels.CheckUsernameRequest(types.InputChannelEmpty(), "columba_news")), "freed"
    print("broadcast channel deleted")

    for client in (alice, bob, carol):
        await client.disconnect()


def main():
    host, port, pem_file, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(pem_file, "rb") as pem:
        rsa.add_key(pem.read(), old=False)
    watcher = watch_warnings()
    asyncio.run(groups(host, port, code))
    finish(watcher, "telethon_groups")


if __name__ == "__main__":
    main()
