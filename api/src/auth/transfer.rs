//! Moving a sign-in to another connection's key: `auth.exportAuthorization` gives a signed-in
//! user a token for a DC, and `auth.importAuthorization` signs the key of the connection
//! that presents it in as that user. Clients do this when they open a connection to another
//! DC (media, files); on one node every DC id is this node, and the token is checked here.
//!
//! Tokens are 32 random bytes, compared in constant time, single-use, and live
//! [`LoginOptions::export_ttl`](super::LoginOptions::export_ttl); at most
//! [`LoginOptions::max_exports`](super::LoginOptions::max_exports) wait at once.

use std::sync::{Arc, PoisonError};
use std::time::Instant;

use columba_mtproto::tl::api::{enums, functions, types};
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;

use super::Login;
use crate::context::Ctx;
use crate::error::ApiError;

/// Exported tokens one user may have waiting at once (a client opens a few DCs at a time).
pub(super) const MAX_EXPORTS_PER_USER: usize = 16;

/// An exported token waiting for its import.
pub(super) struct Export {
    user: i64,
    dc_id: i32,
    made: Instant,
}

/// `auth.exportAuthorization`: a token for `dc_id` (`DC_ID_INVALID` for a DC the
/// deployment does not have).
pub async fn export_authorization(
    ctx: Ctx,
    login: Arc<Login>,
    request: functions::auth::ExportAuthorization,
) -> Result<enums::auth::ExportedAuthorization, ApiError> {
    let user = ctx.user()?;
    if !login
        .backend
        .dcs
        .options
        .iter()
        .any(|(id, _)| *id == request.dc_id)
    {
        return Err(ApiError::bad_request("DC_ID_INVALID"));
    }
    let now = login.clock.now();
    let ttl = login.options.export_ttl;
    let mut token = [0u8; 32];
    rand::rng().fill_bytes(&mut token);
    let mut exports = login.exports.lock().unwrap_or_else(PoisonError::into_inner);
    exports.retain(|_, export| now.saturating_duration_since(export.made) < ttl);
    // One user cannot take the table from the others.
    let mine = exports
        .values()
        .filter(|export| export.user == user)
        .count();
    if exports.len() >= login.options.max_exports || mine >= MAX_EXPORTS_PER_USER {
        return Err(ApiError::flood_wait(ttl.as_secs()));
    }
    exports.insert(
        token,
        Export {
            user,
            dc_id: request.dc_id,
            made: now,
        },
    );
    Ok(types::auth::ExportedAuthorization {
        id: user,
        bytes: token.to_vec(),
    }
    .into())
}

/// `auth.importAuthorization`: the caller's key is signed in as the token's user
/// (`AUTH_BYTES_INVALID` for a token that is unknown, used, expired, or of another user).
pub async fn import_authorization(
    ctx: Ctx,
    login: Arc<Login>,
    request: functions::auth::ImportAuthorization,
) -> Result<enums::auth::Authorization, ApiError> {
    ctx.perm_auth_key_id()?;
    let invalid = || ApiError::bad_request("AUTH_BYTES_INVALID");
    let presented = <[u8; 32]>::try_from(request.bytes.as_slice()).map_err(|_| invalid())?;
    let now = login.clock.now();
    let export = {
        let mut exports = login.exports.lock().unwrap_or_else(PoisonError::into_inner);
        // A hash lookup of 256 random bits (its timing tells nothing useful about other
        // tokens), then a constant-time confirmation of the whole token.
        exports
            .remove_entry(&presented)
            .filter(|(token, _)| bool::from(token.ct_eq(&presented)))
            .map(|(_, export)| export)
    };
    let export = export.ok_or_else(invalid)?;
    if export.user != request.id
        || now.saturating_duration_since(export.made) >= login.options.export_ttl
    {
        return Err(invalid());
    }
    tracing::debug!(
        user_id = export.user,
        dc_id = export.dc_id,
        "authorization imported"
    );
    let account = {
        let backend = login.backend.clone();
        let user = export.user;
        ctx.blocking(move || backend.live_user(user)).await?
    };
    login.authorize(&ctx, account).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use std::time::Duration;

    use columba_store::AuthKeyStore as _;

    use super::*;
    use crate::auth::tests::signed_in_fixture;

    #[tokio::test]
    async fn a_token_signs_in_another_key_once_and_not_after_it_expired() {
        let (f, user) = signed_in_fixture().await;
        let export = |dc_id| {
            export_authorization(
                Ctx::detached(super::super::tests::KEY, Some(user)),
                f.login.clone(),
                functions::auth::ExportAuthorization { dc_id },
            )
        };
        assert_eq!(export(9).await.unwrap_err().name(), "DC_ID_INVALID");
        let enums::auth::ExportedAuthorization::ExportedAuthorization(token) =
            export(1).await.unwrap();
        assert_eq!(token.id, user);
        let other_key = f.add_key(78);
        let import = |id, bytes: Vec<u8>| {
            import_authorization(
                Ctx::detached(other_key, None),
                f.login.clone(),
                functions::auth::ImportAuthorization { id, bytes },
            )
        };
        // Another user's id, or another token, is refused, and the token is used up by the
        // refusal of a wrong id (single use).
        assert_eq!(
            import(user + 1, token.bytes.clone())
                .await
                .unwrap_err()
                .name(),
            "AUTH_BYTES_INVALID"
        );
        let enums::auth::ExportedAuthorization::ExportedAuthorization(token) =
            export(1).await.unwrap();
        assert_eq!(
            import(user, vec![0; 32]).await.unwrap_err().name(),
            "AUTH_BYTES_INVALID"
        );
        import(user, token.bytes.clone()).await.unwrap();
        assert_eq!(f.keys.get(other_key).unwrap().unwrap().user_id, Some(user));
        assert_eq!(
            import(user, token.bytes).await.unwrap_err().name(),
            "AUTH_BYTES_INVALID",
            "a token is good once"
        );
        let enums::auth::ExportedAuthorization::ExportedAuthorization(token) =
            export(1).await.unwrap();
        f.login.advance(Duration::from_secs(61));
        assert_eq!(
            import(user, token.bytes).await.unwrap_err().name(),
            "AUTH_BYTES_INVALID",
            "expired"
        );
        // One user has a few tokens waiting at most.
        for _ in 0..MAX_EXPORTS_PER_USER {
            export(1).await.unwrap();
        }
        assert!(
            export(1)
                .await
                .unwrap_err()
                .name()
                .starts_with("FLOOD_WAIT_")
        );
    }
}
