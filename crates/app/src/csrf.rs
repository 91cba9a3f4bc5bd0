//! Refusing requests that do not come from the app's own pages.
//!
//! The app listens on loopback, but any web page the patient opens can still make the
//! browser send requests to it (cross-site request forgery), and a hostile DNS name can
//! point at 127.0.0.1 (DNS rebinding). So every request must name one of the app's own
//! hosts in `Host`, and every request that changes something (anything but `GET` and
//! `HEAD`) must come from the app's own origin: `Origin` (or, lacking it, `Referer`)
//! must be `http://<that host>`, and `Sec-Fetch-Site`, when the browser sends it, must
//! not say `cross-site` or `same-site`.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;

/// The hosts (`127.0.0.1:8090`, `localhost:8090`) the app answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts(pub Vec<String>);

impl Hosts {
    /// The hosts of an app listening on `addr`: the address itself and, on loopback,
    /// `localhost` with the same port.
    pub fn of(addr: std::net::SocketAddr) -> Self {
        let mut hosts = vec![addr.to_string()];
        if addr.ip().is_loopback() {
            hosts.push(format!("localhost:{}", addr.port()));
        }
        Self(hosts)
    }

    fn allows(&self, host: &str) -> bool {
        self.0.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// Why a request was refused, in a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` is missing or not one of the app's.
    ForeignHost,
    /// A change was asked from another origin (or without saying where from).
    ForeignOrigin,
}

impl Refusal {
    /// The sentence shown.
    pub const fn sentence(self) -> &'static str {
        match self {
            Self::ForeignHost => {
                "This address is not the MedRec app's own: open the app at the address `medrec app` printed."
            }
            Self::ForeignOrigin => {
                "This request did not come from the MedRec app's own pages, so it was refused. Use the buttons in the app."
            }
        }
    }
}

/// Decides whether a request with these headers may go on.
///
/// # Errors
/// The [`Refusal`] when it may not.
pub fn check(method: &Method, headers: &HeaderMap, hosts: &Hosts) -> Result<(), Refusal> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST).ok_or(Refusal::ForeignHost)?;
    if !hosts.allows(host) {
        return Err(Refusal::ForeignHost);
    }
    if *method == Method::GET || *method == Method::HEAD {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && (site == "cross-site" || site == "same-site")
    {
        return Err(Refusal::ForeignOrigin);
    }
    let own = format!("http://{host}");
    match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(origin), _) if origin.eq_ignore_ascii_case(&own) => Ok(()),
        (None, Some(referer))
            if referer.get(..own.len()).is_some_and(|p| p.eq_ignore_ascii_case(&own))
                && matches!(referer.as_bytes().get(own.len()), None | Some(b'/')) =>
        {
            Ok(())
        }
        _ => Err(Refusal::ForeignOrigin),
    }
}

/// The middleware: refuses with 403 and a sentence, before any handler runs.
pub(crate) async fn layer(
    State(hosts): State<Arc<Hosts>>,
    request: Request,
    next: Next,
) -> Response {
    match check(request.method(), request.headers(), &hosts) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            crate::error::page(StatusCode::FORBIDDEN, refusal.sentence()).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_the_apps_own_origin_may_change_things() {
        let hosts = Hosts::of("127.0.0.1:8090".parse().unwrap());
        let post = Method::POST;
        let ok = headers(&[("host", "127.0.0.1:8090"), ("origin", "http://127.0.0.1:8090")]);
        assert_eq!(check(&post, &ok, &hosts), Ok(()));
        let local = headers(&[("host", "localhost:8090"), ("origin", "http://localhost:8090")]);
        assert_eq!(check(&post, &local, &hosts), Ok(()));
        let evil = headers(&[("host", "127.0.0.1:8090"), ("origin", "http://evil.example")]);
        assert_eq!(check(&post, &evil, &hosts), Err(Refusal::ForeignOrigin));
        let null = headers(&[("host", "127.0.0.1:8090"), ("origin", "null")]);
        assert_eq!(check(&post, &null, &hosts), Err(Refusal::ForeignOrigin));
        let silent = headers(&[("host", "127.0.0.1:8090")]);
        assert_eq!(check(&post, &silent, &hosts), Err(Refusal::ForeignOrigin));
        let referer =
            headers(&[("host", "127.0.0.1:8090"), ("referer", "http://127.0.0.1:8090/inbox")]);
        assert_eq!(check(&post, &referer, &hosts), Ok(()));
        let longer =
            headers(&[("host", "127.0.0.1:8090"), ("referer", "http://127.0.0.1:80901/x")]);
        assert_eq!(check(&post, &longer, &hosts), Err(Refusal::ForeignOrigin));
        let cross = headers(&[
            ("host", "127.0.0.1:8090"),
            ("origin", "http://127.0.0.1:8090"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert_eq!(check(&post, &cross, &hosts), Err(Refusal::ForeignOrigin));
    }

    #[test]
    fn a_foreign_host_is_refused_even_for_reading() {
        let hosts = Hosts::of("127.0.0.1:8090".parse().unwrap());
        let rebound = headers(&[("host", "attacker.example:8090")]);
        assert_eq!(check(&Method::GET, &rebound, &hosts), Err(Refusal::ForeignHost));
        assert_eq!(check(&Method::GET, &HeaderMap::new(), &hosts), Err(Refusal::ForeignHost));
        let page = headers(&[("host", "127.0.0.1:8090")]);
        assert_eq!(check(&Method::GET, &page, &hosts), Ok(()));
    }
}
