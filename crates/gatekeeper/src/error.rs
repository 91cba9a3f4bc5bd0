//! The gatekeeper's one error type: every refusal or failure a handler or a layer can
//! answer with carries its HTTP status, its FHIR OperationOutcome and the reason code
//! the access log records, and is turned into a response in one place
//! ([`ApiError::into_response`]).
//!
//! The audit layer never decodes a status back into a reason: the response of an
//! [`ApiError`] carries its [`Refused`] reason as an extension.

use crate::{auth::AuthError, limits::Throttled};
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use medrec_chain::consent::DenyReason;
use medrec_store::StoreError;
use serde::Serialize;
use std::borrow::Cow;

/// The code system of the machine-readable authentication error codes in an
/// OperationOutcome's `issue.details.coding`.
pub const AUTH_ERROR_SYSTEM: &str = "urn:medrec:auth-error";

/// FHIR's media type, sent with every FHIR body.
pub(crate) const FHIR_JSON: HeaderValue = HeaderValue::from_static("application/fhir+json");

/// Why a request was not served.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The credentials were missing or refused.
    Auth(AuthError),
    /// The requester (or the source address, for failed authentications) is over a
    /// rate limit.
    Throttled(Throttled),
    /// The request body could not be read.
    Body { status: StatusCode, why: String },
    /// The consent index is not fresh enough to decide.
    NotReady,
    /// The consent index refused a pointer.
    Denied(DenyReason),
    /// The requester may not do this; `reason` is the log's code.
    Forbidden { why: Cow<'static, str>, reason: &'static str },
    /// Nothing the requester may see is there (the same answer as for a missing thing).
    NotFound { why: Cow<'static, str>, reason: &'static str },
    /// This gatekeeper does not offer what was asked (no access log, no research desk).
    NotSupported(&'static str),
    /// The client accepts no format this server answers in (406).
    NotAcceptable(&'static str),
    /// The request is malformed.
    Invalid(String),
    /// The request conflicts with the current state; `issue` is the FHIR issue code.
    Conflict { why: String, issue: &'static str, reason: &'static str },
    /// A policy refuses the request (FHIR `business-rule`).
    Unprocessable { why: String, issue: &'static str, reason: &'static str },
    /// A search over several scopes matched too much.
    TooCostly { limit: usize },
    /// The records take no writes (a provider's own database, mapped read-only: the
    /// gatekeeper holds a reader and no writer).
    ReadOnly,
    /// A write to one of MedRec's read-only views (`Consent`, `AuditEvent`,
    /// `Provenance`), which the chain and the access log derive.
    ReadOnlyView,
    /// The record store failed (details logged here, not sent).
    Store(StoreError),
    /// Something this gatekeeper depends on (the chain node, the research ledger, the
    /// access log) cannot be used now; the cause is logged where it happened.
    Unavailable { why: &'static str, reason: &'static str },
    /// A failure that is not the requester's (logged where it happened).
    Internal(&'static str),
}

/// The reason a refused request's log entry carries (a response extension).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refused(pub(crate) &'static str);

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists { .. } => {
                Self::Conflict { why: e.to_string(), issue: "duplicate", reason: "conflict" }
            }
            StoreError::MissingId => Self::Invalid(e.to_string()),
            StoreError::Invalid(e) => Self::Invalid(e.to_string()),
            other => Self::Store(other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

impl From<Throttled> for ApiError {
    fn from(t: Throttled) -> Self {
        Self::Throttled(t)
    }
}

impl ApiError {
    /// A 403 with a fixed sentence.
    pub(crate) const fn forbidden(why: &'static str, reason: &'static str) -> Self {
        Self::Forbidden { why: Cow::Borrowed(why), reason }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Auth(e) => e.status(),
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Body { status, .. } => *status,
            Self::Denied(_) | Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } | Self::NotSupported(_) => StatusCode::NOT_FOUND,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::Invalid(_) | Self::TooCostly { .. } => StatusCode::BAD_REQUEST,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ReadOnly | Self::ReadOnlyView => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotReady | Self::Store(_) | Self::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OperationOutcome issue's code (FHIR's IssueType).
    pub(crate) fn issue_code(&self) -> &'static str {
        match self {
            Self::Auth(e) => match e.status() {
                StatusCode::BAD_REQUEST => "invalid",
                StatusCode::UNAUTHORIZED => "login",
                StatusCode::FORBIDDEN => "forbidden",
                StatusCode::PAYLOAD_TOO_LARGE => "too-long",
                StatusCode::SERVICE_UNAVAILABLE => "transient",
                _ => "exception",
            },
            Self::Throttled(_) => "throttled",
            Self::Body { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE => "too-long",
            Self::Body { .. } | Self::Invalid(_) => "invalid",
            Self::Denied(_) | Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } => "not-found",
            Self::NotSupported(_)
            | Self::NotAcceptable(_)
            | Self::ReadOnly
            | Self::ReadOnlyView => "not-supported",
            Self::Conflict { issue, .. } | Self::Unprocessable { issue, .. } => issue,
            Self::TooCostly { .. } => "too-costly",
            Self::NotReady | Self::Store(_) | Self::Unavailable { .. } => "transient",
            Self::Internal(_) => "exception",
        }
    }

    /// The sentence for the person at the other end (no internal detail, no patient
    /// data).
    pub(crate) fn message(&self) -> Cow<'static, str> {
        match self {
            Self::Auth(e) => e.to_string().into(),
            Self::Throttled(t) => t.to_string().into(),
            Self::Body { why, .. }
            | Self::Invalid(why)
            | Self::Conflict { why, .. }
            | Self::Unprocessable { why, .. } => why.clone().into(),
            Self::NotReady => "the gatekeeper is catching up with the chain and cannot decide requests yet; try again shortly".into(),
            Self::Denied(_) => {
                "you are not authorized to read this pointer: ask the patient for a grant".into()
            }
            Self::Forbidden { why, .. } | Self::NotFound { why, .. } => why.clone(),
            Self::NotSupported(why)
            | Self::NotAcceptable(why)
            | Self::Internal(why)
            | Self::Unavailable { why, .. } => {
                (*why).into()
            }
            Self::TooCostly { limit } => format!(
                "the search matches more than {limit} resources across your grants; narrow it"
            )
            .into(),
            Self::ReadOnly => "this gatekeeper serves the provider's own database read-only: change records in the provider's system".into(),
            Self::ReadOnlyView => "this type is a read-only view derived from the chain and the access log: it changes only with them".into(),
            Self::Store(err) => {
                tracing::error!(target: "medrec::gatekeeper", %err, "the record store failed");
                "the record database is unavailable; the error is logged, try again shortly".into()
            }
        }
    }

    /// The reason code the access log records for this refusal.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Auth(_) => "unauthenticated",
            Self::Throttled(_) => "throttled",
            Self::Body { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE => "too-large",
            Self::Body { .. } | Self::Invalid(_) | Self::TooCostly { .. } => "invalid-request",
            Self::NotReady => "not-ready",
            Self::Denied(reason) => deny_code(*reason),
            Self::Forbidden { reason, .. }
            | Self::NotFound { reason, .. }
            | Self::Conflict { reason, .. }
            | Self::Unprocessable { reason, .. }
            | Self::Unavailable { reason, .. } => reason,
            Self::NotSupported(_) => "not-supported",
            Self::NotAcceptable(_) => "not-acceptable",
            Self::ReadOnly | Self::ReadOnlyView => "read-only",
            Self::Store(_) => "unavailable",
            Self::Internal(_) => "failed",
        }
    }

    /// A machine-readable detail code, for authentication errors.
    fn details(&self) -> Option<&'static str> {
        match self {
            Self::Auth(e) => Some(e.code()),
            Self::Body { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE => {
                Some("body_too_large")
            }
            Self::Body { .. } => Some("malformed_body"),
            _ => None,
        }
    }
}

