//! Sign-In with Ethereum (EIP-4361): nonces, message checks, and bearer tokens.
//!
//! A client gets a nonce ([`NonceIssuer::issue`], `GET /auth/nonce`), writes an EIP-4361
//! message with it, signs the message's text with EIP-191 `personal_sign`, and trades
//! message and signature for a short-lived bearer token ([`SiweAuthenticator::sign_in`],
//! `POST /auth/siwe`). The token only says who the requester is: every request is still
//! decided against the live consent index, so a token never outlives a revocation.

use super::{
    AuthError,
    expiring::ExpiringMap,
    random,
    request::parse_signature,
    token::{Token, TokenStore},
};
use alloy::{
    hex,
    primitives::{Address, eip191_hash_message},
};
use axum::http::uri::Authority;
use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

/// How long a sign-in nonce stays usable by default.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// How long a bearer token lives by default (never beyond the message's expiration).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The default allowed skew between the client's clock and the gatekeeper's.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(30);
/// The default bound on outstanding nonces.
pub const DEFAULT_NONCE_CAPACITY: usize = 100_000;
/// The longest sign-in message accepted, in bytes.
pub const MAX_MESSAGE_LEN: usize = 8 * 1024;

/// What a gatekeeper accepts in sign-in messages, and how long what it hands out lives.
#[derive(Debug, Clone)]
pub struct SiweConfig {
    /// The gatekeeper's domain (host and optional port), which messages must name.
    pub domain: Authority,
    /// The chain the gatekeeper follows, which messages must name.
    pub chain_id: u64,
    /// How long a nonce stays usable after it is issued.
    pub nonce_lifetime: Duration,
    /// How long a bearer token lives (shortened to the message's expiration).
    pub token_lifetime: Duration,
    /// The allowed skew between the client's clock and the gatekeeper's, for Issued At
    /// and Not Before.
    pub skew: Duration,
    /// At most this many nonces are outstanding at once.
    pub nonce_capacity: usize,
    /// At most this many bearer tokens are live at once.
    pub token_capacity: usize,
}

impl SiweConfig {
    /// The defaults for a gatekeeper at `domain` on chain `chain_id`: nonces live 5 min,
    /// tokens 15 min, 30 s skew.
    pub fn new(domain: Authority, chain_id: u64) -> Self {
        Self {
            domain,
            chain_id,
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            skew: DEFAULT_SKEW,
            nonce_capacity: DEFAULT_NONCE_CAPACITY,
            token_capacity: super::token::DEFAULT_TOKEN_CAPACITY,
        }
    }
}

/// Hands out random single-use sign-in nonces that expire.
#[derive(Debug)]
pub struct NonceIssuer {
    lifetime: u64,
    nonces: Mutex<ExpiringMap<[u8; 16], NonceState>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonceState {
    Issued,
    Used,
}

impl NonceIssuer {
    /// An issuer whose nonces live `lifetime` (whole seconds), at most `capacity` at once.
    pub fn new(lifetime: Duration, capacity: usize) -> Self {
        Self { lifetime: lifetime.as_secs(), nonces: Mutex::new(ExpiringMap::new(capacity)) }
    }

    /// A fresh nonce: 128 random bits as 32 lowercase hex digits (EIP-4361 wants at least
    /// 8 alphanumeric characters). Usable once, until `now + lifetime`.
    pub fn issue(&self, now: u64) -> Result<String, AuthError> {
        let nonce = random::bytes::<16>()?;
        let mut nonces = self.lock();
        nonces
            .insert(nonce, NonceState::Issued, now.saturating_add(self.lifetime), now)
            .map_err(|_| AuthError::TooManyNonces { capacity: nonces.capacity() })?;
        Ok(hex::encode(nonce))
    }

    /// Whether `nonce` was issued here, has not expired and has not been used; changes
    /// nothing.
    pub fn check(&self, nonce: &str, now: u64) -> Result<(), AuthError> {
        let key = Self::key(nonce)?;
        match self.lock().get_mut(&key, now) {
            Some(NonceState::Issued) => Ok(()),
            Some(NonceState::Used) => Err(AuthError::NonceAlreadyUsed),
            None => Err(AuthError::UnknownNonce),
        }
    }

    /// Uses `nonce` up if it was issued here, has not expired and has not been used.
    /// A used nonce is remembered until it would have expired, so that its reuse is
    /// reported as such.
    pub fn consume(&self, nonce: &str, now: u64) -> Result<(), AuthError> {
        let key = Self::key(nonce)?;
        match self.lock().get_mut(&key, now) {
            Some(state @ NonceState::Issued) => {
                *state = NonceState::Used;
                Ok(())
            }
            Some(NonceState::Used) => Err(AuthError::NonceAlreadyUsed),
            None => Err(AuthError::UnknownNonce),
        }
    }

