//! SMART App Launch 2.x, standalone launch, for public clients, with Sign-In with
//! Ethereum as the way the person proves who they are.
//!
//! 1. The app finds the endpoints at `GET /fhir/.well-known/smart-configuration`
//!    (public; also in the CapabilityStatement's `rest.security`).
//! 2. It sends the person's browser to `GET /authorize` (authorization code with PKCE
//!    `S256`, RFC 6749 §4.1 and RFC 7636). The gatekeeper checks the client and its
//!    redirect URI against those the provider registered ([`SmartClients`]) and answers
//!    a page that says in words what the app asks for. An unknown client or redirect URI
//!    is refused on that page, never redirected to (RFC 6749 §4.1.2.1).
//! 3. On the page the person signs an EIP-4361 message with their wallet; the message
//!    carries the request's [`AuthorizeRequest::request_id`], so the signature serves
//!    that authorization and nothing else. `POST /authorize` checks it like a sign-in
//!    ([`crate::auth::SiweAuthenticator::verify_for`]), decides the grant and redirects
//!    with a code (single use, 60 s).
//! 4. The app trades code and verifier for an access token at `POST /token`, and later a
//!    refresh token for another; `POST /revoke` (RFC 7009) revokes either. With
//!    `openid` the answer carries an id token too ([`oidc`]).
//!
//! **Scopes only narrow.** The grant ([`Grant`]) is what the app asked for, cut to what
//! the chain lets the person see at that moment (the types its grants reach, reads only
//! for anyone but the provider, `patient/` scopes to one patient in context); an
//! authorization left with no clinical scope is refused (`invalid_scope`). The access
//! token lives in the same store as Sign-In with Ethereum's and is resolved by the same
//! lookup; every request it carries is still decided against the live consent index and
//! then narrowed by the grant ([`crate::access::Scope`]), so a revocation on chain cuts
//! it at the next block. A refresh is refused once the person has no access here; a code
//! presented twice revokes everything issued from it.

pub mod oidc;
mod page;
pub mod pkce;
pub(crate) mod routes;
pub mod scope;

pub use routes::AuthorizeRequest;
pub use scope::{Clinical, Context, Family, Grant, Interaction, Requested};

use crate::auth::{AuthError, expiring::ExpiringMap};
use alloy::primitives::{Address, B256, keccak256};
use axum::http::Method;
use medrec_store::fhir::ResourceType;
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

/// How long an authorization code may be exchanged.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long a refresh token from `offline_access` lives.
pub const OFFLINE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a refresh token from `online_access` lives.
pub const ONLINE_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// At most this many codes, and this many refresh tokens, are held at once.
pub const CAPACITY: usize = 100_000;

/// The public clients the provider registered: each client id with the redirect URIs
/// it may use (compared exactly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmartClients {
    clients: BTreeMap<String, Vec<String>>,
}

/// A client registration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the SMART client '{0}' is not CLIENT_ID=REDIRECT_URI with an http(s) redirect URI (no fragment)"
)]
pub struct InvalidSmartClient(pub String);

