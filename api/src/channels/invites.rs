//! Invite links: `messages.exportChatInvite`, `checkChatInvite`, `importChatInvite` and
//! `editExportedChatInvite` (to revoke), for supergroups, broadcast channels and basic
//! groups.
//!
//! A group has one permanent link at a time. Its hash is not stored: it is the group's kind
//! and id, the link's generation and a tag keyed with the server's [`AccessSecret`]
//! (`crate::access::AccessSecret::invite_tag`), in URL-safe base64 (32 characters). A hash
//! names its group without a lookup table and cannot be guessed; revoking a link moves the
//! group to the next generation, so every earlier link answers `INVITE_HASH_EXPIRED`.
//! Links with an expiry, a usage limit, a title or join requests (Telegram's additional
//! links) are not kept: asking for one is refused with `INVITE_LINK_OPTIONS_UNSUPPORTED`
//! rather than answered with a link that would ignore them.

use std::sync::Arc;

use base64ct::{Base64UrlUnpadded, Encoding as _};
use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::message::Peer;

use super::info::InviteLink;
use super::members::join;
use super::{Channel, ChannelInfo, channel_object, channel_private, rights};
use crate::access::{AccessSecret, INVITE_TAG_LEN};
use crate::backend::Backend;
use crate::body::Action;
use crate::chats;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects::now_unix;

/// What a link's hash follows in the links this server gives out.
pub const INVITE_LINK_PREFIX: &str = "https://t.me/+";

/// The bytes behind a hash: kind (1), group id (8), generation (4), tag.
const HASH_BYTES: usize = 1 + 8 + 4 + INVITE_TAG_LEN;
/// The characters of a hash (URL-safe base64 of [`HASH_BYTES`], unpadded).
const HASH_CHARS: usize = 32;

const KIND_CHANNEL: u8 = 1;
const KIND_CHAT: u8 = 2;

/// The hash of the invite link of `group` at `generation`.
pub fn invite_hash(backend: &Backend, group: Peer, generation: u32) -> String {
    hash_with(&backend.access, group, generation)
}

fn hash_with(secret: &AccessSecret, group: Peer, generation: u32) -> String {
    let Some(subject) = subject(group, generation) else {
        return String::new();
    };
    let mut bytes = Vec::with_capacity(HASH_BYTES);
    bytes.extend_from_slice(&subject);
    bytes.extend_from_slice(&secret.invite_tag(&subject));
    Base64UrlUnpadded::encode_string(&bytes)
}

/// What the tag covers: kind, id and generation.
fn subject(group: Peer, generation: u32) -> Option<[u8; 13]> {
    let (kind, id) = match group {
        Peer::Channel(id) => (KIND_CHANNEL, id),
        Peer::Chat(id) => (KIND_CHAT, id),
        Peer::User(_) => return None,
    };
    let mut subject = [0u8; 13];
    let (head, rest) = subject.split_at_mut(1);
    let (id_bytes, generation_bytes) = rest.split_at_mut(8);
    head.copy_from_slice(&[kind]);
    id_bytes.copy_from_slice(&id.to_le_bytes());
    generation_bytes.copy_from_slice(&generation.to_le_bytes());
    Some(subject)
}

/// The group and generation a hash names, its tag checked (constant time):
/// `INVITE_HASH_EMPTY` for an empty hash, `INVITE_HASH_INVALID` for anything this server did
/// not give out. A whole link (`https://t.me/+…`, `t.me/joinchat/…`) is taken too.
fn parse(backend: &Backend, hash: &str) -> Result<(Peer, u32), ApiError> {
    parse_with(&backend.access, hash)
}

