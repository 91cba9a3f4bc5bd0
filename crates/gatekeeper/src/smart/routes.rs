//! The SMART routes: discovery, `/authorize` (the page and its answer), `/token` and
//! `/revoke`. See the [module documentation](super).

use super::{
    CodeRefusal, Grant, OFFLINE_LIFETIME, ONLINE_LIFETIME, Requested, page, pkce,
    scope::{Clinical, Context, READS},
};
use crate::{
    access::{Candidate, Reach},
    auth::Session,
    server::Gatekeeper,
};
use alloy::primitives::{Address, keccak256};
use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use medrec_store::fhir::ResourceId;
use serde::Deserialize;
use serde_json::{Value, json};
use std::{collections::HashMap, sync::Arc};

/// The largest form accepted by `/authorize`, `/token` and `/revoke`, in bytes.
pub(crate) const FORM_LIMIT: usize = 16 * 1024;

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, SMART's
/// `aud`), as the app sent them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// `code`, the only response type served.
    pub response_type: Option<String>,
    /// The registered client.
    pub client_id: Option<String>,
    /// One of the client's registered redirect URIs.
    pub redirect_uri: Option<String>,
    /// The scopes asked for, space-separated.
    pub scope: Option<String>,
    /// The app's opaque state, sent back with the code.
    pub state: Option<String>,
    /// The FHIR base URL the app means to use (this gatekeeper's).
    pub aud: Option<String>,
    /// `BASE64URL(SHA256(code_verifier))`.
    pub code_challenge: Option<String>,
    /// `S256`.
    pub code_challenge_method: Option<String>,
    /// OpenID Connect's `nonce`, echoed in the id token.
    pub nonce: Option<String>,
}

impl AuthorizeRequest {
    /// The `Request ID` the sign-in message of this authorization must carry:
    /// `smart-` and the first 16 bytes of the keccak-256 of the request's parameters, so
    /// that a signature given for one app, redirect, scope and challenge serves no other.
    pub fn request_id(&self) -> String {
        let mut text = String::new();
        for field in [
            &self.response_type,
            &self.client_id,
            &self.redirect_uri,
            &self.scope,
            &self.state,
            &self.aud,
            &self.code_challenge,
            &self.code_challenge_method,
        ] {
            text.push_str(field.as_deref().unwrap_or(""));
            text.push('\n');
        }
        // Only when sent, so the ids of requests without one are what they were.
        if let Some(nonce) = &self.nonce {
            text.push_str("nonce=");
            text.push_str(nonce);
            text.push('\n');
        }
        format!("smart-{}", alloy::hex::encode(&keccak256(text.as_bytes())[..16]))
    }
}

/// An authorization request whose client and redirect URI are registered, and whose
/// other parameters are usable.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: String,
    pub(crate) code_challenge: String,
    pub(crate) requested: Requested,
    pub(crate) scope: String,
    pub(crate) nonce: Option<String>,
}

/// Why an authorization request is refused.
enum Refused {
    /// The client or redirect URI cannot be trusted: said on a page, never redirected to.
    Here(String),
    /// Sent back to the app's redirect URI (RFC 6749 §4.1.2.1).
    Back { redirect_uri: String, state: Option<String>, error: &'static str, why: String },
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Here(why) => {
                (StatusCode::BAD_REQUEST, no_store(), Html(page::refused(&why))).into_response()
            }
            Self::Back { redirect_uri, state, error, why } => {
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.append_pair("error", error);
                q.append_pair("error_description", &why);
                if let Some(state) = &state {
                    q.append_pair("state", state);
                }
                redirect(&redirect_uri, &q.finish())
            }
        }
    }
}

fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// 302 to `uri` with `query` appended.
fn redirect(uri: &str, query: &str) -> Response {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let location = format!("{uri}{sep}{query}");
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::FOUND, no_store(), [(header::LOCATION, v)]).into_response(),
        Err(_) => Refused::Here("the redirect URI cannot be used".into()).into_response(),
    }
}

/// The server's root URL (`http(s)://host`) as the requester addressed it.
fn root(headers: &HeaderMap) -> String {
    let base = crate::fhir::base_url(headers);
    base.strip_suffix("/fhir").unwrap_or(&base).to_owned()
}