impl SmartClients {
    /// Registers `redirect_uri` for `client_id`.
    pub fn register(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<(), InvalidSmartClient> {
        let bad = || InvalidSmartClient(format!("{client_id}={redirect_uri}"));
        let id_ok = !client_id.is_empty()
            && client_id.len() <= 128
            && client_id.bytes().all(|b| b.is_ascii_graphic() && b != b'=');
        let uri_ok = (redirect_uri.starts_with("https://") || redirect_uri.starts_with("http://"))
            && !redirect_uri.contains('#')
            && redirect_uri.len() <= 2048
            && redirect_uri.bytes().all(|b| b.is_ascii_graphic());
        if !id_ok || !uri_ok {
            return Err(bad());
        }
        let uris = self.clients.entry(client_id.to_owned()).or_default();
        if !uris.iter().any(|u| u == redirect_uri) {
            uris.push(redirect_uri.to_owned());
        }
        Ok(())
    }

    /// The clients of `CLIENT_ID=REDIRECT_URI` texts (a client may appear several times,
    /// once per redirect URI).
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self, InvalidSmartClient> {
        let mut out = Self::default();
        for spec in specs {
            let spec = spec.as_ref();
            let (id, uri) =
                spec.split_once('=').ok_or_else(|| InvalidSmartClient(spec.to_owned()))?;
            out.register(id.trim(), uri.trim())?;
        }
        Ok(out)
    }

    /// Whether `client_id` is registered.
    pub fn knows(&self, client_id: &str) -> bool {
        self.clients.contains_key(client_id)
    }

    /// Whether `client_id` is registered with exactly `redirect_uri`.
    pub fn allows(&self, client_id: &str, redirect_uri: &str) -> bool {
        self.clients.get(client_id).is_some_and(|uris| uris.iter().any(|u| u == redirect_uri))
    }

    /// Whether no client is registered.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// An authorization code, until it is exchanged.
#[derive(Debug)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    address: Address,
    grant: Arc<Grant>,
    /// The `nonce` of the authorization request, for the id token.
    nonce: Option<String>,
    used: bool,
}

/// A refresh token's authorization.
#[derive(Debug, Clone)]
struct Refresh {
    address: Address,
    grant: Arc<Grant>,
}

/// The SMART side of a gatekeeper: its registered clients, its outstanding codes and
/// its refresh tokens (access tokens live in the sign-in token store), and the key that
/// signs id tokens.
#[derive(Debug)]
pub(crate) struct Smart {
    clients: SmartClients,
    /// `None` only when the operating system gave no randomness for a new key (then
    /// `openid` gets no id token: `temporarily_unavailable`).
    id_key: Option<Arc<oidc::IdKey>>,
    codes: Mutex<ExpiringMap<B256, Code>>,
    refresh: Mutex<ExpiringMap<B256, Refresh>>,
}

impl Default for Smart {
    fn default() -> Self {
        Self::new(SmartClients::default())
    }
}

/// Why a code could not be exchanged (all are `invalid_grant` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeRefusal {
    /// Not a code of ours, or expired.
    Unknown,
    /// Already presented once (everything issued from it is now revoked).
    Reused,
    /// Issued to another client.
    OtherClient,
    /// Issued for another redirect URI.
    OtherRedirect,
    /// The verifier does not match the challenge.
    BadVerifier,
}