fn parse_with(secret: &AccessSecret, hash: &str) -> Result<(Peer, u32), ApiError> {
    let hash = hash.trim();
    if hash.is_empty() {
        return Err(ApiError::bad_request("INVITE_HASH_EMPTY"));
    }
    let hash = hash.rsplit(['+', '/']).next().unwrap_or(hash);
    let invalid = || ApiError::bad_request("INVITE_HASH_INVALID");
    if hash.len() != HASH_CHARS {
        return Err(invalid());
    }
    let mut bytes = [0u8; HASH_BYTES];
    let decoded = Base64UrlUnpadded::decode(hash, &mut bytes).map_err(|_| invalid())?;
    let (subject, tag) = decoded.split_first_chunk::<13>().ok_or_else(invalid)?;
    if !secret.check_invite_tag(subject, tag) {
        return Err(invalid());
    }
    let (&kind, rest) = subject.split_first().ok_or_else(invalid)?;
    let (id, generation) = rest.split_first_chunk::<8>().ok_or_else(invalid)?;
    let generation = <[u8; 4]>::try_from(generation).map_err(|_| invalid())?;
    let id = i64::from_le_bytes(*id);
    let group = match kind {
        KIND_CHANNEL => Peer::Channel(id),
        KIND_CHAT => Peer::Chat(id),
        _ => return Err(invalid()),
    };
    Ok((group, u32::from_le_bytes(generation)))
}

/// The group a valid, current link names, and its info: `INVITE_HASH_EXPIRED` for a
/// revoked link or a group that is gone. Blocking.
fn current(backend: &Backend, hash: &str) -> Result<(Peer, ChannelInfo, InviteLink), ApiError> {
    let (group, generation) = parse(backend, hash)?;
    let expired = || ApiError::bad_request("INVITE_HASH_EXPIRED");
    let bytes = backend.messages.group_info(group)?.ok_or_else(expired)?;
    let info = ChannelInfo::decode(&bytes).ok_or_else(|| ApiError::new(500, "INTERNAL"))?;
    match info.invite {
        Some(link) if !info.deleted && link.generation == generation => Ok((group, info, link)),
        _ => Err(expired()),
    }
}

/// The `chatInviteExported` of a group's link.
pub(super) fn exported(
    backend: &Backend,
    group: Peer,
    link: InviteLink,
    revoked: bool,
) -> enums::ExportedChatInvite {
    types::ChatInviteExported {
        revoked,
        permanent: true,
        link: format!(
            "{INVITE_LINK_PREFIX}{}",
            invite_hash(backend, group, link.generation)
        ),
        admin_id: link.admin,
        date: link.date,
        ..Default::default()
    }
    .into()
}

/// The group an `InputPeer` names, if the caller may manage its links: `invite_users` in a
/// channel; the creator or an admin in a basic group (`CHAT_ADMIN_REQUIRED` otherwise).
/// Blocking.
fn managed(
    backend: &Backend,
    user: i64,
    peer: &enums::InputPeer,
) -> Result<(Peer, ChannelInfo), ApiError> {
    if let Some(channel) = super::input_peer_channel(backend, user, peer)? {
        channel.require_right(rights::INVITE_USERS)?;
        return Ok((channel.peer(), channel.info));
    }
    match peer {
        enums::InputPeer::InputPeerChat(input) => {
            let chat = chats::load(backend, user, input.chat_id)?;
            chat.require_member()?;
            if !chat.caller_is_admin() {
                return Err(ApiError::bad_request("CHAT_ADMIN_REQUIRED"));
            }
            Ok((Peer::Chat(chat.id), chat.info))
        }
        _ => Err(ApiError::bad_request("PEER_ID_INVALID")),
    }
}

/// Gives `info` a new link (the next generation) exported by `admin`, and stores it.
/// Blocking.
fn renew(
    backend: &Backend,
    group: Peer,
    mut info: ChannelInfo,
    admin: i64,
) -> Result<InviteLink, ApiError> {
    let generation = info
        .invite
        .map_or(1, |link| link.generation.wrapping_add(1).max(1));
    let link = InviteLink {
        generation,
        admin,
        date: now_unix(),
    };
    info.invite = Some(link);
    backend.messages.set_group_info(group, info.encode())?;
    Ok(link)
}

fn unsupported() -> ApiError {
    ApiError::bad_request("INVITE_LINK_OPTIONS_UNSUPPORTED")
}

