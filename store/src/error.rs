//! The failure shared by every store's error: the storage engine's own fault, as opposed to
//! a caller's request that breaks a rule (those have variants of their own, named as
//! Telegram names them).

use std::borrow::Cow;
use std::sync::Arc;

/// The storage engine failed: an I/O error, a corrupt record, an engine error. Not the
/// caller's fault; the RPC answer is `500 INTERNAL`. Keeps its cause
/// ([`std::error::Error::source`]) and says where it happened.
#[derive(Debug, Clone)]
pub struct BackendError {
    context: Cow<'static, str>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl BackendError {
    /// A failure described by `context` alone (an invariant the engine broke).
    pub fn new(context: impl Into<Cow<'static, str>>) -> Self {
        Self {
            context: context.into(),
            source: None,
        }
    }

    /// A failure in `context` caused by `source`.
    pub fn with_source(
        context: impl Into<Cow<'static, str>>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            context: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// Where it happened.
    pub fn context(&self) -> &str {
        &self.context
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.context),
            None => f.write_str(&self.context),
        }
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// Equal when they read the same: errors are compared in tests, and a cause has no
/// equality of its own.
impl PartialEq for BackendError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for BackendError {}

#[cfg(test)]
mod tests {
    use super::BackendError;
    use std::error::Error as _;

    #[test]
    fn the_cause_is_kept_and_shown() {
        let io = std::io::Error::other("disk full");
        let error = BackendError::with_source("instance 3: write", io);
        assert_eq!(error.to_string(), "instance 3: write: disk full");
        assert_eq!(error.context(), "instance 3: write");
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("disk full")
        );
        assert!(BackendError::new("no iterator").source().is_none());
    }
}
