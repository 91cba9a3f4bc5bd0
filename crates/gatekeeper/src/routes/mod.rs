//! The gatekeeper's HTTP routes, assembled in one place ([`app`]).
//!
//! | Route | Who | Module |
//! |---|---|---|
//! | `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /fhir/metadata` | anyone | [`meta`] |
//! | `GET /auth/nonce`, `POST /auth/siwe` | anyone; a token only for the provider and addresses the chain names (rate-limited per address) | [`crate::auth`] |
//! | `GET /research/policy`, `GET /research/queries/{commitment}` | anyone | [`crate::research`] |
//! | `GET /fhir/.well-known/smart-configuration`, `GET /fhir/.well-known/openid-configuration`, `GET /.well-known/jwks.json`, `GET`/`POST /authorize`, `GET /authorize/message`, `POST /token`, `POST /revoke` | anyone (SMART App Launch; rate-limited per address like sign-in) | [`crate::smart`] |
//! | `GET /pointers/{relationship}/{pointer}` | patient, granted viewer | [`pointer`] |
//! | `/fhir/…` | scoped (see [`crate::access`]) | [`crate::fhir`] |
//! | `GET /fhir/{Consent,AuditEvent,Provenance}[/{id}]` | provider; a patient, their own; a viewer, its grants and granted pointers (no log) | [`crate::fhir::state`] |
//! | `GET /audit` | a patient, their entries | [`log`] |
//! | `PUT /enrollments/{relationship}` | provider | [`enroll`] |
//! | `GET /offers` | a patient's key | [`enroll`] |
//! | `PUT /research/queries`, `POST /research/redeem/{relationship}/{seq}` | provider; bounty owner | [`crate::research`] |
//!
//! The data routes (all but the public ones) run inside two layers: the audit
//! ([`crate::pipeline::audit`], outermost, so it sees the final response) and the
//! authentication ([`crate::pipeline::authenticate`]).

pub(crate) mod enroll;
pub(crate) mod log;
pub(crate) mod meta;
pub(crate) mod pointer;

use crate::server::Gatekeeper;
use axum::{
    Router,
    middleware::{from_fn, from_fn_with_state},
    routing::{get, post, put},
};

/// Every route of the gatekeeper, over `g`.
pub(crate) fn app(g: &Gatekeeper) -> Router {
    let data = Router::new()
        .route("/pointers/{relationship}/{pointer}", get(pointer::get))
        .route("/audit", get(log::get))
        .route("/enrollments/{relationship}", put(enroll::put))
        .route("/offers", get(enroll::offers))
        .route("/research/queries", put(crate::research::publish))
        .route("/research/redeem/{relationship}/{seq}", post(crate::research::redeem))
        .merge(crate::fhir::routes())
        .route_layer(from_fn_with_state(g.clone(), crate::pipeline::authenticate))
        .route_layer(from_fn_with_state(g.clone(), crate::pipeline::audit));
    let public = Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/metrics", get(meta::metrics))
        .route(
            "/fhir/metadata",
            get(meta::metadata).route_layer(from_fn(crate::fhir::format::negotiate)),
        )
        .route(
            "/fhir/metadata/",
            get(meta::metadata).route_layer(from_fn(crate::fhir::format::negotiate)),
        )
        .route("/fhir/.well-known/smart-configuration", get(crate::smart::routes::configuration))
        .route(
            "/fhir/.well-known/openid-configuration",
            get(crate::smart::routes::openid_configuration),
        )
        .route("/.well-known/jwks.json", get(crate::smart::routes::jwks))
        .route("/research/policy", get(crate::research::policy))
        .route("/research/queries/{commitment}", get(crate::research::query_text));
    let members = g.clone();
    let sign_in = crate::auth::routes::router_for(
        g.auth().clone(),
        std::sync::Arc::new(move |address| members.is_known(address)),
    );
    let smart = Router::new()
        .route(
            "/authorize",
            get(crate::smart::routes::authorize_page).post(crate::smart::routes::authorize),
        )
        .route("/authorize/message", get(crate::smart::routes::authorize_message))
        .route("/token", post(crate::smart::routes::token))
        .route("/revoke", post(crate::smart::routes::revoke))
        .layer(axum::extract::DefaultBodyLimit::max(crate::smart::routes::FORM_LIMIT))
        .route_layer(from_fn_with_state(g.auth().clone(), crate::auth::routes::limit_sign_in));
    data.merge(public).merge(smart).with_state(g.clone()).merge(sign_in)
}
