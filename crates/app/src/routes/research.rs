//! Research: per relationship, opt in or out of research bounties, in plain words, and
//! what has been released (ε).

use super::{Chrome, context};
use crate::{
    error::{PageResult, render, sentence},
    state::AppState,
    views::{access, inbox, short_id},
};
use askama::Template;
use axum::{
    Form,
    extract::State,
    response::{IntoResponse, Redirect},
};
use medrec_client::patient::Target;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "research.html")]
struct ResearchPage {
    chrome: Chrome,
    relationships: Vec<inbox::Relationship>,
    releases: Vec<(String, String, String)>,
}

/// `GET /research`.
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    let cx = context(&state, "research", "Research").await?;
    let relationships = inbox::relationships(&cx.summaries, &cx.names)
        .into_iter()
        .filter(|r| r.status.is_some_and(|s| !s.is_closed()))
        .collect();
    let releases = match state.access_log(&cx.session, false).await {
        Ok(entries) => access::releases(&entries, &cx.names),
        Err(_) => Vec::new(),
    };
    render(&ResearchPage { chrome: cx.chrome, relationships, releases })
}

/// The research form.
#[derive(Deserialize)]
pub(crate) struct ResearchForm {
    relationship: String,
    choice: String,
}

/// `POST /research`: opt a relationship in (`choice=in`) or out.
pub(crate) async fn set(
    State(state): State<AppState>,
    Form(form): Form<ResearchForm>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    if let Err(why) = state.may(medrec_contracts::Rights::DECIDE, "change research consent") {
        state.tell(true, why);
        return Ok(Redirect::to("/research").into_response());
    }
    let on = form.choice == "in";
    match session.set_research(&Target::Id(form.relationship), on).await {
        Ok((id, sent)) => {
            let id = short_id(id.0);
            let text = match (on, sent) {
                (_, None) => format!(
                    "Relationship {id} already was opted {}; nothing changed.",
                    if on { "in" } else { "out" }
                ),
                (true, Some(_)) => format!(
                    "Relationship {id} now feeds research bounties: only aggregates over many patients, with noise added, ever leave the provider."
                ),
                (false, Some(_)) => format!(
                    "Relationship {id} no longer feeds research bounties, from the next block on."
                ),
            };
            state.tell(false, text);
        }
        Err(e) => state.tell(true, sentence(&e)),
    }
    Ok(Redirect::to("/research").into_response())
}
