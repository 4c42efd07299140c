//! `@BotFather`: the bot that makes bots, as Telegram has one. A person talks to it:
//!
//! - `/newbot`: it asks for a display name, then a username that ends in `bot`, makes the
//!   bot and gives its token;
//! - `/token`: it asks which bot (`@username`, one of the person's), and shows its token;
//! - `/revoke`: the same, and the bot gets a new token (the old one stops working);
//! - `/cancel` drops the conversation; `/start` and `/help` list the commands.
//!
//! Each answer is a message from `@BotFather` whose random id follows from the message it
//! answers, so that a resent message is not answered twice. Where a person is in a
//! conversation is kept in memory (at most [`MAX_CONVERSATIONS`] at once; a restart forgets
//! them, and the person starts again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use columba_api::messages::Outgoing;
use columba_api::{ApiError, Backend, bots};
use columba_session::runtime::ServerHandle;
use columba_store::user::{Account, BotCommand, BotProfile};

/// `@BotFather`'s user id.
pub const BOTFATHER_USER_ID: i64 = 101;
/// `@BotFather`'s username.
pub const BOTFATHER_USERNAME: &str = "BotFather";
/// Conversations kept at once; past it the oldest are forgotten.
pub const MAX_CONVERSATIONS: usize = 10_000;

const HELP: &str = "I can help you create and manage bots.\n\n\
/newbot - create a new bot\n\
/token - show the token of one of your bots\n\
/revoke - give one of your bots a new token\n\
/cancel - stop what we are doing";

/// What a person is asked for next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// The new bot's display name.
    Name,
    /// The new bot's username; the name given.
    Username(String),
    /// Which bot to show the token of.
    TokenOf,
    /// Which bot to give a new token.
    Revoke,
}

/// `@BotFather`'s account, made a bot with no token anyone knows, and its menu.
pub fn account() -> Account {
    let mut account =
        Account::new(BOTFATHER_USER_ID, "", "BotFather").with_username(BOTFATHER_USERNAME);
    let mut profile = BotProfile::new(0, rand::random());
    profile.description = "BotFather is the one bot to rule them all. Use it to create new bot \
                           accounts and manage your existing bots."
        .to_owned();
    profile.commands = [
        ("newbot", "create a new bot"),
        ("token", "show a bot's token"),
        ("revoke", "give a bot a new token"),
        ("cancel", "stop the current operation"),
    ]
    .into_iter()
    .map(|(command, description)| BotCommand {
        command: command.to_owned(),
        description: description.to_owned(),
    })
    .collect();
    account.bot = Some(profile);
    account
}

/// The bot-making bot over a backend.
#[derive(Debug)]
pub struct BotFather {
    backend: Arc<Backend>,
    steps: Mutex<HashMap<i64, Step>>,
}

impl BotFather {
    /// `@BotFather` over `backend`.
    pub fn new(backend: Arc<Backend>) -> Self {
        Self {
            backend,
            steps: Mutex::new(HashMap::new()),
        }
    }

