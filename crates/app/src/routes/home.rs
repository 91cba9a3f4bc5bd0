//! Home: the providers connected (relationships with their status) and what is new.

use super::{Chrome, context};
use crate::{
    error::{PageResult, render},
    state::AppState,
    views::{date, inbox, records},
};
use askama::Template;
use axum::extract::State;
use medrec_client::timeline::unix_now;

/// How many items "what is new" shows.
const NEWS: usize = 5;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    relationships: Vec<(inbox::Relationship, String)>,
    news: Vec<inbox::Item>,
    records: usize,
    checked: String,
    refreshing: bool,
}

/// `GET /`.
pub(crate) async fn page(State(state): State<AppState>) -> PageResult {
    let cx = context(&state, "home", "Home").await?;
    let me = cx.session.address();
    let notices = cx.session.chain().notices(me, 0, None).await.unwrap_or_default();
    let held = state.held.read().await.clone();
    let newest = records::newest(&held.records);
    let relationships = inbox::relationships(&cx.summaries, &cx.names)
        .into_iter()
        .map(|r| {
            let last = newest.get(&r.id).map_or_else(
                || if r.accepted() { "no records fetched yet".to_owned() } else { String::new() },
                |d| format!("newest record {d}"),
            );
            (r, last)
        })
        .collect();
    let mut news = inbox::items(&notices, &cx.summaries, &cx.names, unix_now(), 3 * 86_400);
    news.truncate(NEWS);
    render(&HomePage {
        chrome: cx.chrome,
        relationships,
        news,
        records: held.records.count(),
        checked: if held.records.saved_at == 0 {
            String::new()
        } else {
            date(held.records.saved_at)
        },
        refreshing: held.refreshing,
    })
}
