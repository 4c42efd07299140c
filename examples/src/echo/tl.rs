//! Telegram API objects built from what the stores keep.

use columba_mtproto::tl::Deserializable as _;
use columba_mtproto::tl::api::{enums, types};
use columba_store::message::{Peer, StoredMessage};

use super::secrets::Secret;
use super::users::UserRecord;

/// The DC this server says it is.
pub const THIS_DC: i32 = 1;

/// `peerUser` for a user id.
pub fn peer_user(user_id: i64) -> enums::Peer {
    types::PeerUser { user_id }.into()
}

/// A user as `viewer` sees it.
pub fn user(record: &UserRecord, viewer: i64, secret: &Secret) -> enums::User {
    let is_self = record.id == viewer;
    types::User {
        self_: is_self,
        contact: !is_self,
        mutual_contact: !is_self,
        id: record.id,
        access_hash: Some(secret.user_hash(record.id)),
        first_name: Some(record.first_name.clone()),
        username: record.username.clone(),
        phone: (is_self && !record.phone.is_empty()).then(|| record.phone.clone()),
        ..Default::default()
    }
    .into()
}

/// The Telegram peer of a stored peer.
pub fn peer(peer: Peer) -> enums::Peer {
    match peer {
        Peer::User(id) => peer_user(id),
        Peer::Chat(chat_id) => types::PeerChat { chat_id }.into(),
        Peer::Channel(channel_id) => types::PeerChannel { channel_id }.into(),
    }
}

/// A stored message as its box's owner sees it.
pub fn message(stored: &StoredMessage) -> enums::Message {
    let media = stored
        .media
        .as_deref()
        .and_then(|bytes| enums::MessageMedia::from_bytes(bytes).ok());
    types::Message {
        out: stored.out,
        mentioned: false,
        media_unread: false,
        silent: false,
        post: false,
        from_scheduled: false,
        legacy: false,
        edit_hide: false,
        pinned: false,
        noforwards: false,
        invert_media: false,
        offline: false,
        video_processing_pending: false,
        paid_suggested_post_stars: false,
        paid_suggested_post_ton: false,
        id: stored.id,
        from_id: Some(peer_user(stored.from)),
        from_boosts_applied: None,
        from_rank: None,
        peer_id: peer(stored.peer),
        saved_peer_id: None,
        fwd_from: None,
        via_bot_id: None,
        via_business_bot_id: None,
        guestchat_via_from: None,
        reply_to: None,
        date: stored.date,
        message: String::from_utf8_lossy(&stored.body).into_owned(),
        media,
        reply_markup: None,
        entities: None,
        views: None,
        forwards: None,
        replies: None,
        edit_date: stored.edit_date,
        post_author: None,
        grouped_id: None,
        reactions: None,
        restriction_reason: None,
        ttl_period: None,
        quick_reply_shortcut_id: None,
        effect: None,
        factcheck: None,
        report_delivery_until_date: None,
        paid_message_stars: None,
        suggested_post: None,
        schedule_repeat_period: None,
        summary_from_language: None,
        rich_message: None,
    }
    .into()
}

/// An `updates` of these updates.
pub fn updates(updates: Vec<enums::Update>, users: Vec<enums::User>, date: i32) -> enums::Updates {
    types::Updates {
        updates,
        users,
        chats: Vec::new(),
        date,
        seq: 0,
    }
    .into()
}

/// Default notification settings.
pub fn notify_settings() -> enums::PeerNotifySettings {
    types::PeerNotifySettings::default().into()
}

/// A minimal valid `config` naming this server as DC [`THIS_DC`].
pub fn config(address: std::net::SocketAddr, now: i32) -> enums::Config {
    types::Config {
        date: now,
        expires: now + 3600,
        test_mode: false,
        this_dc: THIS_DC,
        dc_options: vec![
            types::DcOption {
                ipv6: address.is_ipv6(),
                id: THIS_DC,
                ip_address: address.ip().to_string(),
                port: i32::from(address.port()),
                ..Default::default()
            }
            .into(),
        ],
        chat_size_max: 200,
        megagroup_size_max: 200_000,
        forwarded_count_max: 100,
        online_update_period_ms: 210_000,
        offline_blur_timeout_ms: 5_000,
        offline_idle_timeout_ms: 30_000,
        online_cloud_timeout_ms: 300_000,
        notify_cloud_delay_ms: 30_000,
        notify_default_delay_ms: 1_500,
        push_chat_period_ms: 60_000,
        push_chat_limit: 2,
        edit_time_limit: 172_800,
        revoke_time_limit: i32::MAX,
        revoke_pm_time_limit: i32::MAX,
        rating_e_decay: 2_419_200,
        stickers_recent_limit: 200,
        channels_read_media_period: 604_800,
        call_receive_timeout_ms: 20_000,
        call_ring_timeout_ms: 90_000,
        call_connect_timeout_ms: 30_000,
        call_packet_timeout_ms: 10_000,
        me_url_prefix: "https://t.me/".to_owned(),
        caption_length_max: 1024,
        message_length_max: 4096,
        webfile_dc_id: THIS_DC,
        ..Default::default()
    }
    .into()
}
