//! `upload`: file parts in (`saveFilePart`, `saveBigFilePart`), files out (`getFile`, checked
//! against keyed access hashes), and the media of a message made from a finished upload
//! (documents, and photos of one size, the original).

use std::sync::Arc;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::file::{ContentId, FileInfo, FinishRequest};

use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::image;
use crate::objects::now_unix;
use crate::router::Router;

/// The one size of a photo: the original.
pub const PHOTO_SIZE: &str = "y";

/// `upload.saveFilePart`, `upload.saveBigFilePart`, `upload.getFile`.
pub fn router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route_with(backend.clone(), save_file_part)
        .route_with(backend.clone(), save_big_file_part)
        .route_with(backend, get_file)
}

/// `upload.saveFilePart`, under the file store's rules and error names.
pub async fn save_file_part(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::upload::SaveFilePart,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    ctx.blocking(move || {
        backend.files.save_part(
            user,
            request.file_id,
            request.file_part,
            &request.bytes,
            i64::from(now_unix()),
        )?;
        Ok(true)
    })
    .await
}

/// `upload.saveBigFilePart`.
pub async fn save_big_file_part(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::upload::SaveBigFilePart,
) -> Result<bool, ApiError> {
    let user = ctx.user()?;
    ctx.blocking(move || {
        backend.files.save_big_part(
            user,
            request.file_id,
            request.file_part,
            request.file_total_parts,
            &request.bytes,
            i64::from(now_unix()),
        )?;
        Ok(true)
    })
    .await
}

/// The document id of a content: its first eight bytes.
pub fn document_id(content: &ContentId) -> i64 {
    let mut head = [0u8; 8];
    for (out, byte) in head.iter_mut().zip(content.0.iter()) {
        *out = *byte;
    }
    i64::from_le_bytes(head)
}

/// `upload.getFile` of a document, of a photo's one size, of a user's profile photo
/// (`inputPeerPhotoFileLocation`, either size: there is one), or of a secret chat's
/// encrypted file (`inputEncryptedFileLocation`: the ciphertext as uploaded). The file reference is the
/// content id and the access hash a keyed hash of it: `FILE_REFERENCE_INVALID` when they
/// do not match; a profile photo is found among its user's photos (`LOCATION_INVALID`
/// otherwise).
pub async fn get_file(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::upload::GetFile,
) -> Result<enums::upload::File, ApiError> {
    let invalid = || ApiError::bad_request("FILE_REFERENCE_INVALID");
    let checked = |id: i64, access_hash: i64, file_reference: &[u8]| {
        let content = <[u8; 32]>::try_from(file_reference)
            .map(ContentId)
            .map_err(|_| invalid())?;
        if id != document_id(&content) || !backend.access.check_document_hash(&content, access_hash)
        {
            return Err(invalid());
        }
        Ok(Some(content))
    };
    let content = match &request.location {
        enums::InputFileLocation::InputDocumentFileLocation(location) => {
            checked(location.id, location.access_hash, &location.file_reference)?
        }
        enums::InputFileLocation::InputPhotoFileLocation(location)
            if location.thumb_size == PHOTO_SIZE =>
        {
            checked(location.id, location.access_hash, &location.file_reference)?
        }
        enums::InputFileLocation::InputPeerPhotoFileLocation(_)
        | enums::InputFileLocation::InputEncryptedFileLocation(_) => None,
        _ => return Err(ApiError::bad_request("LOCATION_INVALID")),
    };
    let viewer = ctx.user()?;
    ctx.blocking(move || {
        let content = match (content, &request.location) {
            (Some(content), _) => content,
            (None, enums::InputFileLocation::InputPeerPhotoFileLocation(location)) => {
                let user = backend.input_peer(viewer, &location.peer)?;
                backend
                    .users
                    .photos(user)?
                    .iter()
                    .find(|photo| photo.photo_id == location.photo_id)
                    .map(|photo| photo.content)
                    .ok_or_else(|| ApiError::bad_request("LOCATION_INVALID"))?
            }
            (None, enums::InputFileLocation::InputEncryptedFileLocation(location)) => {
                crate::secret::encrypted_file_content(&backend, location.id, location.access_hash)?
            }
            (None, _) => return Err(ApiError::bad_request("LOCATION_INVALID")),
        };
        let bytes =
            backend
                .files
                .get_file(content, request.offset, request.limit, request.precise)?;
        Ok(types::upload::File {
            r#type: types::storage::FileUnknown {}.into(),
            mtime: 0,
            bytes,
        }
        .into())
    })
    .await
}

