"""Telethon 1.45.0 against the Columba echo server: a person makes a bot with @BotFather, the
bot signs in with its token (`start(bot_token=...)`), and the two talk with buttons.

Usage: python telethon_bots.py HOST PORT PEM_FILE LOGIN_CODE

Alice asks @BotFather for a new bot (`/newbot`, a name, a username ending in `bot`) and reads
the token from its answer; `/token` shows the same token. A second client signs in as the bot
with that token, sets its command menu (which Alice sees in the bot's full profile), and
answers `/start` with an inline keyboard. Alice starts the bot with a deep-link parameter
(`messages.startBot`), presses a button (`messages.getBotCallbackAnswer`); the bot answers the
press with an alert and edits its message, which Alice sees. Each side is refused the other's
methods (`BOT_METHOD_INVALID`, `USER_BOT_REQUIRED`). Last, Alice revokes the token with
@BotFather: the old token no longer signs in, the new one does.

The server must have been started with `--login-code LOGIN_CODE`. Fails (exit status 1) on
any exception, and on any warning or error Telethon logs.
"""

import asyncio
import re
import sys

from telethon import Button, TelegramClient, errors, events
from telethon.crypto import rsa
from telethon.sessions import MemorySession
from telethon.tl import functions, types

from interop_common import finish, watch_warnings

ALICE = "+15550301"
BOT_USERNAME = "menu_columba_bot"
TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{35}$", re.M)


def client_for(host, port):
    session = MemorySession()
    session.set_dc(1, host, port)
    return TelegramClient(session, api_id=1, api_hash="0" * 32)


async def next_event(future, what):
    try:
        return await asyncio.wait_for(future, 20)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} within 20 s") from None


class Conversation:
    """Alice's chat with a bot: she sends a text, and waits for the bot's next message."""

    def __init__(self, client, peer):
        self.client = client
        self.peer = peer
        self.queue = asyncio.Queue()
        client.add_event_handler(self.queue.put, events.NewMessage(chats=peer, incoming=True))

    async def ask(self, text):
        await self.client.send_message(self.peer, text)
        event = await next_event(self.queue.get(), f"answer to {text!r}")
        return event.message.message


async def bots(host, port, code):
    alice = client_for(host, port)
    await alice.connect()
    sent = await alice.send_code_request(ALICE)
    await alice.sign_in(ALICE, code, phone_code_hash=sent.phone_code_hash)

    # @BotFather makes the bot and gives its token.
    father = await alice.get_entity("BotFather")
    assert father.bot, father
    chat = Conversation(alice, father)
    assert "choose a name" in await chat.ask("/newbot")
    assert "username" in await chat.ask("Menu Bot")
    assert "invalid" in await chat.ask("menu_columba"), "a username without `bot` was taken"
    done = await chat.ask("@" + BOT_USERNAME)
    token = TOKEN.search(done).group(0)
    assert "t.me/" + BOT_USERNAME in done, done
    await chat.ask("/token")
    shown = await chat.ask("@" + BOT_USERNAME)
    assert TOKEN.search(shown).group(0) == token, shown
    print("BotFather made the bot and shows its token")

    # The bot signs in with its token and sets its menu.
    bot = client_for(host, port)
    await bot.start(bot_token=token)
    me = await bot.get_me()
    assert me.bot and me.username == BOT_USERNAME, me
    menu = [types.BotCommand("start", "begin"), types.BotCommand("menu", "show the menu")]
    assert await bot(
        functions.bots.SetBotCommandsRequest(types.BotCommandScopeDefault(), "", menu)
    )
    commands = await bot(functions.bots.GetBotCommandsRequest(types.BotCommandScopeDefault(), ""))
    assert [c.command for c in commands] == ["start", "menu"], commands
    print("the bot signed in with its token and set its menu")

    # The bot's behaviour: /start answers with buttons; a press is answered and edits the menu.
    starts = asyncio.Queue()

    @bot.on(events.NewMessage(pattern=r"^/start"))
    async def on_start(event):
        await starts.put(event.message.message)
        await event.respond(
            "Pick one", buttons=[[Button.inline("Yes", b"yes"), Button.inline("No", b"no")]]
        )

    @bot.on(events.CallbackQuery)
    async def on_press(event):
        await event.answer(f"You chose {event.data.decode()}", alert=True)
        await event.edit(f"Chosen: {event.data.decode()}")

    # Alice sees the bot's menu in its full profile.
    bot_user = await alice.get_entity(BOT_USERNAME)
    assert bot_user.bot, bot_user
    full = await alice(functions.users.GetFullUserRequest(bot_user))
    assert [c.command for c in full.full_user.bot_info.commands] == ["start", "menu"], full
    print("Alice sees the bot's commands")

    # Alice starts the bot with a parameter and presses a button.
    from_bot = asyncio.Queue()
    alice.add_event_handler(from_bot.put, events.NewMessage(chats=bot_user, incoming=True))
    edited = asyncio.Queue()
    alice.add_event_handler(edited.put, events.MessageEdited(chats=bot_user))
    await alice(
        functions.messages.StartBotRequest(
            bot=bot_user, peer=bot_user, random_id=4242, start_param="ref-42"
        )
    )
    assert await next_event(starts.get(), "/start at the bot") == "/start ref-42"
    menu_message = (await next_event(from_bot.get(), "the bot's menu")).message
    assert menu_message.message == "Pick one", menu_message
    labels = [button.text for row in menu_message.buttons for button in row]
    assert labels == ["Yes", "No"], labels
    answer = await menu_message.click(data=b"yes")
    assert answer.alert and answer.message == "You chose yes", answer
    change = await next_event(edited.get(), "the edited menu")
    assert change.message.message == "Chosen: yes", change.message
    print("Alice pressed a button; the bot answered and edited its message")

    # Each is refused the other's methods.
    try:
        await bot.get_dialogs()
        raise AssertionError("a bot listed dialogs")
    except errors.BotMethodInvalidError:
        pass
    try:
        await alice(functions.bots.GetBotCommandsRequest(types.BotCommandScopeDefault(), ""))
        raise AssertionError("a person called a bot's method")
    except errors.UserBotRequiredError:
        pass
    print("bots and people are refused each other's methods")

    # A new token: the old one stops signing in, the new one works.
    await chat.ask("/revoke")
    revoked = await chat.ask(BOT_USERNAME)
    new_token = TOKEN.search(revoked).group(0)
    assert new_token != token
    stale = client_for(host, port)
    await stale.connect()
    try:
        await stale.sign_in(bot_token=token)
        raise AssertionError("a revoked token signed in")
    except errors.AccessTokenInvalidError:
        pass
    await stale.sign_in(bot_token=new_token)
    assert (await stale.get_me()).id == me.id
    print("a revoked token is refused, the new one signs in")

    for client in (alice, bot, stale):
        await client.disconnect()


def main():
    host, port, pem_file, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(pem_file) as pem:
        rsa.add_key(pem.read(), old=False)
    watcher = watch_warnings()
    asyncio.run(bots(host, port, code))
    finish(watcher, "telethon_bots")


if __name__ == "__main__":
    main()
