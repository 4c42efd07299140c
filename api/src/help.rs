//! `help`: the configuration and the nearest DC, callable before sign-in.

use std::sync::Arc;

use columba_mtproto::tl::api::{enums, functions, types};

use crate::backend::Backend;
use crate::context::Ctx;
use crate::error::ApiError;
use crate::objects;
use crate::router::Router;

/// `help.getConfig` and `help.getNearestDc`.
pub fn router(backend: Arc<Backend>) -> Router {
    Router::new()
        .public_with(backend.clone(), get_config)
        .public_with(backend, get_nearest_dc)
}

/// `help.getConfig`: the DC list and Telegram's usual limits.
pub async fn get_config(
    _: Ctx,
    backend: Arc<Backend>,
    _: functions::help::GetConfig,
) -> Result<enums::Config, ApiError> {
    Ok(objects::config(&backend.dcs, objects::now_unix()))
}

/// `help.getNearestDc`: this DC (no geography is known).
pub async fn get_nearest_dc(
    _: Ctx,
    backend: Arc<Backend>,
    _: functions::help::GetNearestDc,
) -> Result<enums::NearestDc, ApiError> {
    Ok(types::NearestDc {
        country: "ZZ".to_owned(),
        this_dc: backend.dcs.this_dc,
        nearest_dc: backend.dcs.this_dc,
    }
    .into())
}
