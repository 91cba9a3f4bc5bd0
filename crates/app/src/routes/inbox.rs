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
    /// Offers waiting at the providers' gatekeepers.
    offers: Vec<inbox::OfferRow>,
    /// Offers answered "Not now".
    aside: Vec<inbox::OfferRow>,
    /// Why the offers (or some gatekeepers' offers) could not be read.
    offer_notes: Vec<String>,
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

/// `GET /inbox` (the offers asked afresh: this is where the patient looks for them).
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    let offered = state.offers(&cx_session(&state).await?, true).await;
    let cx = context(&state, "inbox", "Inbox").await?;
    let me = cx.session.address();
    let (offers, aside, offer_notes) = match offered {
        Ok(found) => {
            state
                .names
                .write()
                .await
                .endpoints
                .extend(found.offers.iter().map(|o| (o.view.provider, o.endpoint.clone())));
            let names = state.names_for(&cx.session, &cx.summaries).await;
            let set_aside = state.set_aside.lock().map(|s| s.clone()).unwrap_or_default();
            let (offers, aside) = inbox::offers(&found.offers, &set_aside, &names);
            let notes = found
                .problems
                .iter()
                .map(|(p, why)| format!("{}: {why}.", names.provider(*p)))
                .collect();
            (offers, aside, notes)
        }
        Err(e) => (Vec::new(), Vec::new(), vec![e]),
    };
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
        offers,
        aside,
        offer_notes,
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

/// The unlocked session (before the page's context, so that the offers asked first
/// count in the menu).
async fn cx_session(state: &AppState) -> Result<PatientSession, crate::error::PageError> {
    state.session().await.ok_or(crate::error::PageError::Locked)
}

/// An answer to an offer.
#[derive(Deserialize)]
pub(crate) struct OfferForm {
    relationship: String,
    answer: String,
}

/// `POST /inbox/offer`: take the offer (the patient's key creates the relationship)
/// or set it aside.
pub(crate) async fn offer(
    State(state): State<AppState>,
    Form(form): Form<OfferForm>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    let outcome = async {
        if form.answer != "take" && form.answer != "later" {
            return Err("Choose Accept or Not now.".to_owned());
        }
        let found = state.offers(&session, true).await?;
        let id = medrec_client::chain::pick(
            found.offers.iter().map(|o| &o.view.relationship),
            &form.relationship,
        )
        .map_err(|_| "This offer is no longer waiting: it was taken, or the provider withdrew it.".to_owned())?;
        let offer = found
            .offers
            .iter()
            .find(|o| o.view.relationship == id)
            .ok_or_else(|| "This offer is no longer waiting.".to_owned())?;
        let provider = state.names.read().await.provider(offer.view.provider);
        if form.answer == "later" {
            if let Ok(mut aside) = state.set_aside.lock() {
                aside.insert(id);
            }
            return Ok(format!(
                "Not now: {provider}'s offer waits under Offers set aside; nothing was sent."
            ));
        }
        state.may(medrec_contracts::Rights::DECIDE, "accept an offer")?;
        if session.secret().is_none() {
            return Err(format!(
                "Only the patient's own wallet can accept {provider}'s offer: the provider's name is encrypted with the patient's secret, which a custodian's key does not hold. Ask the patient to accept it."
            ));
        }
        let (id, receipt) = session.take(offer).await.map_err(|e| sentence(&e))?;
        *state.offers.lock().await = None;
        let block = receipt.block_number.map(|b| format!(" (block {b})")).unwrap_or_default();
        Ok(format!(
            "You accepted {provider}'s offer: relationship {} is created and accepted{block}, the provider's name encrypted for you alone. Its records are being fetched and checked against the chain.",
            short_id(id.0)
        ))
    }
    .await;
    match outcome {
        Ok(text) => {
            if form.answer == "take" {
                state.spawn_refresh();
            }
            state.tell(false, text);
        }
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/inbox").into_response())
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
    if let Err(why) = state.may(medrec_contracts::Rights::DECIDE, "answer for the patient") {
        state.tell(true, why);
        return Ok(Redirect::to(to).into_response());
    }
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
