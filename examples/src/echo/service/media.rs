//! Media: uploads finished into documents and photos, and downloads (`upload.getFile`)
//! checked against their keyed access hashes.

use super::*;

/// The one size of a photo: the original.
const PHOTO_SIZE: &str = "y";

/// The document id of a content: its first eight bytes.
pub(super) fn document_id(content: &ContentId) -> i64 {
    let mut head = [0u8; 8];
    for (out, byte) in head.iter_mut().zip(content.0.iter()) {
        *out = *byte;
    }
    i64::from_le_bytes(head)
}

impl EchoApp {
    /// The `MessageMedia` for an `InputMedia`: uploaded documents (their upload finished
    /// here), or media already on the server.
    pub(super) fn media(
        &self,
        user: i64,
        input: &enums::InputMedia,
    ) -> Result<enums::MessageMedia, RpcError> {
        match input {
            enums::InputMedia::InputMediaUploadedDocument(uploaded) => {
                let info = self.finish_upload(user, &uploaded.file)?;
                let mut attributes = uploaded.attributes.clone();
                let named = attributes.iter().any(|attribute| {
                    matches!(
                        attribute,
                        enums::DocumentAttribute::DocumentAttributeFilename(_)
                    )
                });
                if !named {
                    attributes.push(
                        types::DocumentAttributeFilename {
                            file_name: info.name.clone(),
                        }
                        .into(),
                    );
                }
                Ok(self.document_media(&info, uploaded.mime_type.clone(), attributes))
            }
            enums::InputMedia::InputMediaUploadedPhoto(uploaded) => {
                // A photo of one size, the original (no thumbnails: nothing is decoded); a
                // file that is not a JPEG or PNG image is kept as a document.
                let info = self.finish_upload(user, &uploaded.file)?;
                let head_len = i32::try_from(image::HEAD_BYTES).unwrap_or(i32::MAX);
                let head = self
                    .files
                    .get_file(info.content, 0, head_len, false)
                    .map_err(file_error)?;
                match image::dimensions(&head) {
                    Some((width, height)) => Ok(self.photo_media(&info, width, height)),
                    None => {
                        let attributes = vec![
                            types::DocumentAttributeFilename {
                                file_name: info.name.clone(),
                            }
                            .into(),
                        ];
                        Ok(self.document_media(
                            &info,
                            "application/octet-stream".to_owned(),
                            attributes,
                        ))
                    }
                }
            }
            _ => Err(bad_request("MEDIA_INVALID")),
        }
    }

    pub(super) fn finish_upload(
        &self,
        user: i64,
        file: &enums::InputFile,
    ) -> Result<FileInfo, RpcError> {
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
            _ => return Err(bad_request("MEDIA_INVALID")),
        };
        // A send repeated after its upload was finished finds the file already there.
        if let Some(info) = self.files.file(user, request.file_id).map_err(file_error)? {
            return Ok(info);
        }
        self.files
            .finish(&request, i64::from(now_unix()))
            .map_err(file_error)
    }

    pub(super) fn document_media(
        &self,
        info: &FileInfo,
        mime_type: String,
        attributes: Vec<enums::DocumentAttribute>,
    ) -> enums::MessageMedia {
        let document = types::Document {
            id: document_id(&info.content),
            access_hash: self.secret.document_hash(&info.content),
            file_reference: info.content.0.to_vec(),
            date: now_unix(),
            mime_type,
            size: i64::try_from(info.size).unwrap_or(i64::MAX),
            thumbs: None,
            video_thumbs: None,
            dc_id: tl::THIS_DC,
            attributes,
        };
        types::MessageMediaDocument {
            nopremium: false,
            spoiler: false,
            video: false,
            round: false,
            voice: false,
            document: Some(document.into()),
            alt_documents: None,
            video_cover: None,
            video_timestamp: None,
            ttl_seconds: None,
        }
        .into()
    }

    pub(super) fn photo_media(
        &self,
        info: &FileInfo,
        width: u32,
        height: u32,
    ) -> enums::MessageMedia {
        let photo = types::Photo {
            has_stickers: false,
            id: document_id(&info.content),
            access_hash: self.secret.document_hash(&info.content),
            file_reference: info.content.0.to_vec(),
            date: now_unix(),
            sizes: vec![
                types::PhotoSize {
                    r#type: PHOTO_SIZE.to_owned(),
                    w: i32::try_from(width).unwrap_or(i32::MAX),
                    h: i32::try_from(height).unwrap_or(i32::MAX),
                    size: i32::try_from(info.size).unwrap_or(i32::MAX),
                }
                .into(),
            ],
            video_sizes: None,
            dc_id: tl::THIS_DC,
        };
        types::MessageMediaPhoto {
            spoiler: false,
            live_photo: false,
            photo: Some(photo.into()),
            ttl_seconds: None,
            video: None,
        }
        .into()
    }

    pub(super) fn get_file(
        &self,
        request: &functions::upload::GetFile,
    ) -> Result<Vec<u8>, RpcError> {
        // Documents and photos alike: the file reference is the content id, the access hash
        // a keyed hash of it; a photo has one size, the original.
        let (id, access_hash, file_reference) = match &request.location {
            enums::InputFileLocation::InputDocumentFileLocation(location) => {
                (location.id, location.access_hash, &location.file_reference)
            }
            enums::InputFileLocation::InputPhotoFileLocation(location)
                if location.thumb_size == PHOTO_SIZE =>
            {
                (location.id, location.access_hash, &location.file_reference)
            }
            _ => return Err(bad_request("LOCATION_INVALID")),
        };
        let content = <[u8; 32]>::try_from(file_reference.as_slice())
            .map(ContentId)
            .map_err(|_| bad_request("FILE_REFERENCE_INVALID"))?;
        if id != document_id(&content) || !self.secret.check_document_hash(&content, access_hash) {
            return Err(bad_request("FILE_REFERENCE_INVALID"));
        }
        let bytes = self
            .files
            .get_file(content, request.offset, request.limit, request.precise)
            .map_err(file_error)?;
        Ok(enums::upload::File::from(types::upload::File {
            r#type: types::storage::FileUnknown {}.into(),
            mtime: 0,
            bytes,
        })
        .to_bytes())
    }
}
