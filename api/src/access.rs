//! Access hashes: the keyed hashes that make `inputUser`, documents and file references
//! unguessable. A client can only name a user or a file it was shown by this server.

use columba_store::file::ContentId;
use rand::RngCore;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The bytes of an invite link's tag (88 bits: guessing one takes about 2^87 tries).
pub(crate) const INVITE_TAG_LEN: usize = 11;

/// The server's secret behind access hashes (32 bytes; keep it across restarts, or every
/// client's cached access hashes stop working).
#[derive(Clone)]
pub struct AccessSecret([u8; 32]);

impl std::fmt::Debug for AccessSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessSecret(..)")
    }
}

impl AccessSecret {
    /// The secret of these bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A new random secret.
    pub fn generate(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret's bytes (to save it).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    fn digest(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.0)
            .chain_update(label)
            .chain_update(data)
            .finalize()
            .into()
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> i64 {
        let digest = self.digest(label, data);
        let mut head = [0u8; 8];
        for (out, byte) in head.iter_mut().zip(digest.iter()) {
            *out = *byte;
        }
        i64::from_le_bytes(head)
    }

    /// The access hash of a user (the same for every viewer).
    pub fn user_hash(&self, user_id: i64) -> i64 {
        self.mac(b"user", &user_id.to_le_bytes())
    }

    /// Whether `hash` is the user's access hash (constant time).
    pub fn check_user_hash(&self, user_id: i64, hash: i64) -> bool {
        bool::from(
            self.user_hash(user_id)
                .to_le_bytes()
                .ct_eq(&hash.to_le_bytes()),
        )
    }

    /// The access hash of a channel (the same for every viewer).
    pub fn channel_hash(&self, channel_id: i64) -> i64 {
        self.mac(b"channel", &channel_id.to_le_bytes())
    }

    /// Whether `hash` is the channel's access hash (constant time).
    pub fn check_channel_hash(&self, channel_id: i64, hash: i64) -> bool {
        bool::from(
            self.channel_hash(channel_id)
                .to_le_bytes()
                .ct_eq(&hash.to_le_bytes()),
        )
    }

    /// The tag that makes an invite link unguessable: the head of the keyed hash of what
    /// the link names (its group and generation).
    pub fn invite_tag(&self, subject: &[u8]) -> [u8; INVITE_TAG_LEN] {
        let digest = self.digest(b"invite", subject);
        let mut tag = [0u8; INVITE_TAG_LEN];
        for (out, byte) in tag.iter_mut().zip(digest.iter()) {
            *out = *byte;
        }
        tag
    }

    /// Whether `tag` is the invite tag of `subject` (constant time).
    pub fn check_invite_tag(&self, subject: &[u8], tag: &[u8]) -> bool {
        bool::from(self.invite_tag(subject).as_slice().ct_eq(tag))
    }

    /// A tag of 16 bytes over `data` under the server's secret, in the domain `label`: for
    /// tokens an application hands out and must recognise (the Bot API's file ids).
    pub fn keyed_tag(&self, label: &[u8], data: &[u8]) -> [u8; 16] {
        let digest = self.digest(label, data);
        let mut tag = [0u8; 16];
        for (out, byte) in tag.iter_mut().zip(digest.iter()) {
            *out = *byte;
        }
        tag
    }

    /// Whether `tag` is [`Self::keyed_tag`] of `label` and `data` (constant time).
    pub fn check_keyed_tag(&self, label: &[u8], data: &[u8], tag: &[u8]) -> bool {
        bool::from(self.keyed_tag(label, data).as_slice().ct_eq(tag))
    }

    /// The `chat_instance` of the private chat of `user` with `bot`, as callback queries
    /// carry it: stable, and telling nothing of either id.
    pub fn chat_instance(&self, user: i64, bot: i64) -> i64 {
        let mut data = [0u8; 16];
        for (out, byte) in data
            .iter_mut()
            .zip(user.to_le_bytes().into_iter().chain(bot.to_le_bytes()))
        {
            *out = byte;
        }
        self.mac(b"chat_instance", &data)
    }

    /// The secret half of bot `bot`'s token of generation `generation`: 35 characters of
    /// `A-Za-z0-9_-` (210 bits) from a keyed hash, so that the server can show a bot's
    /// owner its token again without storing it (the store keeps only its hash). Whoever
    /// has this secret has every bot's token: it is kept like the server's private key.
    pub fn bot_token_secret(&self, bot: i64, generation: u32) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let mut data = [0u8; 12];
        for (out, byte) in data.iter_mut().zip(
            bot.to_le_bytes()
                .into_iter()
                .chain(generation.to_le_bytes()),
        ) {
            *out = byte;
        }
        let head = self.digest(b"bot token 1", &data);
        let tail = self.digest(b"bot token 2", &data);
        head.iter()
            .chain(tail.iter())
            .take(35)
            .map(|byte| {
                let index = usize::from(byte & 63);
                char::from(ALPHABET.get(index).copied().unwrap_or(b'A'))
            })
            .collect()
    }

    /// The access hash of a document whose file reference is its content id.
    pub fn document_hash(&self, content: &ContentId) -> i64 {
        self.mac(b"document", &content.0)
    }

    /// Whether `hash` is the document's access hash (constant time).
    pub fn check_document_hash(&self, content: &ContentId, hash: i64) -> bool {
        bool::from(
            self.document_hash(content)
                .to_le_bytes()
                .ct_eq(&hash.to_le_bytes()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_check_only_with_their_secret_and_subject() {
        let secret = AccessSecret::new([7; 32]);
        assert!(secret.check_user_hash(7, secret.user_hash(7)));
        assert!(!secret.check_user_hash(8, secret.user_hash(7)));
        assert!(secret.check_channel_hash(7, secret.channel_hash(7)));
        assert!(
            !secret.check_channel_hash(7, secret.user_hash(7)),
            "apart from users'"
        );
        let other = AccessSecret::new([1; 32]);
        assert!(!other.check_user_hash(7, secret.user_hash(7)));
        let content = ContentId([3; 32]);
        assert!(secret.check_document_hash(&content, secret.document_hash(&content)));
        assert!(!secret.check_document_hash(&ContentId([4; 32]), secret.document_hash(&content)));
        let tag = secret.invite_tag(b"group 7");
        assert!(secret.check_invite_tag(b"group 7", &tag));
        assert!(!secret.check_invite_tag(b"group 8", &tag));
        assert!(!other.check_invite_tag(b"group 7", &tag));
        assert!(
            !secret.check_invite_tag(b"group 7", &tag[..10]),
            "a short tag"
        );
        assert_eq!(
            AccessSecret::new(secret.to_bytes()).user_hash(9),
            secret.user_hash(9)
        );
    }
}
