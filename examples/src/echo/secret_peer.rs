//! `@echo` in secret chats: a device of the echo user that accepts every secret chat asked of
//! it and sends back every text and file, encrypted end to end.
//!
//! The echo's device is one of the relay's devices like any client's, with an id of its own
//! ([`ECHO_DEVICE`]) in place of a permanent auth key. It runs `columba-mtproto`'s sans-IO
//! [`SecretChats`], the machine a client device would run: the key exchange (it accepts, with
//! the relay's DH group), sequence numbers with their `Resend` both ways, layers, re-keying
//! (after 100 messages under a key, as the spec asks). What the relay would push to a client
//! is handed to the machine here (the request, the queue), and the calls the machine makes are
//! carried out with the relay's own functions, in order.
//!
//! The device's state is saved to a file in the data directory (written to a temporary file,
//! synced, renamed) before its queue is acknowledged, as the protocol asks of any device: a
//! restart goes on with the same chats, and what arrived after the last save comes again
//! from the queue. Chats the relay has open and the saved state does not know (accepted, then
//! the process died before the save) are closed at start.
//!
//! A file is echoed by sending the same encrypted file back (`inputEncryptedFile`) with the
//! same key and iv inside the message: the echo can read the file, but need not copy it.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use columba_api::secret::{self, Ciphertext, Device, Relay};
use columba_api::{ApiError, Backend, Ctx, Router};
use columba_mtproto::e2e::chat::ChatLimits;
use columba_mtproto::e2e::{Event, Rpc, SecretChats};
use columba_mtproto::tl::api::{enums, functions, types};
use columba_mtproto::tl::secret as e2e_tl;
use columba_session::runtime::ServerHandle;
use columba_store::secret::{SecretChatState, SecretKind};
use rand::RngCore as _;

use super::users::ECHO_USER_ID;

/// The echo's device: its id in the relay (an auth_key_id no client can have but by a
/// 2^-64 chance, as any two keys).
pub const ECHO_DEVICE: i64 = 0x6563_686f_5345_4352;

/// Queue entries read at a time.
const QUEUE_PAGE: usize = 100;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn device() -> Device {
    Device {
        user: ECHO_USER_ID,
        key: ECHO_DEVICE,
    }
}

/// The echo's secret-chat device.
pub struct SecretEcho {
    backend: Arc<Backend>,
    relay: Arc<Relay>,
    /// The machine, and where its state is saved.
    device: Mutex<SecretChats>,
    state_path: PathBuf,
}

impl std::fmt::Debug for SecretEcho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretEcho")
            .field("state_path", &self.state_path)
            .finish_non_exhaustive()
    }
}

/// Writes `bytes` to `path` whole or not at all: a temporary file, synced, renamed, and the
/// directory synced (so that the rename itself survives a power cut).
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(directory) = path.parent() {
        std::fs::File::open(directory)?.sync_all()?;
    }
    Ok(())
}

