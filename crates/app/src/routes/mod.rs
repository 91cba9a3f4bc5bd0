//! One module per page. Each handler asks the client library, shapes the answer with
//! `views`, and renders a template; each action is a POST that redirects back with a
//! sentence saying what happened.

pub(crate) mod access;
pub(crate) mod account;
pub(crate) mod emergency;
pub(crate) mod events;
pub(crate) mod home;
pub(crate) mod inbox;
pub(crate) mod people;
pub(crate) mod provider;
pub(crate) mod records;
pub(crate) mod research;
pub(crate) mod researcher;
pub(crate) mod share;
pub(crate) mod unlock;
pub(crate) mod viewer;

use crate::{
    error::{PageError, page},
    state::{AppState, Flash},
    views::Names,
};
use axum::{http::StatusCode, response::Response};
use medrec_chain::inbox::Summary;
use medrec_client::patient::PatientSession;
use medrec_primitives::{RelationshipId, Status};
use std::collections::BTreeMap;

/// What every page shows around its content: the navigation, who is signed in, a
/// message left by the last action, how many answers are waiting.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    /// The page (`home`, `inbox`, `records`, `share`, `access`, `research`).
    pub(crate) active: &'static str,
    /// The page's title.
    pub(crate) title: &'static str,
    /// The patient's address.
    pub(crate) address: String,
    /// The message left for this page.
    pub(crate) flash: Option<Flash>,
    /// Relationships waiting for an answer.
    pub(crate) waiting: usize,
    /// Whose app it is (`patient`, `viewer`): which menu to show.
    pub(crate) role: &'static str,
    /// Whether the app can be locked (not when a demo's development key opened it).
    pub(crate) lockable: bool,
    /// A viewer's account in an emergency group: the Emergency page is in the menu.
    pub(crate) emergency: bool,
    /// The banner of a custodian's app: for whom, until when, with what rights.
    pub(crate) acting: Option<String>,
    /// A guardian recovery of the account is waiting: the alert on every page.
    pub(crate) recovery: Option<String>,
}

impl Chrome {
    /// The frame of a page of `state`'s app for `address`.
    pub(crate) fn new(
        state: &AppState,
        active: &'static str,
        title: &'static str,
        address: String,
    ) -> Self {
        Self {
            active,
            title,
            address,
            flash: state.take_flash(),
            waiting: 0,
            role: state.role.as_str(),
            lockable: !state.is_demo(),
            emergency: false,
            acting: state.acting().map(|a| a.banner()),
            recovery: None,
        }
    }
}

/// What a page of the unlocked app starts from.
pub(crate) struct Context {
    pub(crate) session: PatientSession,
    pub(crate) summaries: BTreeMap<RelationshipId, Summary>,
    pub(crate) names: Names,
    pub(crate) chrome: Chrome,
}

/// The unlocked session, the patient's relationships and how providers are named.
pub(crate) async fn context(
    state: &AppState,
    active: &'static str,
    title: &'static str,
) -> Result<Context, PageError> {
    let session = state.session().await.ok_or(PageError::Locked)?;
    let summaries = session.relationships().await.map_err(|e| {
        PageError::Failed(format!(
            "Your relationships cannot be read from the chain right now ({}). Check that the chain is running, then reload.",
            crate::error::sentence(&e).trim_end_matches('.')
        ))
    })?;
    let names = state.names_for(&session, &summaries).await;
    let waiting = summaries
        .values()
        .filter(|s| matches!(s.status, Some(Status::New | Status::UpdatePending)))
        .count()
        + state.offers_waiting().await;
    let recovery = match session.chain().recovery(session.address()).await {
        Ok(w) if !w.new_key.is_zero() => Some(recovery_alert(&w)),
        _ => None,
    };
    let chrome = Chrome {
        waiting,
        recovery,
        ..Chrome::new(state, active, title, session.address().to_string())
    };
    Ok(Context { session, summaries, names, chrome })
}

/// The alert of a waiting guardian recovery.
pub(crate) fn recovery_alert(w: &medrec_client::patient::keys::Waiting) -> String {
    format!(
        "Security alert: your guardians have started moving your account to another key ({}). It completes on {} unless you veto it. If you did not ask for this, veto it now.",
        w.new_key,
        crate::views::date(w.ready_at)
    )
}

/// Where a form may send the patient back to.
pub(crate) fn back(to: Option<&str>, default: &'static str) -> &'static str {
    const PAGES: [&str; 7] =
        ["/", "/inbox", "/records", "/share", "/access", "/research", "/people"];
    to.and_then(|t| PAGES.into_iter().find(|p| *p == t)).unwrap_or(default)
}

/// Any other address.
pub(crate) async fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, "There is no such page in the app. Use the menu to find your way.")
}