    fn step(&self, user: i64) -> Option<Step> {
        self.steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&user)
            .cloned()
    }

    fn set_step(&self, user: i64, step: Option<Step>) {
        let mut steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        match step {
            Some(step) => {
                if steps.len() >= MAX_CONVERSATIONS && !steps.contains_key(&user) {
                    steps.clear();
                }
                steps.insert(user, step);
            }
            None => {
                steps.remove(&user);
            }
        }
    }

    /// What `@BotFather` answers `user`'s `text`, and the person's next step. Blocking.
    fn answer_to(&self, user: i64, text: &str) -> String {
        let text = text.trim();
        let command = text.split_whitespace().next().unwrap_or_default();
        let command = command.split('@').next().unwrap_or_default();
        match command {
            "/start" | "/help" => {
                self.set_step(user, None);
                return HELP.to_owned();
            }
            "/cancel" => {
                let had = self.step(user).is_some();
                self.set_step(user, None);
                return if had {
                    "The command was cancelled.".to_owned()
                } else {
                    "No active command to cancel.".to_owned()
                };
            }
            "/newbot" => {
                self.set_step(user, Some(Step::Name));
                return "Alright, a new bot. How are we going to call it? Please choose a name \
                        for your bot."
                    .to_owned();
            }
            "/token" => {
                self.set_step(user, Some(Step::TokenOf));
                return "Choose a bot: send its @username.".to_owned();
            }
            "/revoke" => {
                self.set_step(user, Some(Step::Revoke));
                return "Choose a bot to give a new token: send its @username.".to_owned();
            }
            _ => {}
        }
        match self.step(user) {
            None => "Unrecognized command. Say what? (/help lists what I can do.)".to_owned(),
            Some(Step::Name) => {
                if text.is_empty() || text.chars().count() > 64 || text.starts_with('/') {
                    return "Sorry, this name is not valid: 1 to 64 characters.".to_owned();
                }
                self.set_step(user, Some(Step::Username(text.to_owned())));
                "Good. Now let's choose a username for your bot. It must end in `bot`. Like \
                 this, for example: TetrisBot or tetris_bot."
                    .to_owned()
            }
            Some(Step::Username(name)) => {
                let username = text.trim_start_matches('@');
                match bots::create_bot(&self.backend, user, &name, username) {
                    Ok((bot, token)) => {
                        self.set_step(user, None);
                        format!(
                            "Done! Congratulations on your new bot. You will find it at \
                             t.me/{}. You can now add a description and commands for your bot.\
                             \n\nUse this token to access the HTTP API:\n{token}\nKeep your \
                             token secure and store it safely, it can be used by anyone to \
                             control your bot.",
                            bot.username.unwrap_or_default()
                        )
                    }
                    Err(error) => match error.name() {
                        "USERNAME_OCCUPIED" => "Sorry, this username is already taken. Please \
                                                try something different."
                            .to_owned(),
                        "USERNAME_INVALID" => "Sorry, this username is invalid. It must end in \
                                               `bot` (5 to 32 characters of a-z, 0-9 and _, \
                                               starting with a letter)."
                            .to_owned(),
                        "FIRSTNAME_INVALID" => {
                            self.set_step(user, Some(Step::Name));
                            "Sorry, the name is not valid. Please choose another name.".to_owned()
                        }
                        _ => {
                            tracing::warn!(%error, "BotFather could not make a bot");
                            "Sorry, something went wrong. Please try again.".to_owned()
                        }
                    },
                }
            }
            Some(step @ (Step::TokenOf | Step::Revoke)) => {
                let Some(bot) = self.own_bot(user, text.trim_start_matches('@')) else {
                    return "Invalid bot selected.".to_owned();
                };
                self.set_step(user, None);
                let token = if step == Step::Revoke {
                    bots::revoke_token(&self.backend, bot)
                } else {
                    bots::token_of(&self.backend, bot)
                };
                match (token, step) {
                    (Ok(token), Step::Revoke) => format!(
                        "Your token was replaced with a new one. You can use this token to \
                         access the HTTP API:\n{token}"
                    ),
                    (Ok(token), _) => {
                        format!("You can use this token to access the HTTP API:\n{token}")
                    }
                    (Err(error), _) => {
                        tracing::warn!(%error, "BotFather could not give a token");
                        "Sorry, something went wrong. Please try again.".to_owned()
                    }
                }
            }
        }
    }

    /// The id of the live bot `@username` that `user` made.
    fn own_bot(&self, user: i64, username: &str) -> Option<i64> {
        let account = self.backend.users.by_username(username).ok()??;
        (account.bot.as_ref()?.owner == user).then_some(account.id)
    }

    /// Answers `user`'s message `source` (its text `text`) and tells the user. Blocking.
    pub fn answer(&self, server: &ServerHandle, user: i64, text: &str, source: i32) {
        let reply = self.answer_to(user, text);
        // A resent message is answered once: the reply's random id follows from it.
        let random_id = (user as u64)
            .wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            .wrapping_add(source as u64) as i64;
        let outgoing = Outgoing::new(user, random_id, reply, None);
        if let Err(error) =
            super::bot::send_as_service(&self.backend, server, BOTFATHER_USER_ID, &outgoing)
        {
            tracing::warn!(%error, "BotFather could not answer");
        }
    }
}

