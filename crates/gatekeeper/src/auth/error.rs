//! Why a request or a sign-in was refused.

use alloy::primitives::{Address, B256};
use axum::http::StatusCode;

/// Why authentication failed: one variant per cause, each with a message meant for the
/// person at the other end (no internal detail, no patient data).
///
/// [`AuthError::status`] gives the HTTP status and [`AuthError::code`] a stable
/// machine-readable name; the HTTP layer sends both with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    // --- which credentials -------------------------------------------------------------
    /// Neither a bearer token nor a request signature was sent.
    #[error(
        "no credentials: send `Authorization: Bearer <token>` (from POST /auth/siwe) or sign \
         the request with the X-MedRec-Signature, X-MedRec-Time and X-MedRec-Nonce headers"
    )]
    MissingCredentials,
    /// A bearer token and a request signature were both sent.
    #[error("both a bearer token and a request signature were sent: send only one of them")]
    AmbiguousCredentials,
    /// The `Authorization` header is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    MalformedAuthorization,
    /// The bearer token is unknown, revoked or expired.
    #[error("the bearer token is unknown or has expired: sign in again with POST /auth/siwe")]
    InvalidToken,
    /// A SMART token's scopes do not cover the request.
    #[error("the token's scopes do not allow this: {0}")]
    InsufficientScope(String),

    // --- per-request EIP-712 signatures ----------------------------------------------
    /// A header of the signed-request scheme is missing.
    #[error(
        "the {0} header is missing: a signed request needs X-MedRec-Signature, X-MedRec-Time and X-MedRec-Nonce"
    )]
    MissingHeader(&'static str),
    /// A header of the signed-request scheme cannot be read.
    #[error("the {header} header is malformed: {reason}")]
    MalformedHeader {
        /// The header's name.
        header: &'static str,
        /// What is wrong with its value.
        reason: &'static str,
    },
    /// The request's time is older than the allowed clock skew.
    #[error(
        "the request was signed for time {time}, {} s before the gatekeeper's clock ({now}); \
         at most {skew} s are allowed: sign it again with the current time",
        now.saturating_sub(*time)
    )]
    RequestExpired {
        /// The signed time (unix seconds).
        time: u64,
        /// The gatekeeper's time (unix seconds).
        now: u64,
        /// The allowed difference in seconds.
        skew: u64,
    },
    /// The request's time is ahead of the gatekeeper's clock by more than the allowed skew.
    #[error(
        "the request was signed for time {time}, {} s ahead of the gatekeeper's clock ({now}); \
         at most {skew} s are allowed: check the client's clock",
        time.saturating_sub(*now)
    )]
    RequestFromFuture {
        /// The signed time (unix seconds).
        time: u64,
        /// The gatekeeper's time (unix seconds).
        now: u64,
        /// The allowed difference in seconds.
        skew: u64,
    },
    /// No address can be recovered from the signature.
    #[error("the signature is not a valid secp256k1 signature: {0}")]
    InvalidSignature(String),
    /// The signature is valid but was made over other data than the request, or by another
    /// key than the one named in `X-MedRec-Signer`.
    #[error(
        "the request signature was made by {recovered}, not by {claimed}: the signed method, \
         path and query, body, time, nonce, chain id or gatekeeper address differ from this \
         request's, or another key signed it"
    )]
    SignerMismatch {
        /// The address named in the `X-MedRec-Signer` header.
        claimed: Address,
        /// The address the signature recovers to over this request.
        recovered: Address,
    },
    /// The signer has already sent a request with this nonce within the time window.
    #[error(
        "{signer} already sent a request with nonce {nonce}: each signed request can be sent once, use a fresh nonce"
    )]
    ReplayedNonce {
        /// The signer.
        signer: Address,
        /// The reused nonce.
        nonce: B256,
    },
    /// The requester is not known to the gatekeeper (see
    /// `RequestVerifier::verify_known`): the chain names it neither as a patient, nor as
    /// a viewer, nor as the owner of a bounty.
    #[error(
        "there is nothing here for your address: this gatekeeper serves its provider, the patients on chain, the viewers they granted and the owners of research bounties"
    )]
    UnknownSigner(Address),
    /// The replay cache is full: too many signed requests within the time window.
    #[error(
        "too many signed requests in the last moments (the limit is {capacity}): try again in a few seconds"
    )]
    ReplayCacheFull {
        /// The cache's capacity.
        capacity: usize,
    },

    // --- Sign-In with Ethereum --------------------------------------------------------
    /// The sign-in request body is not the expected JSON.
    #[error(
        "the sign-in request is malformed: {0}; send {{\"message\": <EIP-4361 text>, \"signature\": \"0x…\"}}"
    )]
    MalformedBody(String),
    /// The request body is larger than allowed.
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The signature is not `0x` followed by 65 bytes in hex.
    #[error("the signature is malformed: {0}")]
    MalformedSignature(&'static str),
    /// The message is not an EIP-4361 message.
    #[error("the sign-in message is not a valid EIP-4361 message: {0}")]
    MalformedMessage(String),
    /// The message is for another domain.
    #[error("the sign-in message is for {found}, but this gatekeeper is {expected}")]
    WrongDomain {
        /// The gatekeeper's domain.
        expected: String,
        /// The message's domain.
        found: String,
    },
    /// The message is for another chain.
    #[error(
        "the sign-in message is for chain {found}, but this gatekeeper follows chain {expected}"
    )]
    WrongChain {
        /// The gatekeeper's chain id.
        expected: u64,
        /// The message's chain id.
        found: u64,
    },
    /// The nonce was not issued by this gatekeeper, or it has expired.
    #[error(
        "the sign-in nonce was not issued by this gatekeeper or has expired: get a fresh one from GET /auth/nonce"
    )]
    UnknownNonce,
    /// The nonce was already used for a sign-in.
    #[error("the sign-in nonce was already used: get a fresh one from GET /auth/nonce")]
    NonceAlreadyUsed,
    /// The message's Issued At is ahead of the gatekeeper's clock by more than the skew.
    #[error(
        "the sign-in message was issued at {issued_at}, ahead of the gatekeeper's clock: check the client's clock"
    )]
    MessageIssuedInFuture {
        /// The message's Issued At.
        issued_at: String,
    },
    /// The message's Not Before has not come yet.
    #[error("the sign-in message is not valid before {not_before}")]
    MessageNotYetValid {
        /// The message's Not Before.
        not_before: String,
    },
    /// The message's Expiration Time has passed.
    #[error("the sign-in message expired at {expired_at}: sign a new one")]
    MessageExpired {
        /// The message's Expiration Time.
        expired_at: String,
    },
    /// The signature is valid but was not made by the message's address over this message.
    #[error("the signature was made by {recovered}, not by the message's address {address}")]
    SignatureMismatch {
        /// The address in the message.
        address: Address,
        /// The address the signature recovers to over the message.
        recovered: Address,
    },
    /// Too many sign-in nonces are outstanding.
    #[error("too many sign-ins in progress (the limit is {capacity}): try again in a few minutes")]
    TooManyNonces {
        /// The nonce issuer's capacity.
        capacity: usize,
    },
    /// Too many bearer tokens are live.
    #[error("too many active sessions (the limit is {capacity}): try again later")]
    TooManyTokens {
        /// The token store's capacity.
        capacity: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the gatekeeper could not draw random numbers: try again")]
    Randomness,
}