/// Checks an authorization request: first its client and redirect URI (refused here),
/// then the rest (refused back to the app).
fn check(g: &Gatekeeper, r: &AuthorizeRequest, headers: &HeaderMap) -> Result<Checked, Refused> {
    let clients = g.smart().clients();
    let Some(client_id) = r.client_id.as_deref().filter(|c| clients.knows(c)) else {
        return Err(Refused::Here(
            "this app (client_id) is not registered with this provider's gatekeeper".into(),
        ));
    };
    let Some(redirect_uri) = r.redirect_uri.as_deref().filter(|u| clients.allows(client_id, u))
    else {
        return Err(Refused::Here(
            "the redirect_uri is not one registered for this app: nothing is sent back to it"
                .into(),
        ));
    };
    let back = |error, why: &str| Refused::Back {
        redirect_uri: redirect_uri.to_owned(),
        state: r.state.clone(),
        error,
        why: why.to_owned(),
    };
    match r.response_type.as_deref() {
        Some("code") => {}
        None => return Err(back("invalid_request", "response_type is missing")),
        Some(_) => {
            return Err(back("unsupported_response_type", "only response_type=code is served"));
        }
    }
    let Some(state) = r.state.as_deref().filter(|s| !s.is_empty()) else {
        return Err(back("invalid_request", "state is missing"));
    };
    let Some(challenge) = r.code_challenge.as_deref() else {
        return Err(back("invalid_request", "code_challenge is missing: PKCE (S256) is required"));
    };
    if r.code_challenge_method.as_deref() != Some("S256") {
        return Err(back("invalid_request", "code_challenge_method must be S256"));
    }
    if !pkce::is_challenge(challenge) {
        return Err(back(
            "invalid_request",
            "code_challenge is not a base64url SHA-256 (43 characters)",
        ));
    }
    let base = crate::fhir::base_url(headers);
    if r.aud.as_deref().map(|a| a.trim_end_matches('/')) != Some(base.as_str()) {
        return Err(back("invalid_request", "aud must be this server's FHIR base URL"));
    }
    if r.nonce.as_deref().is_some_and(|n| {
        n.is_empty() || n.len() > 512 || n.bytes().any(|b| !(b' '..=b'~').contains(&b))
    }) {
        return Err(back("invalid_request", "nonce must be 1 to 512 printable ASCII characters"));
    }
    let scope = r.scope.clone().unwrap_or_default();
    let requested = Requested::parse(&scope);
    if requested.clinical.is_empty() {
        return Err(back(
            "invalid_scope",
            "no clinical scope this server grants was asked for (e.g. patient/Observation.rs)",
        ));
    }
    Ok(Checked {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state: state.to_owned(),
        code_challenge: challenge.to_owned(),
        requested,
        scope,
        nonce: r.nonce.clone(),
    })
}

/// The scopes this server grants, for discovery.
fn scopes_supported() -> Vec<String> {
    let mut scopes = vec![
        "openid".to_owned(),
        "fhirUser".to_owned(),
        "launch/patient".to_owned(),
        "offline_access".to_owned(),
        "online_access".to_owned(),
        "patient/*.rs".to_owned(),
        "user/*.rs".to_owned(),
        "user/*.cruds".to_owned(),
    ];
    for ty in medrec_store::fhir::ResourceType::ALL {
        scopes.push(format!("patient/{ty}.rs"));
        scopes.push(format!("user/{ty}.rs"));
    }
    scopes
}

