//! Access log: who read what and when, allowed or refused, each entry checked against
//! its anchor on chain.

use super::{Chrome, context};
use crate::{
    error::{PageResult, render},
    state::AppState,
    views::{access, records::pointer_names},
};
use askama::Template;
use axum::extract::State;

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    chrome: Chrome,
    rows: Vec<access::Row>,
    summary: String,
    failure: Option<String>,
    /// Always `None` here (one page holds the patient's entries).
    next: Option<u64>,
}

/// `GET /access`: always read afresh from every provider.
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    let cx = context(&state, "access", "Access log").await?;
    let pointers = pointer_names(&state.held.read().await.records);
    let me = cx.session.address();
    let (rows, summary, failure) = match state.access_log(&cx.session, true).await {
        Ok(entries) => {
            (access::rows(&entries, me, &cx.names, &pointers), access::summary(&entries), None)
        }
        Err(e) => (Vec::new(), String::new(), Some(e)),
    };
    render(&AccessPage { chrome: cx.chrome, rows, summary, failure, next: None })
}
