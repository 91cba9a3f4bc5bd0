//! The Inbox: everything new, live, and the answers (Accept / Reject / Delete).

use super::{Chrome, back, context};
use crate::{
    error::{PageResult, render, sentence},
    state::AppState,
    views::{
        Names,
        care::{self, OpeningRow},
        inbox, short_id,
    },
};
use askama::Template;
use axum::{
    Form,
    extract::State,
    response::{IntoResponse, Redirect},
};
use medrec_client::{
    care::groups,
    patient::{PatientSession, Target},
    timeline::unix_now,
};
use medrec_primitives::Status;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    chrome: Chrome,
    waiting: Vec<inbox::Relationship>,
    others: Vec<inbox::Relationship>,
    news: Vec<inbox::Item>,
    accesses: Vec<inbox::Item>,
    access_note: Option<String>,
    /// Break-glass openings of the emergency set, newest first.
    openings: Vec<OpeningRow>,
    opening_note: Option<String>,
    unexpected: &'static str,
}

/// `GET /inbox`.
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    let cx = context(&state, "inbox", "Inbox").await?;
    let me = cx.session.address();
    let notices = cx.session.chain().notices(me, 0, None).await.unwrap_or_default();
    let news = inbox::items(&notices, &cx.summaries, &cx.names, unix_now(), 3 * 86_400);
    let (waiting, others) =
        inbox::relationships(&cx.summaries, &cx.names).into_iter().partition(|r| r.waiting());
    let (accesses, access_note) = match state.access_log(&cx.session, false).await {
        Ok(entries) => (inbox::accesses(&entries, me, &cx.names), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let (openings, opening_note) = match openings(&cx.session).await {
        Ok(rows) => (rows, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    render(&InboxPage {
        chrome: cx.chrome,
        waiting,
        others,
        news,
        accesses,
        access_note,
        openings,
        opening_note,
        unexpected: care::UNEXPECTED,
    })
}

/// The break-glass openings of the patient's emergency set, in words, or why they
/// cannot be read.
async fn openings(session: &PatientSession) -> Result<Vec<OpeningRow>, String> {
    let why = |e: &medrec_client::Error| {
        format!(
            "Emergency openings of your records cannot be read from the chain right now ({}); reload to see them.",
            sentence(e).trim_end_matches('.')
        )
    };
    let list = session.openings(0).await.map_err(|e| why(&e))?;
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let groups = groups(session.chain()).await.map_err(|e| why(&e))?;
    Ok(care::openings(&list, &groups, unix_now()))
}

/// An answer to a relationship.
#[derive(Deserialize)]
pub(crate) struct AnswerForm {
    relationship: String,
    answer: String,
    back: Option<String>,
}

/// `POST /inbox/answer`: accept, reject or delete.
pub(crate) async fn answer(
    State(state): State<AppState>,
    Form(form): Form<AnswerForm>,
) -> PageResult {
    let to = back(form.back.as_deref(), "/inbox");
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    let status = match form.answer.as_str() {
        "accept" => Status::Accepted,
        "reject" => Status::Rejected,
        "delete" => Status::Deleted,
        _ => {
            state.tell(true, "Choose Accept, Reject or Delete.");
            return Ok(Redirect::to(to).into_response());
        }
    };
    match session.answer(&Target::Id(form.relationship), status).await {
        Ok((chosen, receipt)) => {
            let names: Names = state.names.read().await.clone();
            let provider = chosen
                .summary
                .provider
                .map_or_else(|| "the provider".to_owned(), |p| names.provider(p));
            let block = receipt.block_number.map(|b| format!(" (block {b})")).unwrap_or_default();
            let mut text = format!(
                "Relationship {} with {provider} is now {status}{block}.",
                short_id(chosen.id.0)
            );
            if status == Status::Accepted {
                text.push_str(" Its records are being fetched and checked against the chain.");
                state.spawn_refresh();
            }
            state.tell(false, text);
        }
        Err(e) => state.tell(true, sentence(&e)),
    }
    Ok(Redirect::to(to).into_response())
}
