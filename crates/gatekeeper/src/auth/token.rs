//! Opaque bearer tokens.
//!
//! A token is 256 random bits written as 64 lowercase hex digits. The store keeps only
//! the keccak-256 of each token, so the tokens themselves are not in the gatekeeper's
//! memory once they have been handed out.
//!
//! The same store holds the access tokens of Sign-In with Ethereum and of SMART App
//! Launch ([`crate::smart`]): a SMART token also carries its [`Grant`], which narrows
//! what it may do and dies with the authorization it comes from. Both are resolved by
//! the same hash-map lookup.

use super::{AuthError, expiring::ExpiringMap, random};
use crate::smart::Grant;
use alloy::{
    hex,
    primitives::{Address, B256, keccak256},
};
use std::{
    fmt,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

/// The default bound on live tokens.
pub const DEFAULT_TOKEN_CAPACITY: usize = 100_000;

/// A bearer token, as handed to the client that signed in.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    secret: String,
    address: Address,
    expires_at: u64,
    expires_in: u64,
}

impl Token {
    /// The token to send as `Authorization: Bearer <token>`.
    pub fn access_token(&self) -> &str {
        &self.secret
    }

    /// The address that signed in.
    pub fn address(&self) -> Address {
        self.address
    }

    /// When the token stops working, unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// How many seconds the token lived for when it was issued.
    pub fn expires_in(&self) -> u64 {
        self.expires_in
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"<redacted>")
            .field("address", &self.address)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Whom a live token stands for, and what narrows it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The address that signed in.
    pub address: Address,
    /// For a SMART token, its scopes and the authorization it comes from; `None` for a
    /// Sign-In with Ethereum token (the chain alone decides what it may see).
    pub grant: Option<Arc<Grant>>,
}

/// The live bearer tokens and whom they stand for, bounded in number.
#[derive(Debug)]
pub struct TokenStore {
    tokens: Mutex<ExpiringMap<B256, Session>>,
}

impl TokenStore {
    /// A store holding at most `capacity` tokens at once.
    pub fn new(capacity: usize) -> Self {
        Self { tokens: Mutex::new(ExpiringMap::new(capacity)) }
    }

    /// A new token for `address`, live from `now` until `expires_at` (unix seconds).
    ///
    /// Refused with [`AuthError::TooManyTokens`] when the store is full; a revoked token
    /// keeps its place until it would have expired.
    pub fn issue(&self, address: Address, expires_at: u64, now: u64) -> Result<Token, AuthError> {
        self.issue_session(Session { address, grant: None }, expires_at, now)
    }

    /// A new token for `session` (a SMART token when it carries a grant), live from
    /// `now` until `expires_at`; refused like [`TokenStore::issue`] when full.
    pub fn issue_session(
        &self,
        session: Session,
        expires_at: u64,
        now: u64,
    ) -> Result<Token, AuthError> {
        let secret = random::bytes::<32>()?;
        let address = session.address;
        let mut tokens = self.lock();
        tokens
            .insert(keccak256(secret), session, expires_at, now)
            .map_err(|_| AuthError::TooManyTokens { capacity: tokens.capacity() })?;
        Ok(Token {
            secret: hex::encode(secret),
            address,
            expires_at,
            expires_in: expires_at.saturating_sub(now),
        })
    }

    /// The address `token` stands for, if it is live at `now`. An expired token is
    /// forgotten here; a string that is no token of ours is simply unknown.
    pub fn resolve(&self, token: &str, now: u64) -> Option<Address> {
        self.session(token, now).map(|s| s.address)
    }

    /// The session `token` stands for, if it is live at `now`: not expired, and for a
    /// SMART token, its authorization not revoked (a revoked one is forgotten here).
    pub fn session(&self, token: &str, now: u64) -> Option<Session> {
        let key = Self::key(token)?;
        let mut tokens = self.lock();
        let session = tokens.get_mut(&key, now)?;
        if session.grant.as_ref().is_some_and(|g| !g.is_live()) {
            tokens.remove(&key);
            return None;
        }
        Some(session.clone())
    }

    /// Forgets `token`; returns whether it was known.
    pub fn revoke(&self, token: &str) -> bool {
        Self::key(token).is_some_and(|key| self.lock().remove(&key).is_some())
    }

    /// How many tokens are held (expired ones not yet forgotten included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(token: &str) -> Option<B256> {
        if token.len() != 64 || token.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        hex::decode_to_array::<_, 32>(token).ok().map(keccak256)
    }

    fn lock(&self) -> MutexGuard<'_, ExpiringMap<B256, Session>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Address = Address::repeat_byte(0xa1);

    #[test]
    fn a_token_is_256_random_bits_in_hex() {
        let store = TokenStore::new(10);
        let a = store.issue(ALICE, 100, 10).unwrap();
        let b = store.issue(ALICE, 100, 10).unwrap();
        assert_ne!(a.access_token(), b.access_token());
        assert_eq!(a.access_token().len(), 64);
        assert_eq!(a.expires_in(), 90);
        assert!(!format!("{a:?}").contains(a.access_token()), "Debug must not print the secret");
    }

    #[test]
    fn tokens_resolve_until_they_expire_then_are_forgotten() {
        let store = TokenStore::new(10);
        let t = store.issue(ALICE, 100, 10).unwrap();
        assert_eq!(store.resolve(t.access_token(), 99), Some(ALICE));
        assert_eq!(store.resolve(t.access_token(), 100), None);
        assert!(store.is_empty());
        assert_eq!(store.resolve(t.access_token(), 50), None, "an expired token stays gone");
    }

    #[test]
    fn revoked_and_foreign_tokens_resolve_to_nothing() {
        let store = TokenStore::new(10);
        let t = store.issue(ALICE, 100, 10).unwrap();
        assert!(store.revoke(t.access_token()));
        assert_eq!(store.resolve(t.access_token(), 11), None);
        assert!(!store.revoke(t.access_token()));
        assert_eq!(store.resolve(&t.access_token().to_uppercase(), 11), None);
        assert_eq!(store.resolve("", 11), None);
        assert_eq!(store.resolve(&"g".repeat(64), 11), None);
    }

    #[test]
    fn the_store_is_bounded() {
        let store = TokenStore::new(1);
        store.issue(ALICE, 100, 10).unwrap();
        assert_eq!(store.issue(ALICE, 100, 10), Err(AuthError::TooManyTokens { capacity: 1 }));
        assert!(store.issue(ALICE, 200, 100).is_ok());
    }
}