impl SecretEcho {
    /// The echo's device over `backend`, its state kept at `state_path` (loaded if there).
    pub fn open(backend: Arc<Backend>, state_path: PathBuf) -> io::Result<Arc<Self>> {
        let relay = Relay::new(backend.clone());
        let mut device = match std::fs::read(&state_path) {
            Ok(bytes) => SecretChats::load(&bytes).unwrap_or_else(|error| {
                // A state this build cannot read: the relay's chats it knew are closed at
                // start ([`Self::resume`]), and the echo begins again.
                tracing::warn!(%error, "the echo's saved secret chats are unreadable");
                SecretChats::new(ECHO_USER_ID, ChatLimits::default())
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                SecretChats::new(ECHO_USER_ID, ChatLimits::default())
            }
            Err(error) => return Err(error),
        };
        // The relay's group, as getDhConfig gives it.
        let config: enums::messages::DhConfig = types::messages::DhConfig {
            g: i32::try_from(relay.group().g()).unwrap_or(3),
            p: relay.group().prime().to_vec(),
            version: secret::DH_VERSION,
            random: {
                let mut random = vec![0u8; 256];
                rand::rng().fill_bytes(&mut random);
                random
            },
        }
        .into();
        device
            .handle_dh_config(&config, &mut rand::rng())
            .map_err(io::Error::other)?;
        Ok(Arc::new(Self {
            backend,
            relay,
            device: Mutex::new(device),
            state_path,
        }))
    }

    fn device(&self) -> std::sync::MutexGuard<'_, SecretChats> {
        // The machine is changed in whole steps by one holder at a time.
        self.device
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The relay's methods that concern the echo, wrapped: after a request to the echo it
    /// accepts; after a send into one of its chats it reads its queue.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route_with(
                self.clone(),
                |ctx: Ctx, echo: Arc<Self>, request: functions::messages::RequestEncryption| async move {
                    let to_echo = matches!(
                        &request.user_id,
                        enums::InputUser::InputUser(user) if user.user_id == ECHO_USER_ID
                    );
                    let id = request.random_id;
                    let answer =
                        secret::request_encryption(ctx.clone(), echo.relay.clone(), request)
                            .await?;
                    if to_echo {
                        let server = ctx.server().clone();
                        ctx.after(move || echo.requested(&server, id));
                    }
                    Ok(answer)
                },
            )
            .route_with(
                self.clone(),
                |ctx: Ctx, echo: Arc<Self>, request: functions::messages::SendEncrypted| async move {
                    let answer =
                        secret::send_encrypted(ctx.clone(), echo.relay.clone(), request).await?;
                    echo.read_after(&ctx);
                    Ok(answer)
                },
            )
            .route_with(
                self.clone(),
                |ctx: Ctx,
                 echo: Arc<Self>,
                 request: functions::messages::SendEncryptedService| async move {
                    let answer =
                        secret::send_encrypted_service(ctx.clone(), echo.relay.clone(), request)
                            .await?;
                    echo.read_after(&ctx);
                    Ok(answer)
                },
            )
            .route_with(
                self.clone(),
                |ctx: Ctx, echo: Arc<Self>, request: functions::messages::SendEncryptedFile| async move {
                    let answer =
                        secret::send_encrypted_file(ctx.clone(), echo.relay.clone(), request)
                            .await?;
                    echo.read_after(&ctx);
                    Ok(answer)
                },
            )
            .route_with(
                self.clone(),
                |ctx: Ctx, echo: Arc<Self>, request: functions::messages::DiscardEncryption| async move {
                    let id = request.chat_id;
                    let answer =
                        secret::discard_encryption(ctx.clone(), echo.relay.clone(), request)
                            .await?;
                    let server = ctx.server().clone();
                    ctx.after(move || echo.closed_by_peer(&server, id));
                    Ok(answer)
                },
            )
    }

    /// Reads the echo's queue after the answer.
    fn read_after(self: &Arc<Self>, ctx: &Ctx) {
        let server = ctx.server().clone();
        let echo = self.clone();
        ctx.after(move || echo.read_queue(&server));
    }

    /// The relay's `updateEncryption` for chat `id`, as it would push it to the echo's device.
    fn chat_update(&self, id: i32) -> Option<enums::Update> {
        let chat = self.backend.secrets.chat_of(ECHO_USER_ID, id).ok()??;
        Some(
            types::UpdateEncryption {
                chat: secret::chat_object(&chat, ECHO_USER_ID, ECHO_DEVICE),
                date: 0,
            }
            .into(),
        )
    }

    /// A request to the echo: the device accepts it. Blocking.
    fn requested(&self, server: &ServerHandle, id: i32) {
        let Some(update) = self.chat_update(id) else {
            return;
        };
        let mut device = self.device();
        let mut rng = rand::rng();
        device.handle_update(&update, now(), &mut rng);
        self.step(server, &mut device);
    }

    /// The other side closed chat `id`: the device forgets it. Blocking.
    fn closed_by_peer(&self, server: &ServerHandle, id: i32) {
        let closed = matches!(
            self.backend.secrets.chat_of(ECHO_USER_ID, id),
            Ok(Some(chat)) if matches!(chat.state, SecretChatState::Discarded { .. })
        );
        if let (true, Some(update)) = (closed, self.chat_update(id)) {
            let mut device = self.device();
            device.handle_update(&update, now(), &mut rand::rng());
            self.step(server, &mut device);
        }
    }

    /// Reads and answers everything in the echo's queue. Blocking.
    pub fn read_queue(&self, server: &ServerHandle) {
        // One reader at a time: a chat's messages must be taken in queue order.
        let mut device = self.device();
        let mut after = 0;
        loop {
            let entries = match self.backend.secrets.queue(ECHO_DEVICE, after, QUEUE_PAGE) {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(%error, "the echo could not read its secret queue");
                    return;
                }
            };
            let Some(last) = entries.last().map(|entry| entry.qts) else {
                return;
            };
            let mut rng = rand::rng();
            for entry in &entries {
                let update: enums::Update = types::UpdateNewEncryptedMessage {
                    message: secret::encrypted_message(entry),
                    qts: entry.qts,
                }
                .into();
                device.handle_update(&update, now(), &mut rng);
            }
            self.step(server, &mut device);
            after = last;
        }
    }

    /// Answers what the device's events ask for, carries out its calls, saves its state and
    /// then acknowledges what the save covers. Blocking.
    fn step(&self, server: &ServerHandle, device: &mut SecretChats) {
        let mut rng = rand::rng();
        while let Some(event) = device.poll_event() {
            match event {
                Event::Requested { chat_id, user_id } => {
                    if let Err(error) = device.accept(chat_id, now(), &mut rng) {
                        tracing::warn!(%error, chat_id, "the echo could not accept a secret chat");
                    } else {
                        tracing::info!(chat_id, user_id, "the echo accepted a secret chat");
                    }
                }
                Event::Message {
                    chat_id,
                    message,
                    file,
                } => {
                    let Some((echoed, with_file)) = echo_of(&message, &mut rng) else {
                        continue;
                    };
                    let sent = match (with_file, file) {
                        (true, Some(file)) => {
                            let input: enums::InputEncryptedFile = types::InputEncryptedFile {
                                id: file.id,
                                access_hash: file.access_hash,
                            }
                            .into();
                            device.send_file(chat_id, echoed, input, now(), &mut rng)
                        }
                        _ => device.send(chat_id, echoed, now(), &mut rng),
                    };
                    if let Err(error) = sent {
                        tracing::warn!(%error, chat_id, "the echo could not answer");
                    }
                }
                Event::Closed { chat_id, reason } => {
                    tracing::info!(chat_id, ?reason, "a secret chat of the echo closed");
                }
                _ => {}
            }
        }
        // The state is saved before anything it sent goes out: a restart must not find
        // the other side holding messages (or a key exchange) this device has forgotten.
        // What it sends is kept in the saved state for a Resend.
        let saved = device.save();
        match write_atomically(&self.state_path, &saved.bytes) {
            Ok(()) => device.saved(saved.qts),
            Err(error) => {
                tracing::warn!(%error, "the echo could not save its secret chats");
                return;
            }
        }
        self.carry_out(server, device);
    }

    /// Carries out the device's calls, in order, with the relay's functions.
    fn carry_out(&self, server: &ServerHandle, device: &mut SecretChats) {
        while let Some(rpc) = device.poll_rpc() {
            if let Err((chat_id, error)) = self.call(server, rpc) {
                tracing::warn!(%error, chat_id, "a secret-chat call of the echo failed");
                device.handle_send_error(chat_id, error.name());
            }
        }
    }

    fn call(&self, server: &ServerHandle, rpc: Rpc) -> Result<(), (i32, ApiError)> {
        let send = |peer: enums::InputEncryptedChat,
                    random_id: i64,
                    data: Vec<u8>,
                    kind: SecretKind,
                    file: Option<enums::EncryptedFile>| {
            let enums::InputEncryptedChat::InputEncryptedChat(peer) = peer;
            secret::send_as(
                server,
                &self.backend,
                device(),
                Ciphertext {
                    chat_id: peer.chat_id,
                    access_hash: peer.access_hash,
                    random_id,
                    data,
                    kind,
                },
                file,
                false,
            )
            .map(|_| ())
            .map_err(|error| (peer.chat_id, error))
        };
        match rpc {
            Rpc::AcceptEncryption(accept) => {
                let enums::InputEncryptedChat::InputEncryptedChat(peer) = accept.peer;
                if self.relay.group().check_public_value(&accept.g_b).is_err() {
                    return Err((peer.chat_id, ApiError::bad_request("DH_G_B_INVALID")));
                }
                secret::accept_as(
                    server,
                    &self.backend,
                    device(),
                    peer.chat_id,
                    peer.access_hash,
                    &accept.g_b,
                    accept.key_fingerprint,
                )
                .map(|_| ())
                .map_err(|error| (peer.chat_id, error))
            }
            Rpc::DiscardEncryption(discard) => secret::discard_as(
                server,
                &self.backend,
                ECHO_USER_ID,
                discard.chat_id,
                discard.delete_history,
            )
            .map(|_| ())
            .map_err(|error| (discard.chat_id, error)),
            Rpc::SendEncrypted(request) => send(
                request.peer,
                request.random_id,
                request.data,
                SecretKind::Message,
                None,
            ),
            Rpc::SendEncryptedService(request) => send(
                request.peer,
                request.random_id,
                request.data,
                SecretKind::Service,
                None,
            ),
            Rpc::SendEncryptedFile(request) => {
                let enums::InputEncryptedChat::InputEncryptedChat(peer) = &request.peer;
                let chat_id = peer.chat_id;
                let file = secret::input_file_as(&self.backend, ECHO_USER_ID, &request.file)
                    .map_err(|error| (chat_id, error))?;
                send(
                    request.peer,
                    request.random_id,
                    request.data,
                    SecretKind::Message,
                    file,
                )
            }
            Rpc::ReceivedQueue(ack) => self
                .backend
                .secrets
                .acknowledge(ECHO_DEVICE, ack.max_qts)
                .map(|_| ())
                .map_err(|error| (0, error.into())),
            // The group is handed in at start; requests are never made by the echo.
            _ => Ok(()),
        }
    }

    /// At start: reads what came while the echo was down, and closes the chats the relay has
    /// open that the saved state does not know. Blocking.
    pub fn resume(&self, server: &ServerHandle) -> usize {
        let known: Vec<i32> = self.device().ready_chats().collect();
        let chats = match self.backend.secrets.chats_of(ECHO_USER_ID) {
            Ok(chats) => chats,
            Err(error) => {
                tracing::warn!(%error, "the echo could not list its secret chats");
                return 0;
            }
        };
        let mut closed = 0;
        for chat in chats {
            let open = !matches!(chat.state, SecretChatState::Discarded { .. });
            if open
                && !known.contains(&chat.id)
                && secret::discard_as(server, &self.backend, ECHO_USER_ID, chat.id, false).is_ok()
            {
                closed += 1;
            }
        }
        self.read_queue(server);
        closed
    }
}