/// `messages.exportChatInvite`: the group's permanent link, made on first use;
/// `legacy_revoke_permanent` replaces it with a new one (the old one expires).
pub async fn export_chat_invite(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::ExportChatInvite,
) -> Result<enums::ExportedChatInvite, ApiError> {
    let user = ctx.user()?;
    if request.request_needed
        || request.expire_date.is_some()
        || request.usage_limit.is_some()
        || request.title.is_some()
        || request.subscription_pricing.is_some()
    {
        return Err(unsupported());
    }
    ctx.blocking(move || {
        let (group, info) = managed(&backend, user, &request.peer)?;
        let link = match info.invite {
            Some(link) if !request.legacy_revoke_permanent => link,
            _ => renew(&backend, group, info, user)?,
        };
        Ok(exported(&backend, group, link, false))
    })
    .await
}

/// `messages.editExportedChatInvite` with `revoked`: the link expires and a new permanent
/// one takes its place (`messages.exportedChatInviteReplaced`), as Telegram does for a
/// permanent link. Other edits are options this server does not keep.
pub async fn edit_exported_chat_invite(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::EditExportedChatInvite,
) -> Result<enums::messages::ExportedChatInvite, ApiError> {
    let user = ctx.user()?;
    if !request.revoked
        || request.expire_date.is_some()
        || request.usage_limit.is_some()
        || request.request_needed.is_some()
        || request.title.is_some()
    {
        return Err(unsupported());
    }
    ctx.blocking(move || {
        let (group, info) = managed(&backend, user, &request.peer)?;
        let (named, generation) = parse(&backend, &request.link)?;
        let old = match info.invite {
            Some(link) if named == group && link.generation == generation => link,
            _ => return Err(ApiError::bad_request("INVITE_HASH_EXPIRED")),
        };
        let new = renew(&backend, group, info, user)?;
        Ok(types::messages::ExportedChatInviteReplaced {
            invite: exported(&backend, group, old, true),
            new_invite: exported(&backend, group, new, false),
            users: backend.user_objects([old.admin, new.admin], user)?,
        }
        .into())
    })
    .await
}

/// `messages.checkChatInvite`: what a link leads to: `chatInviteAlready` for a member,
/// otherwise the group's title, kind and size (`chatInvite`).
pub async fn check_chat_invite(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::CheckChatInvite,
) -> Result<enums::ChatInvite, ApiError> {
    let user = ctx.user()?;
    ctx.blocking(move || {
        let (group, info, _) = current(&backend, &request.hash)?;
        match group {
            Peer::Channel(id) => {
                let channel = super::load(&backend, user, id)?
                    .ok_or_else(|| ApiError::bad_request("INVITE_HASH_EXPIRED"))?;
                if channel.is_member() {
                    return Ok(types::ChatInviteAlready {
                        chat: channel_object(&backend, &channel),
                    }
                    .into());
                }
                Ok(invite_preview(&channel.info, channel.counts.members.into(), true).into())
            }
            Peer::User(_) => Err(ApiError::bad_request("INVITE_HASH_INVALID")),
            Peer::Chat(id) => {
                let chat = chats::load(&backend, user, id)?;
                if chat.require_member().is_ok() {
                    return Ok(types::ChatInviteAlready {
                        chat: chats::chat_object(&chat),
                    }
                    .into());
                }
                let members = u64::try_from(chat.members.len()).unwrap_or(u64::MAX);
                Ok(invite_preview(&info, members, false).into())
            }
        }
    })
    .await
}

fn invite_preview(info: &ChannelInfo, members: u64, channel: bool) -> types::ChatInvite {
    let mut preview = types::ChatInvite::new(
        info.title.clone(),
        types::PhotoEmpty { id: 0 }.into(),
        i32::try_from(members).unwrap_or(i32::MAX),
        0,
    );
    preview.channel = channel;
    preview.broadcast = channel && info.broadcast;
    preview.megagroup = channel && !info.broadcast;
    if !info.about.is_empty() {
        preview.about = Some(info.about.clone());
    }
    preview
}

