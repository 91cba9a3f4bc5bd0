//! Who may use the app: the browser that proved it may.
//!
//! The app listens on loopback, but every program and every user of the machine can
//! reach loopback. So each run of the app draws a random key (256 bits), and only a
//! browser holding it, as an `HttpOnly`, `SameSite=Strict` cookie, is served. A browser
//! gets the cookie either by unlocking the wallet with its passphrase (`POST /unlock`,
//! checked even when the app is already unlocked) or by opening the link the app printed
//! at start (`/?key=…`, for an app unlocked with `--passphrase-env` or
//! `--passphrase-file`). Without it, a page leads to the unlock form and an action is
//! refused (403). Each run names its cookie apart (`medrec_app_` and 8 random hex
//! digits): a browser keeps cookies per host, not per port, so two apps on loopback (the
//! demo's patient and viewer) would otherwise overwrite each other's key.

use crate::state::AppState;
use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

/// The cookie's name, before this run's own suffix.
pub(crate) const COOKIE: &str = "medrec_app";

/// The secret of one run of the app, as 64 hex digits, and the name of its cookie.
#[derive(Clone)]
pub(crate) struct Key(String, String);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// A fresh key from the operating system's randomness.
    ///
    /// # Panics
    /// When the operating system gives no randomness (the app cannot be safe then).
    pub(crate) fn random() -> Self {
        let mut bytes = [0u8; 36];
        getrandom::fill(&mut bytes).expect("the operating system's randomness");
        Self(hex::encode(&bytes[..32]), format!("{COOKIE}_{}", hex::encode(&bytes[32..])))
    }

    /// The key as text, for the link printed at start.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is the key, compared in constant time.
    pub(crate) fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The `Set-Cookie` value that hands the key to a browser.
    pub(crate) fn cookie(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("{}={}; Path=/; HttpOnly; SameSite=Strict", self.1, self.0))
            .expect("hex digits make a valid header")
    }

    /// The `Set-Cookie` value that takes the key back from a browser.
    pub(crate) fn clear_cookie(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict", self.1))
            .expect("hex digits make a valid header")
    }

    /// Whether the request's cookies hold the key.
    pub(crate) fn held_by(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == self.1 && self.matches(value))
    }
}

/// The layer: serves the unlock form and the assets to anyone, trades a valid
/// `?key=` for the cookie, and otherwise serves only a browser holding the key.
pub(crate) async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // Unlocking, and creating or recovering a wallet where there is none yet, is how a
    // browser gets the key.
    if matches!(path, "/unlock" | "/account/new" | "/account/recover")
        || path.starts_with("/assets/")
    {
        return next.run(request).await;
    }
    if let Some(offered) = launch_key(request.uri().query()) {
        if request.method() == Method::GET && state.key.matches(offered) {
            // The same page, without the key in its address (and so in the history).
            let rest = without_key(request.uri().query());
            let to = if rest.is_empty() { path.to_owned() } else { format!("{path}?{rest}") };
            let mut response = Redirect::to(&to).into_response();
            response.headers_mut().insert(header::SET_COOKIE, state.key.cookie());
            return response;
        }
        return refuse(&request);
    }
    if state.key.held_by(request.headers()) {
        return next.run(request).await;
    }
    refuse(&request)
}

/// The `key` parameter of a query string, if any.
fn launch_key(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| pair.strip_prefix("key="))
}

/// A query string without its `key` parameter.
fn without_key(query: Option<&str>) -> String {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("key="))
        .collect::<Vec<_>>()
        .join("&")
}

fn refuse(request: &Request) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        Redirect::to("/unlock").into_response()
    } else {
        (
            StatusCode::FORBIDDEN,
            "This browser has not unlocked the app: open the link the app printed when it started, or unlock it with your passphrase.",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_256_random_bits_and_matches_only_itself() {
        let (a, b) = (Key::random(), Key::random());
        assert_eq!(a.as_str().len(), 64);
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.matches(a.as_str()));
        assert!(!a.matches(b.as_str()));
        assert!(!a.matches(&a.as_str()[..63]));
        assert!(!a.matches(""));
    }

    #[test]
    fn the_key_is_found_among_the_cookies() {
        let key = Key::random();
        let mut headers = HeaderMap::new();
        assert!(!key.held_by(&headers));
        let other = Key::random();
        // Another app on loopback (same host, another port) keeps its own cookie beside it.
        let cookies = format!(
            "theme=dark; {}={}; {}",
            other.1,
            other.as_str(),
            key.cookie().to_str().unwrap()
        );
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookies).unwrap());
        assert!(key.held_by(&headers));
        assert!(other.held_by(&headers));
        assert_ne!(key.1, other.1, "each run names its cookie apart");
        assert!(key.1.starts_with(&format!("{COOKIE}_")));
        let mut wrong = HeaderMap::new();
        let forged = format!("{}={}", key.1, other.as_str());
        wrong.insert(header::COOKIE, HeaderValue::from_str(&forged).unwrap());
        assert!(!key.held_by(&wrong));
        assert!(key.cookie().to_str().unwrap().contains("HttpOnly; SameSite=Strict"));
        assert!(key.clear_cookie().to_str().unwrap().starts_with(&format!("{}=;", key.1)));
    }

    #[test]
    fn the_launch_key_is_read_from_the_query() {
        assert_eq!(launch_key(Some("key=abc")), Some("abc"));
        assert_eq!(launch_key(Some("x=1&key=abc")), Some("abc"));
        assert_eq!(launch_key(Some("x=1")), None);
        assert_eq!(launch_key(None), None);
        assert_eq!(without_key(Some("key=abc&category=labs&q=x")), "category=labs&q=x");
        assert_eq!(without_key(Some("key=abc")), "");
        assert_eq!(without_key(None), "");
    }
}
