//! Share: choose a viewer, which records (pointers named in words) and from when until
//! when; the grants in force with their expiry; Revoke in one action.

use super::{Chrome, context};
use crate::{
    error::{PageResult, render, sentence},
    state::AppState,
    views::{
        date,
        inbox::key,
        records::pointer_names,
        share::{self, GrantRow, Shareable},
    },
};
use askama::Template;
use axum::{
    Form,
    extract::State,
    response::{IntoResponse, Redirect},
};
use medrec_client::{patient::Target, timeline::unix_now};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "share.html")]
struct SharePage {
    chrome: Chrome,
    shareable: Vec<(Shareable, String)>,
    grants: Vec<GrantRow>,
}

/// `GET /share`.
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    let cx = context(&state, "share", "Share").await?;
    let pointers = pointer_names(&state.held.read().await.records);
    let shareable = share::shareable(&cx.summaries, &cx.names, &pointers)
        .into_iter()
        .map(|s| {
            let k = key(s.id);
            (s, k)
        })
        .collect();
    let grants = share::grants(&cx.summaries, &cx.names, &pointers, unix_now());
    render(&SharePage { chrome: cx.chrome, shareable, grants })
}

/// `POST /share`: the form's fields as pairs (`pointer` repeats, one per box ticked).
pub(crate) async fn share(
    State(state): State<AppState>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    let field = |name: &str| {
        fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
    };
    let pointers: Vec<u8> =
        fields.iter().filter(|(k, _)| k == "pointer").filter_map(|(_, v)| v.parse().ok()).collect();
    let outcome = async {
        let viewer = share::viewer(field("viewer"))?;
        if pointers.is_empty() {
            return Err("Tick at least one set of records to share.".to_owned());
        }
        let duration: u64 = field("duration").parse().unwrap_or(7 * 86_400);
        let window = share::window(field("from"), field("until"), duration)?;
        let target = Target::Id(field("relationship").to_owned());
        session.share(&target, viewer, Some(&pointers), window).await.map_err(|e| sentence(&e))
    }
    .await;
    match outcome {
        Ok(g) => state.tell(
            false,
            format!(
                "{} may now see {} of {} from {} until {}.",
                g.viewer,
                medrec_client::plural(g.pointers.len(), "set of records")
                    .replace("set of recordss", "sets of records"),
                share::relationship_words(g.relationship.0),
                if g.not_before == 0 { "now".to_owned() } else { date(g.not_before) },
                date(g.expires_at)
            ),
        ),
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/share").into_response())
}

/// The revoke form.
#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    relationship: String,
    viewer: String,
}

/// `POST /share/revoke`: withdraws everything the viewer may see of the relationship.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Form(form): Form<RevokeForm>,
) -> PageResult {
    let Some(session) = state.session().await else {
        return Ok(Redirect::to("/unlock").into_response());
    };
    let outcome = async {
        let viewer = share::viewer(&form.viewer)?;
        let (id, receipt) = session
            .revoke(&Target::Id(form.relationship), viewer)
            .await
            .map_err(|e| sentence(&e))?;
        Ok::<_, String>(format!(
            "{viewer} can no longer see anything of {}, from block {} on.",
            share::relationship_words(id.0),
            receipt.block_number.unwrap_or_default()
        ))
    }
    .await;
    match outcome {
        Ok(text) => state.tell(false, text),
        Err(e) => state.tell(true, e),
    }
    Ok(Redirect::to("/share").into_response())
}