/// The log's code for a consent refusal.
pub(crate) const fn deny_code(reason: DenyReason) -> &'static str {
    match reason {
        DenyReason::UnknownRelationship => "unknown-relationship",
        DenyReason::NotAccepted => "not-accepted",
        DenyReason::UnknownPointer => "unknown-pointer",
        DenyReason::NoGrant => "no-grant",
        DenyReason::NotYetValid => "not-yet-valid",
        DenyReason::Expired => "expired",
    }
}

/// A FHIR OperationOutcome (the wire form of every error body).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OperationOutcome<'a> {
    resource_type: &'static str,
    issue: [Issue<'a>; 1],
}

#[derive(Debug, Serialize)]
struct Issue<'a> {
    severity: &'static str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    diagnostics: &'a str,
}

#[derive(Debug, Serialize)]
struct Details<'a> {
    coding: [Coding<'a>; 1],
}

#[derive(Debug, Serialize)]
struct Coding<'a> {
    system: &'static str,
    code: &'a str,
}

impl<'a> OperationOutcome<'a> {
    /// One error issue with `code` (FHIR IssueType) and a sentence.
    pub(crate) const fn error(code: &'a str, diagnostics: &'a str) -> Self {
        Self {
            resource_type: "OperationOutcome",
            issue: [Issue { severity: "error", code, details: None, diagnostics }],
        }
    }