/// The finished file of an `InputFile` the user uploaded: finished now, or found finished
/// (a send repeated after its upload was finished).
pub fn finish_upload(
    backend: &Backend,
    user: i64,
    file: &enums::InputFile,
) -> Result<FileInfo, ApiError> {
    let request = match file {
        enums::InputFile::InputFile(file) => FinishRequest {
            owner: user,
            file_id: file.id,
            parts: file.parts,
            name: file.name.clone(),
            md5_checksum: Some(file.md5_checksum.clone()),
        },
        enums::InputFile::InputFileBig(file) => FinishRequest {
            owner: user,
            file_id: file.id,
            parts: file.parts,
            name: file.name.clone(),
            md5_checksum: None,
        },
        _ => return Err(ApiError::bad_request("MEDIA_INVALID")),
    };
    if let Some(info) = backend.files.file(user, request.file_id)? {
        return Ok(info);
    }
    Ok(backend.files.finish(&request, i64::from(now_unix()))?)
}

/// The `MessageMedia` of an `InputMedia`: an uploaded document, or an uploaded photo (a
/// JPEG or PNG of one size; any other file is kept as a document). Blocking.
pub fn media(
    backend: &Backend,
    user: i64,
    input: &enums::InputMedia,
) -> Result<enums::MessageMedia, ApiError> {
    match input {
        enums::InputMedia::InputMediaUploadedDocument(uploaded) => {
            let info = finish_upload(backend, user, &uploaded.file)?;
            let mut attributes = uploaded.attributes.clone();
            let named = attributes.iter().any(|attribute| {
                matches!(
                    attribute,
                    enums::DocumentAttribute::DocumentAttributeFilename(_)
                )
            });
            if !named {
                attributes.push(file_name(&info));
            }
            Ok(document_media(
                backend,
                &info,
                uploaded.mime_type.clone(),
                attributes,
            ))
        }
        enums::InputMedia::InputMediaUploadedPhoto(uploaded) => {
            let info = finish_upload(backend, user, &uploaded.file)?;
            let head_len = i32::try_from(image::HEAD_BYTES).unwrap_or(i32::MAX);
            let head = backend.files.get_file(info.content, 0, head_len, false)?;
            Ok(match image::dimensions(&head) {
                Some((width, height)) => photo_media(backend, &info, width, height),
                None => document_media(
                    backend,
                    &info,
                    "application/octet-stream".to_owned(),
                    vec![file_name(&info)],
                ),
            })
        }
        _ => Err(ApiError::bad_request("MEDIA_INVALID")),
    }
}

fn file_name(info: &FileInfo) -> enums::DocumentAttribute {
    types::DocumentAttributeFilename {
        file_name: info.name.clone(),
    }
    .into()
}

/// `messageMediaDocument` of a finished file.
pub fn document_media(
    backend: &Backend,
    info: &FileInfo,
    mime_type: String,
    attributes: Vec<enums::DocumentAttribute>,
) -> enums::MessageMedia {
    let document = types::Document {
        id: document_id(&info.content),
        access_hash: backend.access.document_hash(&info.content),
        file_reference: info.content.0.to_vec(),
        date: now_unix(),
        mime_type,
        size: i64::try_from(info.size).unwrap_or(i64::MAX),
        thumbs: None,
        video_thumbs: None,
        dc_id: backend.dcs.this_dc,
        attributes,
    };
    types::MessageMediaDocument {
        document: Some(document.into()),
        ..Default::default()
    }
    .into()
}

/// `messageMediaPhoto` of a finished image, with one size (the original).
pub fn photo_media(
    backend: &Backend,
    info: &FileInfo,
    width: u32,
    height: u32,
) -> enums::MessageMedia {
    let photo = photo(
        backend,
        &info.content,
        info.size,
        (width, height),
        now_unix(),
    );
    types::MessageMediaPhoto {
        photo: Some(photo.into()),
        ..Default::default()
    }
    .into()
}

/// A `photo` of one size (the original, [`PHOTO_SIZE`]) of a finished image: its id is the
/// content's [`document_id`], its file reference the content id, so that `upload.getFile`
/// finds it.
pub fn photo(
    backend: &Backend,
    content: &ContentId,
    size: u64,
    (width, height): (u32, u32),
    date: i32,
) -> types::Photo {
    types::Photo {
        has_stickers: false,
        id: document_id(content),
        access_hash: backend.access.document_hash(content),
        file_reference: content.0.to_vec(),
        date,
        sizes: vec![
            types::PhotoSize {
                r#type: PHOTO_SIZE.to_owned(),
                w: i32::try_from(width).unwrap_or(i32::MAX),
                h: i32::try_from(height).unwrap_or(i32::MAX),
                size: i32::try_from(size).unwrap_or(i32::MAX),
            }
            .into(),
        ],
        video_sizes: None,
        dc_id: backend.dcs.this_dc,
    }
}
