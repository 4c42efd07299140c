//! Files as the Bot API shows them: `file_id` (stable per file, usable only by the bot it
//! was given to), `file_unique_id` (the same for every bot, for telling files apart, not for
//! downloading), uploads from multipart parts, `getFile`'s `file_path`, and the bytes at
//! `/file/bot<token>/<file_path>`.
//!
//! A `file_id` carries what a message needs to show the file again (its content id, size,
//! dimensions, name and type) and a tag under the server's secret over all that and the
//! bot's id, so a bot can neither forge one nor use another bot's. A `file_path` is
//! `photos/<content>.jpg` or `documents/<content><.ext>`: the content id (a SHA-256 of the
//! bytes) names the file; the route still wants the bot's token.

use base64ct::{Base64UrlUnpadded, Encoding as _};
use columba_api::{AccessSecret, Backend, upload};
use columba_mtproto::tl::api::{enums, types};
use columba_store::file::{ContentId, FileInfo};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::reply::BotApiError;

/// The version byte of a file id.
const VERSION: u8 = 1;
/// The domain of file-id tags.
const TAG_LABEL: &[u8] = b"bot api file id";
/// The longest name or MIME type kept in a file id, in bytes.
const MAX_NAME: usize = 64;
/// Bytes of an upload saved per part (the file store's largest part).
const PART: usize = 512 * 1024;
/// Above this size an upload is saved as a big file (the file store's threshold).
pub(crate) const BIG_FILE: usize = 10 * 1024 * 1024;

/// What a file is to the Bot API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A photo (one size).
    Photo,
    /// A document.
    Document,
}

/// A file as a message shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// Photo or document.
    pub kind: FileKind,
    /// The content.
    pub content: ContentId,
    /// Its size.
    pub size: u64,
    /// A photo's width and height.
    pub dimensions: (u32, u32),
    /// A document's file name.
    pub name: String,
    /// A document's MIME type.
    pub mime_type: String,
}