    fn key(nonce: &str) -> Result<[u8; 16], AuthError> {
        // Ours are exactly 32 lowercase hex digits; anything else was not issued here.
        if nonce.len() != 32 || nonce.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(AuthError::UnknownNonce);
        }
        hex::decode_to_array(nonce).map_err(|_| AuthError::UnknownNonce)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExpiringMap<[u8; 16], NonceState>> {
        self.nonces.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Checks sign-in messages and issues bearer tokens for them.
#[derive(Debug)]
pub struct SiweAuthenticator {
    config: SiweConfig,
    nonces: NonceIssuer,
    tokens: TokenStore,
}

impl SiweAuthenticator {
    /// An authenticator with its own nonce issuer and token store, sized by `config`.
    pub fn new(config: SiweConfig) -> Self {
        let nonces = NonceIssuer::new(config.nonce_lifetime, config.nonce_capacity);
        let tokens = TokenStore::new(config.token_capacity);
        Self { config, nonces, tokens }
    }

    /// The configuration.
    pub fn config(&self) -> &SiweConfig {
        &self.config
    }

    /// The nonce issuer.
    pub fn nonces(&self) -> &NonceIssuer {
        &self.nonces
    }

    /// The token store.
    pub fn tokens(&self) -> &TokenStore {
        &self.tokens
    }

    /// A fresh sign-in nonce (see [`NonceIssuer::issue`]).
    pub fn issue_nonce(&self, now: u64) -> Result<String, AuthError> {
        self.nonces.issue(now)
    }

    /// The address a bearer token stands for, if it is live at `now`.
    pub fn resolve(&self, token: &str, now: u64) -> Option<Address> {
        self.tokens.resolve(token, now)
    }

    /// Signs in with an EIP-4361 message and its EIP-191 `personal_sign` signature
    /// (`0x` and 65 bytes in hex) at `now` (unix seconds), and returns a bearer token.
    ///
    /// Checks, in order: the signature's and the message's format; the message's domain
    /// and chain id are this gatekeeper's; Issued At and Not Before are not ahead of `now`
    /// by more than the skew; the Expiration Time, if any, has not passed; the nonce was
    /// issued here and is unused; the signature over the exact message text recovers to
    /// the message's address. Only then is the nonce used up and a token issued, valid for
    /// the configured lifetime but never past the message's Expiration Time.
    pub fn sign_in(&self, message: &str, signature: &str, now: u64) -> Result<Token, AuthError> {
        self.sign_in_known(message, signature, now, |_| true)
    }

    /// Like [`SiweAuthenticator::sign_in`], but refuses with
    /// [`AuthError::UnknownSigner`] a proven address that `is_known` refuses, before the
    /// nonce is used up or a token takes a place in the store.
    pub fn sign_in_known(
        &self,
        message: &str,
        signature: &str,
        now: u64,
        is_known: impl FnOnce(Address) -> bool,
    ) -> Result<Token, AuthError> {
        let (address, expires_at) = self.check(message, signature, now, None, is_known)?;
        let token = self.tokens.issue(address, expires_at, now)?;
        tracing::debug!(%address, expires_at, "signed in with Ethereum");
        Ok(token)
    }

    /// Checks a sign-in message for one purpose, as [`SiweAuthenticator::sign_in_known`]
    /// does, and uses its nonce up, but issues no token: the address it proves. The
    /// message must carry `Request ID: request_id`, so that a signature made for one
    /// purpose (a SMART authorization: [`crate::smart`]) serves no other.
    pub fn verify_for(
        &self,
        message: &str,
        signature: &str,
        now: u64,
        request_id: &str,
        is_known: impl FnOnce(Address) -> bool,
    ) -> Result<Address, AuthError> {
        self.check(message, signature, now, Some(request_id), is_known).map(|(a, _)| a)
    }

    /// The session a bearer token stands for, if it is live at `now`.
    pub fn session(&self, token: &str, now: u64) -> Option<super::token::Session> {
        self.tokens.session(token, now)
    }

    /// The checks of a sign-in; the proven address and when a token for it must expire.
    fn check(
        &self,
        message: &str,
        signature: &str,
        now: u64,
        request_id: Option<&str>,
        is_known: impl FnOnce(Address) -> bool,
    ) -> Result<(Address, u64), AuthError> {
        let signature =
            parse_signature(signature.as_bytes()).map_err(AuthError::MalformedSignature)?;
        if message.len() > MAX_MESSAGE_LEN {
            return Err(AuthError::MalformedMessage(format!(
                "it is longer than {MAX_MESSAGE_LEN} bytes"
            )));
        }
        let parsed: ::siwe::Message = message
            .parse()
            .map_err(|e: ::siwe::ParseError| AuthError::MalformedMessage(e.to_string()))?;

        if parsed.domain != self.config.domain {
            return Err(AuthError::WrongDomain {
                expected: self.config.domain.to_string(),
                found: parsed.domain.to_string(),
            });
        }
        if parsed.chain_id != self.config.chain_id {
            return Err(AuthError::WrongChain {
                expected: self.config.chain_id,
                found: parsed.chain_id,
            });
        }
        if let Some(expected) = request_id
            && parsed.request_id.as_deref() != Some(expected)
        {
            return Err(AuthError::MalformedMessage(
                "its Request ID is not the one of this authorization request: sign the message the page shows".into(),
            ));
        }

        let now_ns = i128::from(now) * 1_000_000_000;
        let skew_ns = i128::from(self.config.skew.as_secs()) * 1_000_000_000;
        let ns = |t: &::siwe::TimeStamp| t.as_ref().unix_timestamp_nanos();
        if ns(&parsed.issued_at) > now_ns + skew_ns {
            return Err(AuthError::MessageIssuedInFuture {
                issued_at: parsed.issued_at.to_string(),
            });
        }
        if let Some(nbf) = parsed.not_before.as_ref().filter(|nbf| ns(nbf) > now_ns + skew_ns) {
            return Err(AuthError::MessageNotYetValid { not_before: nbf.to_string() });
        }
        // The token dies with the message: a whole second before it at the latest.
        let mut expires_at = now.saturating_add(self.config.token_lifetime.as_secs());
        if let Some(exp) = &parsed.expiration_time {
            let exp_secs = exp.as_ref().unix_timestamp();
            let exp_secs = u64::try_from(exp_secs).unwrap_or(0);
            if exp_secs <= now {
                return Err(AuthError::MessageExpired { expired_at: exp.to_string() });
            }
            expires_at = expires_at.min(exp_secs);
        }

        self.nonces.check(&parsed.nonce, now)?;

        let address = Address::from(parsed.address);
        let recovered = signature
            .recover_address_from_prehash(&eip191_hash_message(message))
            .map_err(|e| AuthError::InvalidSignature(e.to_string()))?;
        if recovered != address {
            return Err(AuthError::SignatureMismatch { address, recovered });
        }
        if !is_known(address) {
            return Err(AuthError::UnknownSigner(address));
        }

        self.nonces.consume(&parsed.nonce, now)?;
        Ok((address, expires_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_32_hex_digits_and_single_use() {
        let issuer = NonceIssuer::new(DEFAULT_NONCE_LIFETIME, 10);
        let a = issuer.issue(100).unwrap();
        let b = issuer.issue(100).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(issuer.check(&a, 100), Ok(()));
        assert_eq!(issuer.consume(&a, 101), Ok(()));
        assert_eq!(issuer.consume(&a, 102), Err(AuthError::NonceAlreadyUsed));
        assert_eq!(issuer.check(&a, 102), Err(AuthError::NonceAlreadyUsed));
        assert_eq!(issuer.consume(&b, 102), Ok(()));
    }

    #[test]
    fn nonces_expire_after_their_lifetime() {
        let issuer = NonceIssuer::new(Duration::from_secs(300), 10);
        let n = issuer.issue(1_000).unwrap();
        assert_eq!(issuer.check(&n, 1_299), Ok(()));
        assert_eq!(issuer.consume(&n, 1_300), Err(AuthError::UnknownNonce));
    }

    #[test]
    fn nonces_not_issued_here_are_unknown() {
        let issuer = NonceIssuer::new(DEFAULT_NONCE_LIFETIME, 10);
        let n = issuer.issue(0).unwrap();
        for other in ["", "abc", "0123456789abcdef0123456789abcdef", &n.to_uppercase(), "zz"] {
            assert_eq!(issuer.consume(other, 1), Err(AuthError::UnknownNonce), "{other}");
        }
    }

    #[test]
    fn the_issuer_refuses_past_its_capacity_until_nonces_expire() {
        let issuer = NonceIssuer::new(Duration::from_secs(300), 2);
        issuer.issue(0).unwrap();
        issuer.issue(10).unwrap();
        assert_eq!(issuer.issue(20), Err(AuthError::TooManyNonces { capacity: 2 }));
        assert!(issuer.issue(300).is_ok(), "the first nonce expired at 300");
    }
}