/// Makes sure bot `@username` exists (made by the operator, owner `0`) and gives its token:
/// the echo server's `--bot` flag, for tests and demos. Blocking.
pub fn ensure_bot(backend: &Backend, username: &str) -> Result<String, ApiError> {
    match backend.users.by_username(username)? {
        Some(account) if account.is_bot() => bots::token_of(backend, account.id),
        Some(_) => Err(ApiError::bad_request("USERNAME_OCCUPIED")),
        None => Ok(bots::create_bot(backend, 0, username, username)?.1),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use columba_api::{AccessSecret, DcList};
    use columba_store::{MemoryFileStore, MemoryMessageStore, MemoryUserStore, UserStore as _};

    use super::*;

    fn father() -> (BotFather, i64) {
        let users = Arc::new(MemoryUserStore::new());
        users.put_account(&account()).unwrap();
        let person = users.create_account("15550001", "Ann", "").unwrap().id;
        let backend = Backend::new(
            Arc::new(MemoryMessageStore::new()),
            Arc::new(MemoryFileStore::new()),
            Arc::new(columba_store::MemoryAuthKeyStore::new()),
            users,
            AccessSecret::new([3; 32]),
            DcList::single(1, "127.0.0.1:1".parse().unwrap()),
        );
        (BotFather::new(backend), person)
    }

    fn token_in(text: &str) -> String {
        text.lines()
            .find(|line| bots::parse_token(line).is_some())
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn a_conversation_makes_a_bot_and_manages_its_token() {
        let (father, ann) = father();
        assert!(father.answer_to(ann, "hello").starts_with("Unrecognized"));
        assert!(father.answer_to(ann, "/newbot").contains("choose a name"));
        assert!(father.answer_to(ann, "My Helper").contains("username"));
        assert!(father.answer_to(ann, "helper").contains("invalid"));
        assert!(father.answer_to(ann, "@BotFather").contains("invalid"));
        let done = father.answer_to(ann, "@my_helper_bot");
        let token = token_in(&done);
        let bot = bots::check_token(&father.backend, &token).unwrap();
        assert_eq!(bot.username.as_deref(), Some("my_helper_bot"));
        assert_eq!(bot.first_name, "My Helper");
        assert_eq!(bot.bot.unwrap().owner, ann);
        // The same username again is taken.
        father.answer_to(ann, "/newbot");
        father.answer_to(ann, "Other");
        assert!(father.answer_to(ann, "my_helper_bot").contains("taken"));
        assert!(father.answer_to(ann, "/cancel").contains("cancelled"));
        // /token shows it, /revoke replaces it; someone else's bot is not theirs to ask.
        father.answer_to(ann, "/token");
        assert_eq!(token_in(&father.answer_to(ann, "@my_helper_bot")), token);
        father.answer_to(ann, "/revoke");
        let new = token_in(&father.answer_to(ann, "my_helper_bot"));
        assert_ne!(new, token);
        assert!(bots::check_token(&father.backend, &token).is_err());
        assert!(bots::check_token(&father.backend, &new).is_ok());
        let bob = father
            .backend
            .users
            .create_account("15550002", "Bob", "")
            .unwrap()
            .id;
        father.answer_to(bob, "/token");
        assert_eq!(
            father.answer_to(bob, "@my_helper_bot"),
            "Invalid bot selected."
        );
    }

    #[test]
    fn ensure_bot_makes_once_and_shows_the_same_token() {
        let (father, _) = father();
        let first = ensure_bot(&father.backend, "test_bot").unwrap();
        assert_eq!(ensure_bot(&father.backend, "test_bot").unwrap(), first);
        assert!(bots::check_token(&father.backend, &first).is_ok());
        assert!(ensure_bot(&father.backend, "not_a_bot_name").is_err());
    }
}
