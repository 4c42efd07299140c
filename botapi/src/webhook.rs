//! Webhooks: each update is POSTed as JSON to the bot's URL, with the
//! `X-Telegram-Bot-Api-Secret-Token` header when the bot set one; a delivery that fails
//! (no connection, a timeout, a status other than 2xx) is tried again after a wait that
//! doubles up to [`crate::BotApiOptions::webhook_max_backoff`], and the error is kept for
//! `getWebhookInfo`. Updates go one at a time, in order; an update is confirmed once its
//! delivery succeeds. Only `http://` URLs are served (there is no TLS client here: a bot
//! behind HTTPS needs a proxy in front of it).

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::http::{Request, Uri, header};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::instance::{Instance, QueueLimits};
use crate::reply::BotApiError;
use crate::server::{Shared, blocking};

/// The HTTP client of webhook deliveries.
pub(crate) type Client = HyperClient<HttpConnector, Full<Bytes>>;

/// A new client.
pub(crate) fn client() -> Client {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

/// Checks a webhook URL: `http://host[:port]/path`.
pub(crate) fn check_url(url: &str) -> Result<Uri, BotApiError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| BotApiError::bad_request("bad webhook: invalid URL"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(uri),
        Some("https") => Err(BotApiError::bad_request(
            "bad webhook: this server delivers to http:// URLs only (put a TLS proxy in front \
             of the bot)",
        )),
        _ => Err(BotApiError::bad_request("bad webhook: invalid URL")),
    }
}

/// Whether `ip` is one of the deployment's own (loopback, private, link-local, unspecified,
/// shared, multicast or unique-local), which a webhook may not name unless allowed.
fn is_local(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                // 100.64.0.0/10, carrier-grade NAT.
                || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(|v4| is_local(v4.into()))
        }
    }
}

/// Checks where a webhook's host resolves: every address must be public unless local
/// webhooks are allowed. (A name that later resolves elsewhere is not caught: a deployment
/// that must rule that out resolves through its own filter.)
pub(crate) async fn check_address(uri: &Uri, allow_local: bool) -> Result<(), BotApiError> {
    if allow_local {
        return Ok(());
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let addresses: Vec<std::net::SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .map_err(|_| BotApiError::bad_request("bad webhook: failed to resolve host"))?
        .map_err(|_| BotApiError::bad_request("bad webhook: failed to resolve host"))?
        .take(16)
        .collect(),
    };
    if addresses.is_empty() || addresses.iter().any(|address| is_local(address.ip())) {
        return Err(BotApiError::bad_request(
            "bad webhook: the webhook's address is a local one",
        ));
    }
    Ok(())
}

/// Whether a secret token is one the Bot API takes: 1 to 256 of `A-Za-z0-9_-`.
pub(crate) fn secret_token_valid(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Delivers bot `bot`'s updates to its webhook of generation `generation` until the webhook
/// changes.
pub(crate) async fn deliver(
    shared: Arc<Shared>,
    instance: Arc<Instance>,
    bot: columba_store::user::Account,
    generation: u64,
) {
    let limits = QueueLimits {
        max_queued: shared.options.max_queued_updates,
        ttl: shared.options.update_ttl,
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(webhook) = current(&instance, generation) else {
            return;
        };
        let filled = {
            let (shared, instance, bot) = (shared.clone(), instance.clone(), bot.clone());
            blocking(move || instance.fill(&shared.backend, &bot, limits)).await
        };
        if let Err(error) = filled {
            tracing::warn!(%error, bot = bot.id, "webhook: the bot's updates cannot be read");
            tokio::time::sleep(backoff).await;
            continue;
        }
        let Some(update) = instance.first() else {
            instance.changed(Duration::from_secs(30)).await;
            continue;
        };
        let body = update.to_json().to_string();
        let outcome = post(&shared, &webhook.url, webhook.secret_token.as_deref(), body).await;
        match outcome {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                let next = update.update_id.saturating_add(1);
                let instance = instance.clone();
                let _ = blocking(move || {
                    instance.confirm(next);
                    Ok(())
                })
                .await;
            }
            Err(message) => {
                tracing::debug!(bot = bot.id, %message, "webhook delivery failed");
                if let Some(webhook) = instance
                    .webhook
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                    .filter(|webhook| webhook.generation == generation)
                {
                    webhook.last_error_date = Some(columba_api::objects::now_unix());
                    webhook.last_error_message = Some(message);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(shared.options.webhook_max_backoff);
            }
        }
    }
}

fn current(instance: &Instance, generation: u64) -> Option<crate::instance::Webhook> {
    instance
        .webhook
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .filter(|webhook| webhook.generation == generation)
}

async fn post(
    shared: &Shared,
    url: &str,
    secret_token: Option<&str>,
    body: String,
) -> Result<(), String> {
    let mut request = Request::post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "columba-botapi");
    if let Some(token) = secret_token {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", token);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| error.to_string())?;
    let response = tokio::time::timeout(
        shared.options.webhook_timeout,
        shared.client.request(request),
    )
    .await
    .map_err(|_| "Connection timed out".to_owned())?
    .map_err(|error| format!("Connection failed: {error}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("Wrong response from the webhook: {status}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use super::*;

    #[test]
    fn urls_and_secret_tokens_are_checked() {
        assert!(check_url("http://127.0.0.1:8443/hook").is_ok());
        for bad in ["", "ftp://x/", "https://x/", "/relative", "http://"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        for public in ["8.8.8.8", "2001:db8::1", "100.128.0.1"] {
            assert!(!is_local(public.parse().unwrap()), "{public}");
        }
        assert!(secret_token_valid("a-B_9"));
        assert!(!secret_token_valid(""));
        assert!(!secret_token_valid("a b"));
        assert!(!secret_token_valid(&"a".repeat(257)));
    }
}
