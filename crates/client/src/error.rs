//! The one error type of the workflows: what was being done, and why it failed.

use alloy::primitives::B256;
use medrec_contracts::ContractError;
use medrec_gatekeeper::client::ClientError;

/// A workflow step that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The contract refused the transaction (or call) with one of its custom errors.
    #[error("{what} was refused by the chain: {error}")]
    Refused {
        /// The step, e.g. "accepting relationship 0x…".
        what: String,
        /// The contract's reason.
        error: ContractError,
    },
    /// The signing account cannot pay for the transaction's gas.
    #[error(
        "{what} failed: the account that signs has too little ether to pay for the transaction's gas (fund it, then try again)"
    )]
    NoFunds {
        /// The step.
        what: String,
    },
    /// The transaction was mined but reverted (without a reason the node returned).
    #[error("{what}: transaction {hash} was reverted on chain")]
    Reverted {
        /// The step.
        what: String,
        /// The transaction.
        hash: B256,
    },
    /// A provider's gatekeeper refused or failed a request.
    #[error("{what}")]
    Gatekeeper {
        /// The step.
        what: String,
        /// What the gatekeeper (or the connection to it) said.
        #[source]
        source: ClientError,
    },
    /// The local encrypted cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    /// The request cannot be carried out as asked (a sentence says why and what to do).
    #[error("{0}")]
    Invalid(String),
    /// Something the step relies on (the chain node, a file, the record store, the
    /// wallet) failed.
    #[error("{what}")]
    Failed {
        /// The step.
        what: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// The result of a workflow step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A request that cannot be carried out, in a sentence.
    pub fn invalid(text: impl Into<String>) -> Self {
        Self::Invalid(text.into())
    }

    /// A gatekeeper's refusal or failure while doing `what`.
    pub fn gatekeeper(what: impl Into<String>, source: ClientError) -> Self {
        Self::Gatekeeper { what: what.into(), source }
    }

    /// The contract's custom error, when the chain refused the step with one.
    pub const fn contract_error(&self) -> Option<&ContractError> {
        match self {
            Self::Refused { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Fails with [`Error::Invalid`] and the formatted sentence unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::Error::Invalid(format!($($arg)+)));
        }
    };
}

/// Fails with [`Error::Invalid`] and the formatted sentence.
macro_rules! bail {
    ($($arg:tt)+) => {
        return Err($crate::Error::Invalid(format!($($arg)+)))
    };
}

pub(crate) use {bail, ensure};

/// Says what was being done when an underlying error happened.
pub(crate) trait Context<T> {
    /// Wraps the error in [`Error::Failed`] with `what`.
    fn context(self, what: impl Into<String>) -> Result<T>;
    /// Like [`Context::context`], with the sentence made only on failure.
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Failed { what: what.into(), source: Box::new(e) })
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Failed { what: what().into(), source: Box::new(e) })
    }
}

/// Turns a missing value into [`Error::Invalid`].
pub(crate) trait OrInvalid<T> {
    /// `Some(v)` gives `v`; `None` fails with the sentence.
    fn or_invalid<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> OrInvalid<T> for Option<T> {
    fn or_invalid<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(what().into()))
    }
}