impl CodeRefusal {
    pub(crate) const fn description(self) -> &'static str {
        match self {
            Self::Unknown => "the authorization code is unknown or has expired",
            Self::Reused => {
                "the authorization code was already used: every token issued from it is revoked"
            }
            Self::OtherClient => "the authorization code was issued to another client",
            Self::OtherRedirect => "redirect_uri is not the one of the authorization request",
            Self::BadVerifier => "the code_verifier does not match the code_challenge (PKCE S256)",
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A random secret (256 bits in hex) and the key it is stored under.
fn secret() -> Result<(String, B256), AuthError> {
    let bytes = crate::auth::random::bytes::<32>()?;
    Ok((alloy::hex::encode(bytes), keccak256(bytes)))
}

/// The key a secret handed out is stored under; `None` for text that is none of ours.
fn key(secret: &str) -> Option<B256> {
    if secret.len() != 64 || secret.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    alloy::hex::decode_to_array::<_, 32>(secret).ok().map(keccak256)
}

impl Smart {
    /// The SMART side for these registered clients.
    pub(crate) fn new(clients: SmartClients) -> Self {
        Self {
            clients,
            id_key: oidc::IdKey::generate().ok().map(Arc::new),
            codes: Mutex::new(ExpiringMap::new(CAPACITY)),
            refresh: Mutex::new(ExpiringMap::new(CAPACITY)),
        }
    }

    /// The registered clients.
    pub(crate) fn clients(&self) -> &SmartClients {
        &self.clients
    }

    /// The same registered clients, with `key` signing id tokens.
    pub(crate) fn set_id_key(&mut self, key: oidc::IdKey) {
        self.id_key = Some(Arc::new(key));
    }

    /// The same with other clients, keeping the id token key.
    pub(crate) fn set_clients(&mut self, clients: SmartClients) {
        self.clients = clients;
    }

    /// The key that signs id tokens.
    pub(crate) fn id_key(&self) -> Option<&oidc::IdKey> {
        self.id_key.as_deref()
    }

    /// A new code for `address`'s authorization of `grant`.
    pub(crate) fn issue_code(
        &self,
        request: &routes::Checked,
        address: Address,
        grant: Arc<Grant>,
        now: u64,
    ) -> Result<String, AuthError> {
        let (code, key) = secret()?;
        let entry = Code {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            challenge: request.code_challenge.clone(),
            address,
            grant,
            nonce: request.nonce.clone(),
            used: false,
        };
        let mut codes = lock(&self.codes);
        codes
            .insert(key, entry, now.saturating_add(CODE_LIFETIME.as_secs()), now)
            .map_err(|_| AuthError::TooManyTokens { capacity: codes.capacity() })?;
        Ok(code)
    }

    /// Exchanges `code`: the address and grant it stands for, and the authorization
    /// request's `nonce`. A code is used up by its
    /// first presentation, right or wrong; presented again, it revokes everything issued
    /// from it.
    pub(crate) fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
        now: u64,
    ) -> Result<(Address, Arc<Grant>, Option<String>), CodeRefusal> {
        let key = key(code).ok_or(CodeRefusal::Unknown)?;
        let mut codes = lock(&self.codes);
        let entry = codes.get_mut(&key, now).ok_or(CodeRefusal::Unknown)?;
        if entry.used {
            entry.grant.family.revoke();
            return Err(CodeRefusal::Reused);
        }
        entry.used = true;
        if entry.client_id != client_id {
            return Err(CodeRefusal::OtherClient);
        }
        if entry.redirect_uri != redirect_uri {
            return Err(CodeRefusal::OtherRedirect);
        }
        if !pkce::verify(verifier, &entry.challenge) {
            return Err(CodeRefusal::BadVerifier);
        }
        Ok((entry.address, Arc::clone(&entry.grant), entry.nonce.clone()))
    }

    /// A refresh token for `grant`, until `expires_at`.
    pub(crate) fn issue_refresh(
        &self,
        address: Address,
        grant: Arc<Grant>,
        expires_at: u64,
        now: u64,
    ) -> Result<String, AuthError> {
        let (token, key) = secret()?;
        let mut refresh = lock(&self.refresh);
        refresh
            .insert(key, Refresh { address, grant }, expires_at, now)
            .map_err(|_| AuthError::TooManyTokens { capacity: refresh.capacity() })?;
        Ok(token)
    }

    /// The authorization behind a live refresh token of `client_id`.
    pub(crate) fn refresh(
        &self,
        token: &str,
        client_id: &str,
        now: u64,
    ) -> Option<(Address, Arc<Grant>)> {
        let key = key(token)?;
        let mut refresh = lock(&self.refresh);
        let entry = refresh.get_mut(&key, now)?;
        if !entry.grant.is_live() {
            refresh.remove(&key);
            return None;
        }
        (entry.grant.client_id == client_id).then(|| (entry.address, Arc::clone(&entry.grant)))
    }

    /// The client a refresh token was issued to, while it lives.
    pub(crate) fn client_of_refresh(&self, token: &str, now: u64) -> Option<String> {
        let key = key(token)?;
        lock(&self.refresh).get_mut(&key, now).map(|e| e.grant.client_id.clone())
    }

    /// Forgets a refresh token and revokes its authorization (and so every access token
    /// issued from it); `false` when it is no refresh token of ours.
    pub(crate) fn revoke_refresh(&self, token: &str) -> bool {
        let Some(key) = key(token) else { return false };
        match lock(&self.refresh).remove(&key) {
            Some(entry) => {
                entry.grant.family.revoke();
                true
            }
            None => false,
        }
    }
}

/// Whether a request carrying a SMART token with `grant` may reach the route of
/// `method` `path` at all: the FHIR API only (`/fhir/…`), and there only the
/// interaction its scopes allow on the type it names (read, version read: `r`; search:
/// `s`; create: `c`; update: `u`; a transaction or batch: `user/*.cu`). What it then
/// sees is narrowed further per resource ([`crate::access::Scope`]).
pub fn check_route(grant: &Grant, method: &Method, path: &str) -> Result<(), AuthError> {
    let refuse = |why: String| Err(AuthError::InsufficientScope(why));
    let Some(rest) = path.strip_prefix("/fhir") else {
        return refuse("a SMART token reaches the FHIR API (/fhir) only".into());
    };
    // Without collecting the segments: this runs on every request a SMART token sends.
    let mut parts = rest.split('/').filter(|p| !p.is_empty());
    let (first, second, third, more) = (parts.next(), parts.next(), parts.next(), parts.next());
    let count = [first, second, third, more].iter().filter(|p| p.is_some()).count();
    let Some(first) = first else {
        return if *method == Method::POST && grant.writes_everything() {
            Ok(())
        } else {
            refuse("a transaction or batch needs user/*.cu".into())
        };
    };
    let Ok(ty) = first.parse::<ResourceType>() else {
        // Not a type this server serves: the handler answers as for anyone.
        return Ok(());
    };
    let interaction = match (method.as_str(), count) {
        ("GET", 1) => Interaction::Search,
        ("GET", 3) if third == Some("$everything") => Interaction::Search,
        ("GET", _) => Interaction::Read,
        ("POST", 1) => Interaction::Create,
        ("PUT", _) => Interaction::Update,
        _ => return Ok(()),
    };
    if grant.allows_some(ty, interaction) {
        Ok(())
    } else {
        let letter = match interaction {
            Interaction::Create => "c",
            Interaction::Read => "r",
            Interaction::Update => "u",
            Interaction::Delete => "d",
            Interaction::Search => "s",
        };
        refuse(format!("no scope grants '{letter}' on {ty}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(scopes: &str) -> Grant {
        Grant {
            clinical: Requested::parse(scopes).clinical,
            patient: Some("p1".parse().unwrap()),
            refresh: None,
            client_id: "app".into(),
            openid: false,
            fhir_user: None,
            family: Arc::default(),
        }
    }

    #[test]
    fn clients_are_registered_with_exact_redirect_uris() {
        let c = SmartClients::parse(&["app=https://app.example/cb", "app=http://localhost/cb"])
            .unwrap();
        assert!(c.allows("app", "https://app.example/cb"));
        assert!(!c.allows("app", "https://app.example/cb/"));
        assert!(!c.allows("other", "https://app.example/cb"));
        for bad in ["app", "=https://a/cb", "app=ftp://a", "app=https://a/cb#x", "a b=https://a"] {
            assert!(SmartClients::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn routes_follow_the_scopes() {
        let g = grant("patient/Observation.rs patient/Condition.r");
        let ok = |m: Method, p: &str| check_route(&g, &m, p).is_ok();
        assert!(ok(Method::GET, "/fhir/Observation"));
        assert!(ok(Method::GET, "/fhir/Observation/o1"));
        assert!(ok(Method::GET, "/fhir/Condition/c1"));
        assert!(!ok(Method::GET, "/fhir/Condition"), "no s on Condition");
        assert!(!ok(Method::GET, "/fhir/Procedure/x"));
        assert!(!ok(Method::POST, "/fhir/Observation"));
        assert!(!ok(Method::PUT, "/fhir/Observation/o1"));
        assert!(!ok(Method::POST, "/fhir"));
        assert!(!ok(Method::GET, "/audit"));
        assert!(!ok(Method::GET, "/pointers/0x1/0"));
        assert!(!ok(Method::GET, "/fhir/Patient/p1/$everything"));
        let all = grant("user/*.cruds");
        assert!(check_route(&all, &Method::POST, "/fhir").is_ok());
        assert!(check_route(&all, &Method::PUT, "/fhir/Observation/o1").is_ok());
    }
}
