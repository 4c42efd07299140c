#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

use std::sync::Arc;
use std::time::Duration;

use columba_mtproto::tl::api::{enums, functions, types};
use columba_session::plugins::RecordingCodeSender;
use columba_store::auth_key::{AuthKeyRecord, AuthKeyStore, KeyLifetime, MemoryAuthKeyStore};
use columba_store::{MemoryFileStore, MemoryMessageStore, MemoryUserStore};

use super::*;
use crate::{AccessSecret, DcList};

pub(super) const KEY: i64 = 77;

pub(super) struct Fixture {
    pub(super) login: Arc<Login>,
    codes: RecordingCodeSender,
    pub(super) keys: Arc<MemoryAuthKeyStore>,
    ctx: Ctx,
}

fn permanent_key(auth_key_id: i64) -> AuthKeyRecord {
    AuthKeyRecord {
        auth_key_id,
        key: [1; 256],
        lifetime: KeyLifetime::Permanent,
        created_at: 0,
        dc: None,
        user_id: None,
    }
}

/// A fixture with automatic sign-up whose key [`KEY`] is signed in; and the user.
pub(super) async fn signed_in_fixture() -> (Fixture, i64) {
    let mut options = danger::fixed_code(LoginOptions::default(), "12345");
    options.sign_up = SignUp::Automatic;
    let f = fixture(options);
    let hash = f.send_code("15550009").await.unwrap();
    let user = signed_in_user(&f.sign_in("15550009", &hash, "12345").await.unwrap());
    (f, user)
}

fn fixture(options: LoginOptions) -> Fixture {
    let keys = Arc::new(MemoryAuthKeyStore::new());
    keys.insert(permanent_key(KEY)).unwrap();
    let backend = Backend::new(
        Arc::new(MemoryMessageStore::new()),
        Arc::new(MemoryFileStore::new()),
        keys.clone(),
        Arc::new(MemoryUserStore::new()),
        AccessSecret::new([9; 32]),
        DcList::single(1, "127.0.0.1:1".parse().unwrap()),
    );
    let codes = RecordingCodeSender::new();
    Fixture {
        login: Login::new(backend, Arc::new(codes.clone()), options),
        codes,
        keys,
        ctx: Ctx::detached(KEY, None),
    }
}

impl Fixture {
    /// Stores another permanent key; its id.
    pub(super) fn add_key(&self, auth_key_id: i64) -> i64 {
        self.keys.insert(permanent_key(auth_key_id)).unwrap();
        auth_key_id
    }

    async fn send_code(&self, phone: &str) -> Result<String, ApiError> {
        let sent = send_code(
            self.ctx.clone(),
            self.login.clone(),
            functions::auth::SendCode {
                phone_number: phone.to_owned(),
                api_id: 1,
                api_hash: String::new(),
                settings: types::CodeSettings::default().into(),
            },
        )
        .await?;
        match sent {
            enums::auth::SentCode::SentCode(sent) => Ok(sent.phone_code_hash),
            other => panic!("unexpected {other:?}"),
        }
    }

    async fn sign_in(
        &self,
        phone: &str,
        hash: &str,
        code: &str,
    ) -> Result<enums::auth::Authorization, ApiError> {
        sign_in(
            self.ctx.clone(),
            self.login.clone(),
            functions::auth::SignIn {
                phone_number: phone.to_owned(),
                phone_code_hash: hash.to_owned(),
                phone_code: Some(code.to_owned()),
                email_verification: None,
            },
        )
        .await
    }

    async fn sign_up(
        &self,
        phone: &str,
        hash: &str,
        first: &str,
    ) -> Result<enums::auth::Authorization, ApiError> {
        sign_up(
            self.ctx.clone(),
            self.login.clone(),
            functions::auth::SignUp {
                no_joined_notifications: false,
                phone_number: phone.to_owned(),
                phone_code_hash: hash.to_owned(),
                first_name: first.to_owned(),
                last_name: String::new(),
            },
        )
        .await
    }

    fn key_user(&self) -> Option<i64> {
        self.keys.get(KEY).unwrap().unwrap().user_id
    }
}