fn clip(text: &str) -> &str {
    let mut end = text.len().min(MAX_NAME);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

impl FileRef {
    /// The id's bytes before its tag (the bot's id is under the tag, not in the id).
    fn body(&self) -> Vec<u8> {
        let mut out = vec![VERSION, u8::from(self.kind == FileKind::Document)];
        out.extend_from_slice(&self.content.0);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.dimensions.0.to_le_bytes());
        out.extend_from_slice(&self.dimensions.1.to_le_bytes());
        for text in [clip(&self.name), clip(&self.mime_type)] {
            out.push(u8::try_from(text.len()).unwrap_or(0));
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    /// The file's `file_id` for bot `bot`.
    pub fn file_id(&self, access: &AccessSecret, bot: i64) -> String {
        let body = self.body();
        let tag = access.keyed_tag(TAG_LABEL, &[body.as_slice(), &bot.to_le_bytes()].concat());
        Base64UrlUnpadded::encode_string(&[body.as_slice(), &tag].concat())
    }

    /// The file a `file_id` names, if it is one the server gave bot `bot`.
    pub fn from_file_id(access: &AccessSecret, bot: i64, file_id: &str) -> Option<Self> {
        if file_id.len() > 512 {
            return None;
        }
        let bytes = Base64UrlUnpadded::decode_vec(file_id).ok()?;
        let (body, tag) = bytes.split_at_checked(bytes.len().checked_sub(16)?)?;
        if !access.check_keyed_tag(TAG_LABEL, &[body, &bot.to_le_bytes()].concat(), tag) {
            return None;
        }
        let (&version, rest) = body.split_first()?;
        let (&kind, rest) = rest.split_first()?;
        if version != VERSION {
            return None;
        }
        let (content, rest) = rest.split_first_chunk::<32>()?;
        let (size, rest) = rest.split_first_chunk::<8>()?;
        let (width, rest) = rest.split_first_chunk::<4>()?;
        let (height, mut rest) = rest.split_first_chunk::<4>()?;
        let mut texts = [String::new(), String::new()];
        for text in &mut texts {
            let (&len, after) = rest.split_first()?;
            let (bytes, after) = after.split_at_checked(usize::from(len))?;
            *text = String::from_utf8(bytes.to_vec()).ok()?;
            rest = after;
        }
        let [name, mime_type] = texts;
        rest.is_empty().then_some(Self {
            kind: if kind == 0 {
                FileKind::Photo
            } else {
                FileKind::Document
            },
            content: ContentId(*content),
            size: u64::from_le_bytes(*size),
            dimensions: (u32::from_le_bytes(*width), u32::from_le_bytes(*height)),
            name,
            mime_type,
        })
    }

    /// The file's `file_unique_id` (the same for every bot).
    pub fn unique_id(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"bot api unique file id")
            .chain_update(self.content.0)
            .finalize();
        Base64UrlUnpadded::encode_string(digest.get(..12).unwrap_or_default())
    }

    /// `getFile`'s `file_path`.
    pub fn path(&self) -> String {
        let content = Base64UrlUnpadded::encode_string(&self.content.0);
        match self.kind {
            FileKind::Photo => format!("photos/{content}.jpg"),
            FileKind::Document => {
                let extension = self
                    .name
                    .rsplit_once('.')
                    .map(|(_, extension)| extension)
                    .filter(|extension| {
                        !extension.is_empty()
                            && extension.len() <= 8
                            && extension.bytes().all(|b| b.is_ascii_alphanumeric())
                    });
                match extension {
                    Some(extension) => format!("documents/{content}.{extension}"),
                    None => format!("documents/{content}"),
                }
            }
        }
    }

    /// The Bot API's `File` of it, for bot `bot`.
    pub fn file_json(&self, access: &AccessSecret, bot: i64) -> Value {
        json!({
            "file_id": self.file_id(access, bot),
            "file_unique_id": self.unique_id(),
            "file_size": self.size,
            "file_path": self.path(),
        })
    }

    /// Telegram's media of it (to send it again).
    pub fn media(&self, backend: &Backend) -> enums::MessageMedia {
        let info = FileInfo {
            content: self.content,
            size: self.size,
            name: self.name.clone(),
            owner: 0,
            file_id: 0,
        };
        match self.kind {
            FileKind::Photo => {
                upload::photo_media(backend, &info, self.dimensions.0, self.dimensions.1)
            }
            FileKind::Document => {
                let attributes = vec![
                    types::DocumentAttributeFilename {
                        file_name: self.name.clone(),
                    }
                    .into(),
                ];
                upload::document_media(backend, &info, self.mime_type.clone(), attributes)
            }
        }
    }

    /// The file of a message's media, if it has one the Bot API shows.
    pub fn of_media(media: &enums::MessageMedia) -> Option<Self> {
        match media {
            enums::MessageMedia::MessageMediaPhoto(photo) => {
                let Some(enums::Photo::Photo(photo)) = &photo.photo else {
                    return None;
                };
                let content =
                    ContentId(<[u8; 32]>::try_from(photo.file_reference.as_slice()).ok()?);
                let (width, height, size) = photo.sizes.iter().find_map(|size| match size {
                    enums::PhotoSize::PhotoSize(size) => Some((size.w, size.h, size.size)),
                    _ => None,
                })?;
                Some(Self {
                    kind: FileKind::Photo,
                    content,
                    size: u64::try_from(size).unwrap_or(0),
                    dimensions: (
                        u32::try_from(width).unwrap_or(0),
                        u32::try_from(height).unwrap_or(0),
                    ),
                    name: String::new(),
                    mime_type: "image/jpeg".to_owned(),
                })
            }
            enums::MessageMedia::MessageMediaDocument(document) => {
                let Some(enums::Document::Document(document)) = &document.document else {
                    return None;
                };
                let content =
                    ContentId(<[u8; 32]>::try_from(document.file_reference.as_slice()).ok()?);
                let name = document
                    .attributes
                    .iter()
                    .find_map(|attribute| match attribute {
                        enums::DocumentAttribute::DocumentAttributeFilename(name) => {
                            Some(name.file_name.clone())
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                Some(Self {
                    kind: FileKind::Document,
                    content,
                    size: u64::try_from(document.size).unwrap_or(0),
                    dimensions: (0, 0),
                    name,
                    mime_type: document.mime_type.clone(),
                })
            }
            _ => None,
        }
    }

    /// The JSON a `Message` shows of it for bot `bot`: (`"photo"`, sizes) or
    /// (`"document"`, the document).
    pub fn message_json(&self, access: &AccessSecret, bot: i64) -> (&'static str, Value) {
        let id = self.file_id(access, bot);
        let unique = self.unique_id();
        match self.kind {
            FileKind::Photo => (
                "photo",
                json!([{
                    "file_id": id,
                    "file_unique_id": unique,
                    "width": self.dimensions.0,
                    "height": self.dimensions.1,
                    "file_size": self.size,
                }]),
            ),
            FileKind::Document => (
                "document",
                json!({
                    "file_id": id,
                    "file_unique_id": unique,
                    "file_name": self.name,
                    "mime_type": self.mime_type,
                    "file_size": self.size,
                }),
            ),
        }
    }
}

/// The content a `file_path` names, if it is one `getFile` gives.
pub fn content_of_path(path: &str) -> Option<ContentId> {
    let (kind, name) = path.split_once('/')?;
    if kind != "photos" && kind != "documents" {
        return None;
    }
    let encoded = name.split_once('.').map_or(name, |(encoded, _)| encoded);
    let bytes = Base64UrlUnpadded::decode_vec(encoded).ok()?;
    Some(ContentId(<[u8; 32]>::try_from(bytes.as_slice()).ok()?))
}

/// Saves `bytes` as the parts of an upload of bot `bot` (not finished: `upload::media`
/// finishes it); the upload's id and its number of parts. Blocking.
pub fn save(backend: &Backend, bot: i64, bytes: &[u8]) -> Result<(i64, i32), BotApiError> {
    if bytes.is_empty() {
        return Err(BotApiError::bad_request("file must be non-empty"));
    }
    let file_id: i64 = rand::random();
    let now = i64::from(columba_api::objects::now_unix());
    let parts = bytes.chunks(PART);
    let total = i32::try_from(parts.len()).map_err(|_| BotApiError::too_large())?;
    let big = bytes.len() > BIG_FILE;
    for (part, chunk) in parts.enumerate() {
        let part = i32::try_from(part).map_err(|_| BotApiError::too_large())?;
        let saved = if big {
            backend
                .files
                .save_big_part(bot, file_id, part, total, chunk, now)
        } else {
            backend.files.save_part(bot, file_id, part, chunk, now)
        };
        saved.map_err(|error| BotApiError::from(columba_api::ApiError::from(error)))?;
    }
    Ok((file_id, total))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use proptest::prelude::*;

    use super::*;

    fn file(kind: FileKind, name: &str) -> FileRef {
        FileRef {
            kind,
            content: ContentId([7; 32]),
            size: 1234,
            dimensions: (640, 480),
            name: name.to_owned(),
            mime_type: "text/plain".to_owned(),
        }
    }

    #[test]
    fn file_ids_are_the_bot_s_own_and_read_back() {
        let access = AccessSecret::new([1; 32]);
        let photo = file(FileKind::Photo, "");
        let id = photo.file_id(&access, 5);
        assert_eq!(id, photo.file_id(&access, 5), "stable");
        assert_eq!(FileRef::from_file_id(&access, 5, &id), Some(photo.clone()));
        assert_eq!(
            FileRef::from_file_id(&access, 6, &id),
            None,
            "another bot's"
        );
        assert_eq!(
            FileRef::from_file_id(&AccessSecret::new([2; 32]), 5, &id),
            None
        );
        assert_ne!(photo.file_id(&access, 6), id);
        assert_eq!(photo.unique_id(), file(FileKind::Document, "x").unique_id());
        let document = file(FileKind::Document, &"é".repeat(100));
        let read = FileRef::from_file_id(&access, 5, &document.file_id(&access, 5)).unwrap();
        assert_eq!(
            read.name.len(),
            MAX_NAME,
            "long names are cut at a character"
        );
    }

    #[test]
    fn paths_name_their_content() {
        let document = file(FileKind::Document, "notes.txt");
        assert!(document.path().ends_with(".txt"));
        assert_eq!(content_of_path(&document.path()), Some(document.content));
        assert_eq!(
            content_of_path(&file(FileKind::Photo, "").path()),
            Some(ContentId([7; 32]))
        );
        for bad in ["", "photos/", "other/abc", "documents/!!", "documents/AAAA"] {
            assert_eq!(content_of_path(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_string_is_a_file_id_or_refused_without_panic(text in ".{0,200}") {
            let access = AccessSecret::new([1; 32]);
            prop_assert_eq!(FileRef::from_file_id(&access, 1, &text), None);
            let _ = content_of_path(&text);
        }
    }
}
