//! `photos`: profile photos. An uploaded image (JPEG or PNG, of one size: the original)
//! becomes the caller's current photo; the older ones stay listed until deleted or pushed
//! out past the store's `max_photos`. Watchers get `updateUser` when the current photo
//! changes, and clients download a photo through `upload.getFile`.

use std::sync::Arc;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_store::user::ProfilePhoto;

use crate::account::tell_watchers;
use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::image;
use crate::objects::now_unix;
use crate::router::Router;
use crate::upload::{self, document_id};

/// The most photos in one page of `photos.getUserPhotos`.
pub const MAX_PHOTOS_PAGE: usize = 100;

/// `photos.uploadProfilePhoto`, `photos.getUserPhotos`, `photos.deletePhotos`.
pub fn router(backend: Arc<Backend>) -> Router {
    Router::new()
        .route_with(backend.clone(), upload_profile_photo)
        .route_with(backend.clone(), get_user_photos)
        .route_with(backend, delete_photos)
}

fn photo_object(backend: &Backend, photo: &ProfilePhoto) -> enums::Photo {
    upload::photo(
        backend,
        &photo.content,
        photo.size,
        (photo.width, photo.height),
        photo.date,
    )
    .into()
}

/// `photos.uploadProfilePhoto` of an uploaded image (`PHOTO_FILE_MISSING` without one,
/// `PHOTO_INVALID` when it is not a JPEG or PNG; videos and photos for bots are not taken:
/// `PHOTO_INVALID`).
pub async fn upload_profile_photo(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::photos::UploadProfilePhoto,
) -> Result<enums::photos::Photo, ApiError> {
    let user = ctx.user()?;
    if request.video.is_some() || request.bot.is_some() || request.fallback {
        return Err(ApiError::bad_request("PHOTO_INVALID"));
    }
    let file = request
        .file
        .ok_or_else(|| ApiError::bad_request("PHOTO_FILE_MISSING"))?;
    let server = ctx.server().clone();
    ctx.blocking(move || {
        let info = upload::finish_upload(&backend, user, &file)?;
        let head_len = i32::try_from(image::HEAD_BYTES).unwrap_or(i32::MAX);
        let head = backend.files.get_file(info.content, 0, head_len, false)?;
        let (width, height) =
            image::dimensions(&head).ok_or_else(|| ApiError::bad_request("PHOTO_INVALID"))?;
        let photo = ProfilePhoto {
            photo_id: document_id(&info.content),
            content: info.content,
            size: info.size,
            width,
            height,
            date: now_unix(),
        };
        let account = match backend.users.add_photo(user, photo) {
            Ok(account) => account,
            // The same image again: it is already among the photos.
            Err(columba_store::UserError::PhotoInvalid) => backend.live_user(user)?,
            Err(error) => return Err(error.into()),
        };
        tell_watchers(
            &server,
            &backend,
            user,
            types::UpdateUser { user_id: user }.into(),
        );
        let users = backend.user_objects([account.id], user)?;
        Ok(types::photos::Photo {
            photo: photo_object(&backend, &photo),
            users,
        }
        .into())
    })
    .await
}

/// `photos.getUserPhotos`: the user's photos, newest first, from `offset`, at most `limit`
/// (`max_id` above zero: only photos with a smaller id, as the offset of the next page).
pub async fn get_user_photos(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::photos::GetUserPhotos,
) -> Result<enums::photos::Photos, ApiError> {
    let viewer = ctx.user()?;
    let offset = usize::try_from(request.offset).unwrap_or(0);
    let limit = usize::try_from(request.limit)
        .unwrap_or(0)
        .clamp(1, MAX_PHOTOS_PAGE);
    ctx.blocking(move || {
        let user = backend.input_user(viewer, &request.user_id)?;
        let all = backend.users.photos(user)?;
        let count = all.len();
        let page: Vec<enums::Photo> = all
            .iter()
            .skip_while(|photo| request.max_id != 0 && photo.photo_id != request.max_id)
            .skip(usize::from(request.max_id != 0))
            .skip(offset)
            .take(limit)
            .map(|photo| photo_object(&backend, photo))
            .collect();
        let users = backend.user_objects([user], viewer)?;
        if page.len() == count {
            Ok(types::photos::Photos {
                photos: page,
                users,
            }
            .into())
        } else {
            Ok(types::photos::PhotosSlice {
                count: i32::try_from(count).unwrap_or(i32::MAX),
                photos: page,
                users,
            }
            .into())
        }
    })
    .await
}

/// `photos.deletePhotos`: the ids of the caller's photos deleted (others' and unknown ones
/// are skipped).
pub async fn delete_photos(
    ctx: Ctx,
    backend: Arc<Backend>,
    request: functions::photos::DeletePhotos,
) -> Result<Vec<i64>, ApiError> {
    let user = ctx.user()?;
    if request.id.len() > MAX_PHOTOS_PAGE {
        return Err(ApiError::bad_request("LIMIT_INVALID"));
    }
    let ids: Vec<i64> = request
        .id
        .iter()
        .filter_map(|input| match input {
            enums::InputPhoto::InputPhoto(photo) => Some(photo.id),
            enums::InputPhoto::InputPhotoEmpty(_) => None,
        })
        .collect();
    let server = ctx.server().clone();
    ctx.blocking(move || {
        let deleted = backend.users.delete_photos(user, &ids)?;
        if !deleted.is_empty() {
            tell_watchers(
                &server,
                &backend,
                user,
                types::UpdateUser { user_id: user }.into(),
            );
        }
        Ok(deleted)
    })
    .await
}
