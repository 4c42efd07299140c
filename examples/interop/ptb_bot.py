"""python-telegram-bot 22.8 against the Columba echo server's Bot API, with Telethon 1.45.0 as
the person talking to the bot.

Usage: python ptb_bot.py HOST PORT PEM_FILE LOGIN_CODE BOT_API_PORT

Alice (Telethon) makes a bot with @BotFather and reads its token. An unmodified
python-telegram-bot `Application`, pointed at the server with `base_url` and `base_file_url`,
runs the bot: `/start` is answered with an HTML-formatted text and an inline keyboard, the
press of its button with an alert and an edit of the message, any text is echoed, and a photo
is downloaded with `get_file` and sent back as a new upload, then again by its `file_id` as a
document. Alice checks each answer, the formatting and the photo byte for byte. The bot runs
first with long polling, then with a webhook on loopback (PTB's own webhook server, with a
secret token), where the echo is checked again.

The server must have been started with `--login-code LOGIN_CODE --bot-api 127.0.0.1:PORT`.
Fails (exit status 1) on any exception, any error the bot's handlers meet, and any warning
either library logs.
"""

import asyncio
import html
import os
import re
import socket
import sys
import tempfile

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telethon import TelegramClient, events, types
from telethon.crypto import rsa
from telethon.sessions import MemorySession

from interop_common import finish, png_image, watch_warnings

ALICE = "+15550401"
BOT_USERNAME = "ptb_columba_bot"
TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{35}$", re.M)
ERRORS = []


async def next_item(queue, what, seconds=20):
    try:
        return await asyncio.wait_for(queue.get(), seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} within {seconds} s (the bot's errors: {ERRORS})") from None


async def make_bot(alice):
    """Alice asks @BotFather for a bot; its token."""
    father = await alice.get_entity("BotFather")
    answers = asyncio.Queue()
    handler = alice.add_event_handler(answers.put, events.NewMessage(chats=father, incoming=True))
    for text in ("/newbot", "PTB Echo", "@" + BOT_USERNAME):
        await alice.send_message(father, text)
        answer = await next_item(answers, f"BotFather's answer to {text!r}")
    alice.remove_event_handler(handler)
    return TOKEN.search(answer.message.message).group(0)


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE):
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Press me", callback_data="pressed")]])
    args = " ".join(context.args)
    await update.message.reply_html(
        f"<b>Welcome</b>, {html.escape(update.effective_user.first_name)}! args=<i>{args}</i>",
        reply_markup=keyboard,
    )


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE):
    query = update.callback_query
    assert query.data == "pressed", query.data
    await query.answer("Pressed!", show_alert=True)
    await query.edit_message_text("You pressed the button")


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE):
    await update.message.reply_text(update.message.text)


async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE):
    photo = update.message.photo[-1]
    file = await photo.get_file()
    data = await file.download_as_bytearray()
    assert len(data) == photo.file_size, (len(data), photo.file_size)
    await update.message.reply_photo(photo=bytes(data), caption="your photo back")
    await update.message.reply_document(document=photo.file_id, caption="by file_id")


async def on_error(update, context: ContextTypes.DEFAULT_TYPE):
    ERRORS.append(repr(context.error))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def run(host, port, code, api_port):
    alice = TelegramClient(MemorySession(), api_id=1, api_hash="0" * 32)
    alice.session.set_dc(1, host, port)
    await alice.connect()
    sent = await alice.send_code_request(ALICE)
    await alice.sign_in(ALICE, code, phone_code_hash=sent.phone_code_hash)
    token = await make_bot(alice)
    print("BotFather made the bot")

    app = (
        Application.builder()
        .token(token)
        .base_url(f"http://{host}:{api_port}/bot")
        .base_file_url(f"http://{host}:{api_port}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("start", on_start))
    app.add_handler(CallbackQueryHandler(on_press))
    app.add_handler(MessageHandler(filters.PHOTO, on_photo))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    app.add_error_handler(on_error)

    bot_entity = await alice.get_entity(BOT_USERNAME)
    incoming = asyncio.Queue()
    alice.add_event_handler(incoming.put, events.NewMessage(chats=bot_entity, incoming=True))
    edits = asyncio.Queue()
    alice.add_event_handler(edits.put, events.MessageEdited(chats=bot_entity))

    async with app:
        me = await app.bot.get_me()
        assert me.is_bot and me.username == BOT_USERNAME, me
        await app.bot.set_my_commands([("start", "begin"), ("help", "what I do")])
        assert [c.command for c in await app.bot.get_my_commands()] == ["start", "help"]
        await app.start()
        await app.updater.start_polling(poll_interval=0.0, timeout=10)
        print("the bot polls")

        # /start: formatted text and a keyboard; the press: an alert and an edit.
        await alice.send_message(bot_entity, "/start")
        welcome = (await next_item(incoming, "the welcome")).message
        assert welcome.message.startswith("Welcome, "), welcome.message
        bold = [e for e in welcome.entities or [] if isinstance(e, types.MessageEntityBold)]
        assert bold and (bold[0].offset, bold[0].length) == (0, 7), welcome.entities
        answer = await welcome.click(data=b"pressed")
        assert answer.alert and answer.message == "Pressed!", answer
        edited = (await next_item(edits, "the edited welcome")).message
        assert edited.message == "You pressed the button", edited.message
        print("/start, a button pressed, answered and the message edited")

        # Text is echoed.
        await alice.send_message(bot_entity, "hello, bot")
        echo = (await next_item(incoming, "the echo")).message
        assert echo.message == "hello, bot", echo.message
        print("text echoed")

        # A photo comes back byte for byte, uploaded again and then by its file_id.
        image = png_image(96, 64)
        with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
            f.write(image)
        try:
            # Telethon sends a file as a photo by its name.
            await alice.send_file(bot_entity, f.name)
        finally:
            os.unlink(f.name)
        for caption in ("your photo back", "by file_id"):
            back = (await next_item(incoming, f"the photo ({caption})")).message
            assert back.message == caption, back.message
            data = await alice.download_media(back, file=bytes)
            assert data == image, (caption, len(data), len(image))
        print("the photo came back byte for byte (upload and file_id)")

        await app.updater.stop()

        # The same bot with a webhook on loopback.
        hook_port = free_port()
        await app.updater.start_webhook(
            listen="127.0.0.1",
            port=hook_port,
            url_path="hook",
            webhook_url=f"http://127.0.0.1:{hook_port}/hook",
            secret_token="columba-secret",
        )
        info = await app.bot.get_webhook_info()
        assert info.url == f"http://127.0.0.1:{hook_port}/hook", info
        await alice.send_message(bot_entity, "through the webhook")
        echo = (await next_item(incoming, "the echo through the webhook")).message
        assert echo.message == "through the webhook", echo.message
        info = await app.bot.get_webhook_info()
        assert info.pending_update_count == 0 and info.last_error_date is None, info
        print("the webhook delivers")
        await app.updater.stop()
        await app.bot.delete_webhook()
        await app.stop()

    await alice.disconnect()
    if ERRORS:
        raise AssertionError(f"the bot's handlers failed: {ERRORS}")


def main():
    host, port, pem_file, code, api_port = (
        sys.argv[1],
        int(sys.argv[2]),
        sys.argv[3],
        sys.argv[4],
        int(sys.argv[5]),
    )
    with open(pem_file) as pem:
        rsa.add_key(pem.read(), old=False)
    watcher = watch_warnings()
    asyncio.run(run(host, port, code, api_port))
    finish(watcher, "ptb_bot")


if __name__ == "__main__":
    main()