/// `messages.importChatInvite`: joins the group a current link names
/// (`messageActionChatJoinedByLink` naming who exported it); `USER_ALREADY_PARTICIPANT`
/// for a member, `CHANNEL_PRIVATE` for one banned from the channel, `USERS_TOO_MUCH` for a
/// full basic group.
pub async fn import_chat_invite(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::messages::ImportChatInvite,
) -> Result<enums::messages::ChatInviteJoinResult, ApiError> {
    let user = ctx.user()?;
    let task_ctx = ctx.clone();
    ctx.blocking(move || {
        let (group, _, link) = current(&backend, &request.hash)?;
        match group {
            Peer::Channel(id) => {
                let channel: Channel =
                    super::load(&backend, user, id)?.ok_or_else(channel_private)?;
                join(&task_ctx, &backend, &channel, user, Some(link.admin))
            }
            Peer::User(_) => Err(ApiError::bad_request("INVITE_HASH_INVALID")),
            Peer::Chat(id) => {
                let chat = chats::load(&backend, user, id)?;
                if chat.members.iter().any(|p| p.user_id == user) {
                    return Err(ApiError::bad_request("USER_ALREADY_PARTICIPANT"));
                }
                backend.messages.set_participant(
                    group,
                    user,
                    Some(columba_store::message::Participant::member(
                        user,
                        now_unix(),
                        link.admin,
                    )),
                )?;
                let chat = chats::load(&backend, user, id)?;
                let updates = chats::service(
                    &task_ctx,
                    &backend,
                    &chat,
                    user,
                    Action::ChatJoinedByLink(link.admin),
                    String::new(),
                )?;
                Ok(types::messages::ChatInviteJoinResultOk { updates }.into())
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn error_of(result: Result<(Peer, u32), ApiError>) -> String {
        result
            .err()
            .map(|e| e.name().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn hashes_read_back_and_nothing_else_does() {
        let secret = AccessSecret::new([5; 32]);
        for (group, generation) in [(Peer::Channel(77), 1), (Peer::Chat(3), u32::MAX)] {
            let hash = hash_with(&secret, group, generation);
            assert_eq!(hash.len(), HASH_CHARS);
            assert_eq!(parse_with(&secret, &hash).unwrap(), (group, generation));
            // Whole links are taken too.
            for link in [
                format!("{INVITE_LINK_PREFIX}{hash}"),
                format!("t.me/joinchat/{hash}"),
            ] {
                assert_eq!(parse_with(&secret, &link).unwrap(), (group, generation));
            }
            // Another server's link, or one with any byte changed, is invalid.
            let other = AccessSecret::new([6; 32]);
            assert_eq!(error_of(parse_with(&other, &hash)), "INVITE_HASH_INVALID");
            let mut bytes = [0u8; HASH_BYTES];
            Base64UrlUnpadded::decode(&hash, &mut bytes).unwrap();
            for index in 0..HASH_BYTES {
                let mut changed = bytes;
                changed[index] ^= 1;
                let forged = Base64UrlUnpadded::encode_string(&changed);
                assert_eq!(
                    error_of(parse_with(&secret, &forged)),
                    "INVITE_HASH_INVALID",
                    "byte {index}"
                );
            }
        }
        assert_eq!(hash_with(&secret, Peer::User(1), 1), "");
        assert_eq!(error_of(parse_with(&secret, "  ")), "INVITE_HASH_EMPTY");
        assert_eq!(
            error_of(parse_with(&secret, "short")),
            "INVITE_HASH_INVALID"
        );
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panic(text in ".{0,64}") {
            let secret = AccessSecret::new([5; 32]);
            let _ = parse_with(&secret, &text);
        }
    }

    #[test]
    fn subjects_name_kind_id_and_generation() {
        assert_eq!(subject(Peer::User(1), 1), None);
        let channel = subject(Peer::Channel(5), 2).unwrap();
        let chat = subject(Peer::Chat(5), 2).unwrap();
        assert_ne!(channel, chat);
        assert_ne!(channel, subject(Peer::Channel(5), 3).unwrap());
        assert_eq!(channel[0], KIND_CHANNEL);
        assert_eq!(HASH_CHARS, (HASH_BYTES * 4).div_ceil(3));
    }
}
