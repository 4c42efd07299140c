//! Login: codes sent through the `CodeSender`, checked in constant time, and sign-in (a new
//! phone number is registered on its first sign-in).

use super::*;

/// How long a login code lives.
const CODE_TTL: Duration = Duration::from_secs(300);
/// Wrong codes before a code is dropped.
const CODE_ATTEMPTS: u32 = 5;
/// Login codes waiting at once (each `auth.sendCode` adds one; the oldest go first).
const MAX_PENDING_CODES: usize = 10_000;

/// A code waiting for its sign-in.
pub(super) struct PendingCode {
    hash: String,
    code: String,
    sent: Instant,
    attempts: u32,
}

impl EchoApp {
    pub(super) async fn send_code(&self, body: &[u8]) -> RpcOutcome {
        let request: functions::auth::SendCode = decode(body)?;
        let phone = normalize_phone(&request.phone_number)
            .ok_or_else(|| bad_request("PHONE_NUMBER_INVALID"))?;
        let (code, hash) = {
            let mut rng = rand::rng();
            let code = match &self.settings.fixed_code {
                Some(code) => code.clone(),
                None => format!("{:05}", rng.random_range(0..100_000u32)),
            };
            let hash: String = (0..16)
                .map(|_| format!("{:x}", rng.random_range(0..16u8)))
                .collect();
            (code, hash)
        };
        {
            let mut codes = self.codes.lock().unwrap_or_else(PoisonError::into_inner);
            codes.retain(|_, pending| pending.sent.elapsed() < CODE_TTL);
            if codes.len() >= MAX_PENDING_CODES {
                return Err(RpcError::new(420, "FLOOD_WAIT_60"));
            }
            codes.insert(
                phone.clone(),
                PendingCode {
                    hash: hash.clone(),
                    code: code.clone(),
                    sent: Instant::now(),
                    attempts: 0,
                },
            );
        }
        if let Err(error) = self.code_sender.send_code(&phone, &code).await {
            tracing::warn!(%error, "the code sender failed");
            return Err(RpcError::new(500, "SEND_CODE_UNAVAILABLE"));
        }
        let sent = enums::auth::SentCode::from(types::auth::SentCode {
            r#type: types::auth::SentCodeTypeApp {
                length: i32::try_from(code.len()).unwrap_or(5),
            }
            .into(),
            phone_code_hash: hash,
            next_type: None,
            timeout: None,
        });
        Ok(Bytes::from(sent.to_bytes()))
    }

    pub(super) fn sign_in(
        &self,
        context: RequestContext,
        body: &[u8],
    ) -> Result<Vec<u8>, RpcError> {
        let request: functions::auth::SignIn = decode(body)?;
        let phone = normalize_phone(&request.phone_number)
            .ok_or_else(|| bad_request("PHONE_NUMBER_INVALID"))?;
        let given = request
            .phone_code
            .filter(|code| !code.is_empty())
            .ok_or_else(|| bad_request("PHONE_CODE_EMPTY"))?;
        let perm = context
            .perm_auth_key_id
            .ok_or_else(|| RpcError::new(401, "AUTH_KEY_PERM_EMPTY"))?;
        {
            let mut codes = self.codes.lock().unwrap_or_else(PoisonError::into_inner);
            let pending = codes
                .get_mut(&phone)
                .filter(|pending| pending.sent.elapsed() < CODE_TTL)
                .ok_or_else(|| bad_request("PHONE_CODE_EXPIRED"))?;
            if !bool::from(
                pending
                    .hash
                    .as_bytes()
                    .ct_eq(request.phone_code_hash.as_bytes()),
            ) {
                return Err(bad_request("PHONE_CODE_HASH_INVALID"));
            }
            if !bool::from(pending.code.as_bytes().ct_eq(given.as_bytes())) {
                pending.attempts += 1;
                if pending.attempts >= CODE_ATTEMPTS {
                    codes.remove(&phone);
                }
                return Err(bad_request("PHONE_CODE_INVALID"));
            }
            codes.remove(&phone);
        }
        let record = self.users.sign_in(&phone).map_err(internal)?;
        self.keys
            .set_user(perm, Some(record.id))
            .map_err(internal)?;
        if let Some(server) = self.server() {
            server.refresh_key(perm);
        }
        tracing::info!(user_id = record.id, "signed in");
        Ok(
            enums::auth::Authorization::from(types::auth::Authorization {
                setup_password_required: false,
                otherwise_relogin_days: None,
                tmp_sessions: None,
                future_auth_token: None,
                user: tl::user(&record, record.id, &self.secret),
            })
            .to_bytes(),
        )
    }
}