/// The echo of a message: the same text (and media, whose file goes back as it came), and
/// whether it carries a file. Service messages are not echoed.
fn echo_of(
    message: &e2e_tl::enums::DecryptedMessage,
    rng: &mut impl rand::RngCore,
) -> Option<(e2e_tl::enums::DecryptedMessage, bool)> {
    let (text, media) = match message {
        e2e_tl::enums::DecryptedMessage::DecryptedMessage(m) => {
            (m.message.clone(), m.media.clone())
        }
        e2e_tl::enums::DecryptedMessage::DecryptedMessage46(m) => (m.message.clone(), None),
        e2e_tl::enums::DecryptedMessage::DecryptedMessage23(m) => (m.message.clone(), None),
        e2e_tl::enums::DecryptedMessage::DecryptedMessage8(m) => (m.message.clone(), None),
        _ => return None,
    };
    let with_file = media.as_ref().is_some_and(|media| {
        matches!(
            media,
            e2e_tl::enums::DecryptedMessageMedia::DecryptedMessageMediaDocument(_)
                | e2e_tl::enums::DecryptedMessageMedia::DecryptedMessageMediaPhoto(_)
                | e2e_tl::enums::DecryptedMessageMedia::DecryptedMessageMediaVideo(_)
                | e2e_tl::enums::DecryptedMessageMedia::DecryptedMessageMediaAudio(_)
        )
    });
    let echoed = e2e_tl::types::DecryptedMessage {
        no_webpage: false,
        silent: false,
        random_id: rng.next_u64() as i64,
        ttl: 0,
        message: text,
        media,
        entities: None,
        via_bot_name: None,
        reply_to_random_id: None,
        grouped_id: None,
    };
    Some((echoed.into(), with_file))
}
