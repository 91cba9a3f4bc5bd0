//! Records: one timeline across providers by category, search and filter, refresh, and
//! Export as one FHIR Bundle.

use super::{Chrome, context};
use crate::{
    error::{PageResult, render},
    state::AppState,
    views::{
        chart, date,
        records::{self, Category, Filter},
    },
};
use askama::Template;
use axum::{
    extract::{Query, State},
    http::header,
    response::{IntoResponse, Redirect},
};
use medrec_client::timeline::unix_now;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage {
    chrome: Chrome,
    view: records::View,
    trends: Vec<chart::Trend>,
    categories: Vec<(&'static str, &'static str, bool)>,
    text: String,
    filtered: bool,
    checked: String,
    refreshing: bool,
    failure: Option<String>,
}

/// The search and filter.
#[derive(Deserialize, Default)]
pub(crate) struct RecordsQuery {
    category: Option<String>,
    q: Option<String>,
}

/// `GET /records`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Query(query): Query<RecordsQuery>,
) -> PageResult {
    let cx = context(&state, "records", "Records").await?;
    let held = state.held.read().await.clone();
    let filter = Filter {
        category: query.category.as_deref().and_then(Category::parse),
        text: query.q.unwrap_or_default(),
    };
    let view = records::build(&held.records, &held.problems, &cx.names, &filter);
    let trends = chart::for_records(&held.records, &filter);
    let categories = Category::ALL
        .into_iter()
        .map(|c| (c.slug(), c.label(), filter.category == Some(c)))
        .collect();
    render(&RecordsPage {
        chrome: cx.chrome,
        view,
        trends,
        categories,
        filtered: filter != Filter::default(),
        text: filter.text,
        checked: if held.records.saved_at == 0 {
            String::new()
        } else {
            date(held.records.saved_at)
        },
        refreshing: held.refreshing,
        failure: held.failure,
    })
}

/// `POST /records/refresh`: fetches every record again and checks it (waits for it).
pub(crate) async fn refresh(State(state): State<AppState>) -> PageResult {
    if state.session().await.is_none() {
        return Ok(Redirect::to("/unlock").into_response());
    }
    state.refresh().await;
    let held = state.held.read().await;
    match &held.failure {
        Some(failure) => state.tell(true, failure.clone()),
        None => {
            let mismatches = held
                .problems
                .iter()
                .filter(|p| p.kind == medrec_client::patient::records::ProblemKind::HashMismatch)
                .count();
            let mut text = format!(
                "{} fetched and checked against the chain.",
                medrec_client::plural(held.records.count(), "record")
            );
            if mismatches > 0 {
                text.push_str(&format!(
                    " {} did not match the chain and {} not accepted: see below.",
                    medrec_client::plural(mismatches, "set of records"),
                    if mismatches == 1 { "was" } else { "were" }
                ));
            }
            state.tell(mismatches > 0, text);
        }
    }
    Ok(Redirect::to("/records").into_response())
}

/// `GET /records/export`: everything held, as one FHIR R4 `collection` Bundle, to save.
pub(crate) async fn export(State(state): State<AppState>) -> PageResult {
    if state.session().await.is_none() {
        return Ok(Redirect::to("/unlock").into_response());
    }
    let bundle = state.held.read().await.records.bundle();
    let day = date(unix_now());
    let name = format!("medrec-records-{}.json", day.get(..10).unwrap_or("export"));
    Ok((
        [
            (header::CONTENT_TYPE, "application/fhir+json".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        bundle.to_string(),
    )
        .into_response())
}