/// `GET /fhir/.well-known/smart-configuration` (public).
pub(crate) async fn configuration(headers: HeaderMap) -> Response {
    let root = root(&headers);
    let scopes = scopes_supported();
    let body = json!({
        "issuer": crate::fhir::base_url(&headers),
        "jwks_uri": format!("{root}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "authorization_endpoint": format!("{root}/authorize"),
        "token_endpoint": format!("{root}/token"),
        "revocation_endpoint": format!("{root}/revoke"),
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes,
        "capabilities": [
            "launch-standalone",
            "client-public",
            "context-standalone-patient",
            "permission-v1",
            "permission-v2",
            "permission-patient",
            "permission-user",
            "permission-offline",
            "permission-online",
            "sso-openid-connect"
        ],
    });
    ([(header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"))], Json(body))
        .into_response()
}

/// `GET /fhir/.well-known/openid-configuration` (public; OpenID Connect Discovery 1.0
/// §4: the issuer is the FHIR base).
pub(crate) async fn openid_configuration(headers: HeaderMap) -> Response {
    let root = root(&headers);
    let body = json!({
        "issuer": crate::fhir::base_url(&headers),
        "authorization_endpoint": format!("{root}/authorize"),
        "token_endpoint": format!("{root}/token"),
        "revocation_endpoint": format!("{root}/revoke"),
        "jwks_uri": format!("{root}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes_supported(),
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
    });
    ([(header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"))], Json(body))
        .into_response()
}

/// `GET /.well-known/jwks.json` (public): the key that signs id tokens.
pub(crate) async fn jwks(State(g): State<Gatekeeper>) -> Response {
    match g.smart().id_key() {
        Some(key) => {
            ([(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"))], Json(key.jwks()))
                .into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"keys": []}))).into_response(),
    }
}

/// The parameters of a query string or form, refusing a parameter sent twice.
fn params(text: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(text) {
        if out.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            let k: String = k.chars().take(64).collect();
            return Err(format!("{k} was sent more than once"));
        }
    }
    Ok(out)
}

fn authorize_request(p: &HashMap<String, String>) -> AuthorizeRequest {
    let get = |k: &str| p.get(k).cloned();
    AuthorizeRequest {
        response_type: get("response_type"),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        scope: get("scope"),
        state: get("state"),
        aud: get("aud"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        nonce: get("nonce"),
    }
}

/// `GET /authorize`: the login and consent page, or the refusal.
pub(crate) async fn authorize_page(
    State(g): State<Gatekeeper>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = match params(raw.as_deref().unwrap_or("").as_bytes()) {
        Ok(p) => p,
        Err(why) => return Refused::Here(why).into_response(),
    };
    let request = authorize_request(&p);
    let checked = match check(&g, &request, &headers) {
        Ok(c) => c,
        Err(refused) => return refused.into_response(),
    };
    let html = page::consent(&page::Consent {
        request: &request,
        request_id: &request.request_id(),
        requested: &checked.requested,
        scope: &checked.scope,
        client_id: &checked.client_id,
        redirect_uri: &checked.redirect_uri,
    });
    (
        StatusCode::OK,
        no_store(),
        [
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::CONTENT_SECURITY_POLICY,
                {
                    // The answer to the form redirects to the app: browsers check
                    // form-action against redirects too, so the app's origin is allowed.
                    let origin = checked.redirect_uri.split_once("://").map_or_else(
                        String::new,
                        |(scheme, rest)| format!("{scheme}://{}", rest.split(['/', '?']).next().unwrap_or(rest)),
                    );
                    HeaderValue::from_str(&format!(
                        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self' {origin}; frame-ancestors 'none'"
                    ))
                    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
                },
            ),
        ],
        Html(html),
    )
        .into_response()
}

/// `GET /authorize/message?address=0x…&request_id=smart-…`: the EIP-4361 message the
/// page has the wallet sign, with a fresh nonce (the address written as EIP-55 wants).
pub(crate) async fn authorize_message(
    State(g): State<Gatekeeper>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = params(raw.as_deref().unwrap_or("").as_bytes()).unwrap_or_default();
    let address = p.get("address").and_then(|a| a.parse::<Address>().ok());
    let request_id = p.get("request_id").filter(|r| {
        r.len() == 38 && r.starts_with("smart-") && r[6..].bytes().all(|b| b.is_ascii_hexdigit())
    });
    let (Some(address), Some(request_id)) = (address, request_id) else {
        return (StatusCode::BAD_REQUEST, "send address=0x… and the page's request_id")
            .into_response();
    };
    let auth = g.auth();
    let now = auth.clock().now();
    let nonce = match auth.siwe().issue_nonce(now) {
        Ok(n) => n,
        Err(e) => return (e.status(), e.to_string()).into_response(),
    };
    let issued = time::OffsetDateTime::from_unix_timestamp(i64::try_from(now).unwrap_or(0))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    let text = format!(
        "{domain} wants you to sign in with your Ethereum account:\n{address}\n\n\
         Let the app you are authorizing read the records you share at this provider.\n\n\
         URI: {root}/authorize\nVersion: 1\nChain ID: {chain}\nNonce: {nonce}\nIssued At: {issued}\n\
         Request ID: {request_id}",
        domain = auth.siwe().config().domain,
        address = address.to_checksum(None),
        root = root(&headers),
        chain = auth.siwe().config().chain_id,
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], no_store(), text).into_response()
}

/// `POST /authorize` (form): the request's parameters again, and the person's answer:
/// `message` and `signature` (EIP-4361 and `personal_sign`), or `deny`. Optionally
/// `patient`, which of the person's patient records to put in context.
pub(crate) async fn authorize(
    State(g): State<Gatekeeper>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match params(&body) {
        Ok(p) => p,
        Err(why) => return Refused::Here(why).into_response(),
    };
    let request = authorize_request(&p);
    let checked = match check(&g, &request, &headers) {
        Ok(c) => c,
        Err(refused) => return refused.into_response(),
    };
    let back = |error, why: String| {
        Refused::Back {
            redirect_uri: checked.redirect_uri.clone(),
            state: Some(checked.state.clone()),
            error,
            why,
        }
        .into_response()
    };
    if p.contains_key("deny") {
        return back("access_denied", "the person declined".into());
    }
    let (Some(message), Some(signature)) = (p.get("message"), p.get("signature")) else {
        return back("invalid_request", "the signed sign-in message is missing".into());
    };
    // A browser sends a form's line breaks as CRLF (HTML form encoding); the message
    // signed was the one /authorize/message wrote, with LF.
    let message = &message.replace("\r\n", "\n");
    let auth = g.auth();
    let now = auth.clock().now();
    let address =
        match auth
            .siwe()
            .verify_for(message, signature, now, &request.request_id(), |a| g.is_known(a))
        {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = e.code(), "SMART sign-in refused");
                return back("access_denied", e.to_string());
            }
        };
    let grant = match decide(&g, address, &checked, p.get("patient").map(String::as_str)) {
        Ok(grant) => grant,
        Err((error, why)) => return back(error, why.into()),
    };
    match g.smart().issue_code(&checked, address, Arc::new(grant), now) {
        Ok(code) => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("code", &code);
            q.append_pair("state", &checked.state);
            redirect(&checked.redirect_uri, &q.finish())
        }
        Err(e) => back("temporarily_unavailable", e.to_string()),
    }
}

/// The grant of an authorization: what was asked, cut to what the chain lets `address`
/// see now. Reads only for anyone but the provider; a type is granted only when some
/// grant of the chain reaches it; `patient/` scopes only with a patient in context (the
/// one asked for, else the first of the person's patient records here, in id order).
fn decide(
    g: &Gatekeeper,
    address: Address,
    checked: &Checked,
    patient: Option<&str>,
) -> Result<Grant, (&'static str, &'static str)> {
    let denied = ("access_denied", "you may not read records here: nothing is shared with you");
    let provider = g.is_provider(address);
    let scope = g.scope(address).map_err(|_| denied)?;
    let candidates: &[Candidate] = match scope.reach() {
        Reach::Provider => &[],
        Reach::Limited(c) => c,
    };
    let mut patients: Vec<&ResourceId> = candidates.iter().map(Candidate::patient).collect();
    patients.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    patients.dedup();
    let requested = &checked.requested;
    let context: Option<ResourceId> = if requested.wants_patient() && !provider {
        patient
            .and_then(|p| patients.iter().find(|q| q.as_str() == p))
            .or_else(|| patients.first())
            .map(|p| (*p).clone())
    } else {
        None
    };
    let reaches = |c: &Clinical, of: Option<&ResourceId>| {
        candidates
            .iter()
            .filter(|k| of.is_none_or(|p| k.patient() == p))
            .any(|k| c.resource.is_none_or(|t| k.applies_to(t)))
    };
    let mut clinical: Vec<Clinical> = Vec::new();
    for c in &requested.clinical {
        let mut c = *c;
        if !provider {
            c.interactions &= READS;
        }
        let keep = c.interactions != 0
            && match (c.context, provider) {
                (Context::User, true) => true,
                (Context::Patient, true) => false,
                (Context::User, false) => reaches(&c, None),
                (Context::Patient, false) => context.as_ref().is_some_and(|p| reaches(&c, Some(p))),
            };
        if keep && !clinical.contains(&c) {
            clinical.push(c);
        }
    }
    if clinical.is_empty() {
        return Err((
            "invalid_scope",
            "none of the scopes asked for is within what is shared with you here",
        ));
    }
    let refresh = if requested.offline {
        Some("offline_access")
    } else if requested.online {
        Some("online_access")
    } else {
        None
    };
    // fhirUser: the person's own Patient here (the one in context when it is theirs),
    // never a viewer's or the provider's (see `oidc`).
    let fhir_user = if requested.openid && requested.fhir_user {
        let own = |p: &ResourceId| {
            candidates
                .iter()
                .any(|k| matches!(k, Candidate::Compartment { patient, .. } if patient == p))
        };
        context
            .as_ref()
            .filter(|p| own(p))
            .cloned()
            .or_else(|| patients.iter().find(|p| own(p)).map(|p| (*p).clone()))
    } else {
        None
    };
    Ok(Grant {
        clinical,
        patient: context,
        refresh,
        client_id: checked.client_id.clone(),
        openid: requested.openid,
        fhir_user,
        family: Arc::default(),
    })
}

/// An OAuth error answer of the token and revocation endpoints (RFC 6749 §5.2).
fn oauth_error(error: &'static str, why: &str) -> Response {
    let status =
        if error == "invalid_client" { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
    (status, no_store(), Json(json!({"error": error, "error_description": why}))).into_response()
}

/// Whether `address` may still read here: known to the chain, and something is shared.
fn has_access(g: &Gatekeeper, address: Address, grant: &Grant) -> bool {
    if !g.is_known(address) {
        return false;
    }
    match g.scope(address) {
        Ok(scope) => match scope.reach() {
            Reach::Provider => true,
            Reach::Limited(c) => {
                grant.patient.as_ref().is_none_or(|p| c.iter().any(|k| k.patient() == p))
            }
        },
        Err(_) => false,
    }
}

/// `POST /token` (form): `authorization_code` with PKCE, or `refresh_token`.
pub(crate) async fn token(
    State(g): State<Gatekeeper>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = match params(&body) {
        Ok(p) => p,
        Err(why) => return oauth_error("invalid_request", &why),
    };
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(grant_type) = get("grant_type") else {
        return oauth_error("invalid_request", "grant_type is missing");
    };
    // A public client sends its client_id with a code (RFC 6749 §4.1.3); a refresh may
    // omit it (§6, SMART App Launch's public apps): the refresh token names its client.
    let refresh_token = (grant_type == "refresh_token").then(|| get("refresh_token")).flatten();
    let Some(client_id) = get("client_id").map(str::to_owned).or_else(|| {
        refresh_token.and_then(|t| g.smart().client_of_refresh(t, g.auth().clock().now()))
    }) else {
        return oauth_error("invalid_request", "client_id is missing (public clients send it)");
    };
    let client_id = client_id.as_str();
    if !g.smart().clients().knows(client_id) {
        return oauth_error("invalid_client", "this client is not registered here");
    }
    let now = g.auth().clock().now();
    let (address, grant, refresh, nonce) = match grant_type {
        "authorization_code" => {
            let (Some(code), Some(redirect_uri)) = (get("code"), get("redirect_uri")) else {
                return oauth_error("invalid_request", "code and redirect_uri are required");
            };
            let Some(verifier) = get("code_verifier") else {
                return oauth_error("invalid_request", "code_verifier is missing (PKCE)");
            };
            let (address, grant, nonce) = match g.smart().redeem_code(
                code,
                client_id,
                redirect_uri,
                verifier,
                now,
            ) {
                Ok(found) => found,
                Err(refusal) => {
                    if refusal == CodeRefusal::Reused {
                        tracing::info!(target: "medrec::gatekeeper", "a SMART code was presented twice: its tokens are revoked");
                    }
                    return oauth_error("invalid_grant", refusal.description());
                }
            };
            (address, grant, None, nonce)
        }
        "refresh_token" => {
            let Some(token) = get("refresh_token") else {
                return oauth_error("invalid_request", "refresh_token is missing");
            };
            let Some((address, grant)) = g.smart().refresh(token, client_id, now) else {
                return oauth_error(
                    "invalid_grant",
                    "the refresh token is unknown, expired, revoked or another client's",
                );
            };
            let grant = match get("scope") {
                None => grant,
                Some(scope) => match narrower(&grant, scope) {
                    Some(g) => Arc::new(g),
                    None => {
                        return oauth_error(
                            "invalid_scope",
                            "a refresh may only ask for scopes already granted",
                        );
                    }
                },
            };
            (address, grant, Some(token.to_owned()), None)
        }
        _ => {
            return oauth_error(
                "unsupported_grant_type",
                "grant_type is authorization_code or refresh_token",
            );
        }
    };
    if !has_access(&g, address, &grant) {
        grant.family.revoke();
        return oauth_error(
            "invalid_grant",
            "the person no longer has access to records here: the authorization has ended",
        );
    }
    let lifetime = g.auth().siwe().config().token_lifetime.as_secs();
    let session = Session { address, grant: Some(Arc::clone(&grant)) };
    let token = match g.auth().siwe().tokens().issue_session(session, now + lifetime, now) {
        Ok(t) => t,
        Err(e) => return oauth_error("temporarily_unavailable", &e.to_string()),
    };
    let refresh = match (refresh, grant.refresh) {
        (Some(existing), _) => Some(existing),
        (None, Some(kind)) => {
            let life = if kind == "offline_access" { OFFLINE_LIFETIME } else { ONLINE_LIFETIME };
            match g.smart().issue_refresh(address, Arc::clone(&grant), now + life.as_secs(), now) {
                Ok(r) => Some(r),
                Err(e) => return oauth_error("temporarily_unavailable", &e.to_string()),
            }
        }
        (None, None) => None,
    };
    let mut body = json!({
        "access_token": token.access_token(),
        "token_type": "Bearer",
        "expires_in": token.expires_in(),
        "scope": grant.scope_text(),
    });
    let obj = body.as_object_mut().expect("an object");
    if let Some(patient) = &grant.patient {
        obj.insert("patient".into(), Value::from(patient.as_str()));
        obj.insert("need_patient_banner".into(), Value::from(true));
    }
    if let Some(r) = refresh {
        obj.insert("refresh_token".into(), Value::from(r));
    }
    if grant.openid {
        let Some(key) = g.smart().id_key() else {
            return oauth_error("temporarily_unavailable", "no key to sign the id token");
        };
        let claims =
            id_claims(&crate::fhir::base_url(&headers), address, &grant, nonce, now, lifetime);
        obj.insert("id_token".into(), Value::from(key.sign(&claims)));
    }
    (StatusCode::OK, no_store(), Json(body)).into_response()
}

/// The claims of an id token for `address` under `grant` (see [`super::oidc`]).
fn id_claims(
    base: &str,
    address: Address,
    grant: &Grant,
    nonce: Option<String>,
    now: u64,
    lifetime: u64,
) -> Value {
    let mut claims = json!({
        "iss": base,
        "sub": address.to_checksum(None),
        "aud": grant.client_id,
        "iat": now,
        "exp": now + lifetime,
    });
    let obj = claims.as_object_mut().expect("an object");
    if let Some(nonce) = nonce {
        obj.insert("nonce".into(), Value::from(nonce));
    }
    if let Some(patient) = &grant.fhir_user {
        obj.insert("fhirUser".into(), Value::from(format!("{base}/Patient/{}", patient.as_str())));
    }
    claims
}

/// The grant cut to the clinical scopes of `scope` (each one already granted); `None`
/// when `scope` asks for one not granted.
fn narrower(grant: &Grant, scope: &str) -> Option<Grant> {
    let asked = Requested::parse(scope);
    if asked.clinical.iter().any(|c| !grant.clinical.contains(c)) || asked.clinical.is_empty() {
        return None;
    }
    Some(Grant { clinical: asked.clinical, ..grant.clone() })
}

/// `POST /revoke` (form, RFC 7009): `token` (an access or refresh token). Always 200
/// once the request is well formed, whether or not the token was known; revoking a
/// refresh token revokes every access token of its authorization.
pub(crate) async fn revoke(State(g): State<Gatekeeper>, body: Bytes) -> Response {
    let p = match params(&body) {
        Ok(p) => p,
        Err(why) => return oauth_error("invalid_request", &why),
    };
    let Some(token) = p.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error("invalid_request", "token is missing");
    };
    if !g.smart().revoke_refresh(token) {
        g.auth().siwe().tokens().revoke(token);
    }
    (StatusCode::OK, no_store()).into_response()
}