impl AuthError {
    /// The HTTP status this error is answered with: 400 for malformed input, 401 for
    /// credentials that are refused, 403 for a requester the chain does not know, 413 for
    /// oversized bodies, 503 when a bounded cache is
    /// full and 500 when randomness fails.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::AmbiguousCredentials
            | Self::MalformedAuthorization
            | Self::MissingHeader(_)
            | Self::MalformedHeader { .. }
            | Self::MalformedBody(_)
            | Self::MalformedSignature(_)
            | Self::MalformedMessage(_) => StatusCode::BAD_REQUEST,
            Self::MissingCredentials
            | Self::InvalidToken
            | Self::RequestExpired { .. }
            | Self::RequestFromFuture { .. }
            | Self::InvalidSignature(_)
            | Self::SignerMismatch { .. }
            | Self::ReplayedNonce { .. }
            | Self::WrongDomain { .. }
            | Self::WrongChain { .. }
            | Self::UnknownNonce
            | Self::NonceAlreadyUsed
            | Self::MessageIssuedInFuture { .. }
            | Self::MessageNotYetValid { .. }
            | Self::MessageExpired { .. }
            | Self::SignatureMismatch { .. } => StatusCode::UNAUTHORIZED,
            Self::UnknownSigner(_) | Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ReplayCacheFull { .. }
            | Self::TooManyNonces { .. }
            | Self::TooManyTokens { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Randomness => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable name for the error (snake case), sent as the code of
    /// the OperationOutcome issue's `details.coding`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::AmbiguousCredentials => "ambiguous_credentials",
            Self::MalformedAuthorization => "malformed_authorization",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedHeader { .. } => "malformed_header",
            Self::RequestExpired { .. } => "request_expired",
            Self::RequestFromFuture { .. } => "request_from_future",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::SignerMismatch { .. } => "signer_mismatch",
            Self::ReplayedNonce { .. } => "replayed_nonce",
            Self::UnknownSigner(_) => "unknown_signer",
            Self::ReplayCacheFull { .. } => "replay_cache_full",
            Self::MalformedBody(_) => "malformed_body",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::MalformedSignature(_) => "malformed_signature",
            Self::MalformedMessage(_) => "malformed_message",
            Self::WrongDomain { .. } => "wrong_domain",
            Self::WrongChain { .. } => "wrong_chain",
            Self::UnknownNonce => "unknown_nonce",
            Self::NonceAlreadyUsed => "nonce_already_used",
            Self::MessageIssuedInFuture { .. } => "message_issued_in_future",
            Self::MessageNotYetValid { .. } => "message_not_yet_valid",
            Self::MessageExpired { .. } => "message_expired",
            Self::SignatureMismatch { .. } => "signature_mismatch",
            Self::TooManyNonces { .. } => "too_many_nonces",
            Self::TooManyTokens { .. } => "too_many_tokens",
            Self::Randomness => "randomness_failure",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_kind_of_failure() {
        assert_eq!(AuthError::MalformedMessage("x".into()).status(), StatusCode::BAD_REQUEST);
        assert_eq!(AuthError::UnknownNonce.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(AuthError::BodyTooLarge { limit: 1 }.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            AuthError::ReplayCacheFull { capacity: 1 }.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = AuthError::RequestExpired { time: 100, now: 200, skew: 30 };
        assert_eq!(
            e.to_string(),
            "the request was signed for time 100, 100 s before the gatekeeper's clock (200); \
             at most 30 s are allowed: sign it again with the current time"
        );
        assert!(AuthError::NonceAlreadyUsed.to_string().contains("GET /auth/nonce"));
    }
}