fn signed_in_user(authorization: &enums::auth::Authorization) -> i64 {
    match authorization {
        enums::auth::Authorization::Authorization(authorization) => match &authorization.user {
            enums::User::User(user) => user.id,
            other => panic!("unexpected {other:?}"),
        },
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn sign_up_required_then_sign_up_binds_the_key() {
    let f = fixture(LoginOptions::default());
    let hash = f.send_code("+1 555 0001").await.unwrap();
    let code = f.codes.last_code("15550001").unwrap();
    assert_eq!(code.len(), 5);
    let answer = f.sign_in("15550001", &hash, &code).await.unwrap();
    assert!(matches!(
        answer,
        enums::auth::Authorization::AuthorizationSignUpRequired(_)
    ));
    assert_eq!(f.key_user(), None, "not signed in yet");
    assert_eq!(
        f.sign_up("15550001", &hash, "  ").await.unwrap_err().name(),
        "FIRSTNAME_INVALID"
    );
    let answer = f.sign_up("15550001", &hash, "Ann").await.unwrap();
    let user = signed_in_user(&answer);
    assert_eq!(f.key_user(), Some(user));
    // The code was used up by the sign-up.
    assert_eq!(
        f.sign_up("15550001", &hash, "Ann")
            .await
            .unwrap_err()
            .name(),
        "PHONE_CODE_EXPIRED"
    );
    // A second sign-in of the number finds the account.
    let hash = f.send_code("15550001").await.unwrap();
    let code = f.codes.last_code("15550001").unwrap();
    assert_eq!(
        signed_in_user(&f.sign_in("15550001", &hash, &code).await.unwrap()),
        user
    );
}

#[tokio::test]
async fn sign_up_needs_a_verified_code() {
    let f = fixture(LoginOptions::default());
    let hash = f.send_code("15550002").await.unwrap();
    assert_eq!(
        f.sign_up("15550002", &hash, "Bo").await.unwrap_err().name(),
        "PHONE_CODE_EMPTY"
    );
}

#[tokio::test]
async fn wrong_codes_use_up_attempts_and_codes_expire() {
    let f = fixture(LoginOptions::default());
    let hash = f.send_code("15550003").await.unwrap();
    let code = f.codes.last_code("15550003").unwrap();
    let wrong = if code == "00000" { "11111" } else { "00000" };
    for _ in 0..4 {
        assert_eq!(
            f.sign_in("15550003", &hash, wrong)
                .await
                .unwrap_err()
                .name(),
            "PHONE_CODE_INVALID"
        );
    }
    assert_eq!(
        f.sign_in("15550003", &hash, wrong)
            .await
            .unwrap_err()
            .name(),
        "PHONE_CODE_INVALID"
    );
    // The fifth wrong guess dropped the code: the right one is too late now.
    assert_eq!(
        f.sign_in("15550003", &hash, &code)
            .await
            .unwrap_err()
            .name(),
        "PHONE_CODE_EXPIRED"
    );

    let hash = f.send_code("15550003").await.unwrap();
    let code = f.codes.last_code("15550003").unwrap();
    assert_eq!(
        f.sign_in("15550003", "bad", &code)
            .await
            .unwrap_err()
            .name(),
        "PHONE_CODE_HASH_INVALID"
    );
    f.login.advance(Duration::from_secs(301));
    assert_eq!(
        f.sign_in("15550003", &hash, &code)
            .await
            .unwrap_err()
            .name(),
        "PHONE_CODE_EXPIRED"
    );
}

#[tokio::test]
async fn codes_per_number_are_limited_with_flood_wait() {
    let options = LoginOptions {
        codes_per_window: 2,
        ..LoginOptions::default()
    };
    let f = fixture(options);
    f.send_code("15550004").await.unwrap();
    f.send_code("15550004").await.unwrap();
    let error = f.send_code("15550004").await.unwrap_err();
    assert_eq!(error.code(), 420);
    assert_eq!(error.name(), "FLOOD_WAIT_3600");
    // Another number is not held back, and the window passes.
    f.send_code("15550005").await.unwrap();
    f.login.advance(Duration::from_secs(3601));
    f.send_code("15550004").await.unwrap();
    assert_eq!(
        f.send_code("not a phone").await.unwrap_err().name(),
        "PHONE_NUMBER_INVALID"
    );
}

#[tokio::test]
async fn pending_numbers_are_bounded() {
    let options = LoginOptions {
        max_pending: 3,
        ..LoginOptions::default()
    };
    let f = fixture(options);
    for phone in ["1001", "1002", "1003"] {
        f.send_code(phone).await.unwrap();
    }
    assert_eq!(
        f.send_code("1004").await.unwrap_err().name(),
        "FLOOD_WAIT_60"
    );
    f.login.advance(Duration::from_secs(3601));
    f.send_code("1004").await.unwrap();
}

#[tokio::test]
async fn automatic_sign_up_resend_cancel_and_log_out() {
    let mut options = danger::fixed_code(LoginOptions::default(), "12345");
    options.sign_up = SignUp::Automatic;
    let f = fixture(options);
    let hash = f.send_code("15550006").await.unwrap();
    let resent = resend_code(
        f.ctx.clone(),
        f.login.clone(),
        functions::auth::ResendCode {
            phone_number: "15550006".to_owned(),
            phone_code_hash: hash.clone(),
            reason: None,
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(resent, enums::auth::SentCode::SentCode(ref sent) if sent.phone_code_hash == hash)
    );
    let user = signed_in_user(&f.sign_in("15550006", &hash, "12345").await.unwrap());
    assert_eq!(f.key_user(), Some(user));

    let hash = f.send_code("15550006").await.unwrap();
    let cancelled = cancel_code(
        f.ctx.clone(),
        f.login.clone(),
        functions::auth::CancelCode {
            phone_number: "15550006".to_owned(),
            phone_code_hash: hash.clone(),
        },
    )
    .await
    .unwrap();
    assert!(cancelled);
    assert_eq!(
        f.sign_in("15550006", &hash, "12345")
            .await
            .unwrap_err()
            .name(),
        "PHONE_CODE_EXPIRED"
    );

    log_out(
        Ctx::detached(KEY, Some(user)),
        f.login.clone(),
        functions::auth::LogOut {},
    )
    .await
    .unwrap();
    assert_eq!(f.key_user(), None);
}