    /// The same with a machine-readable detail code of [`AUTH_ERROR_SYSTEM`].
    const fn with_details(mut self, code: &'a str) -> Self {
        self.issue[0].details =
            Some(Details { coding: [Coding { system: AUTH_ERROR_SYSTEM, code }] });
        self
    }

    /// As a response with `status`.
    pub(crate) fn into_response_with(self, status: StatusCode) -> Response {
        let body = serde_json::to_vec(&self).expect("an OperationOutcome serialises");
        (status, [(header::CONTENT_TYPE, FHIR_JSON)], body).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        let outcome = OperationOutcome::error(self.issue_code(), &message);
        let outcome = match self.details() {
            Some(code) => outcome.with_details(code),
            None => outcome,
        };
        let mut response = outcome.into_response_with(status);
        let headers = response.headers_mut();
        if let Self::Auth(AuthError::InsufficientScope(_)) = &self {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"MedRec Gatekeeper\", error=\"insufficient_scope\"",
                ),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"MedRec Gatekeeper\""),
            );
        }
        if let Self::Throttled(t) = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(t.retry_after_secs()));
        }
        response.extensions_mut().insert(Refused(self.reason()));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_refusal_carries_its_status_outcome_and_log_reason() {
        let response = ApiError::Denied(DenyReason::Expired).into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.extensions().get::<Refused>().map(|r| r.0), Some("expired"));
        let v = body(response).await;
        assert_eq!(v["resourceType"], "OperationOutcome");
        assert_eq!(v["issue"][0]["code"], "forbidden");
        assert!(v["issue"][0].get("details").is_none());
    }

    #[tokio::test]
    async fn auth_errors_name_their_code_and_ask_for_credentials() {
        let response = ApiError::from(AuthError::MissingCredentials).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        let v = body(response).await;
        assert_eq!(v["issue"][0]["code"], "login");
        assert_eq!(v["issue"][0]["details"]["coding"][0]["system"], AUTH_ERROR_SYSTEM);
        assert_eq!(v["issue"][0]["details"]["coding"][0]["code"], "missing_credentials");
    }

    #[tokio::test]
    async fn store_failures_hide_their_detail() {
        let response = ApiError::from(StoreError::Database("secret detail".into())).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let v = body(response).await;
        assert!(!v.to_string().contains("secret detail"));
    }
}
