//! The viewer's app: "Shared with me" (each grant, valid until when, or refused and
//! why) and Records (the shared records, fetched afresh and verified against the
//! chain at every visit, so nothing shows once the patient revokes or the grant
//! expires).

use super::Chrome;
use crate::{
    error::{PageError, PageResult, render},
    state::AppState,
    views::{
        Names, chart, date,
        records::{self, Category, Filter},
        viewer::{self, GrantRow},
    },
};
use askama::Template;
use axum::{
    extract::{Query, State},
    http::header,
    response::IntoResponse,
};
use medrec_client::{
    timeline::unix_now,
    viewer::{GrantState, Shared, ViewerSession},
};

#[derive(Template)]
#[template(path = "viewer_shared.html")]
struct SharedPage {
    chrome: Chrome,
    grants: Vec<GrantRow>,
    /// The viewer's code, to give patients (their address, checked when typed).
    code: String,
}

#[derive(Template)]
#[template(path = "viewer_records.html")]
struct RecordsPage {
    chrome: Chrome,
    view: records::View,
    trends: Vec<chart::Trend>,
    refusals: Vec<String>,
    categories: Vec<(&'static str, &'static str, bool)>,
    text: String,
    filtered: bool,
    checked: String,
}

/// The unlocked viewer, what was shared with it and how providers are named.
async fn context(state: &AppState) -> Result<(ViewerSession, Vec<Shared>, Names), PageError> {
    let session = state.viewer().await.ok_or(PageError::Locked)?;
    let shared = session.shared().await.map_err(|e| {
        PageError::Failed(format!(
            "What was shared with you cannot be read from the chain right now ({}). Check that the chain is running, then reload.",
            crate::error::sentence(&e).trim_end_matches('.')
        ))
    })?;
    let mut names = state.names.read().await.clone();
    for p in shared.iter().filter_map(|s| s.provider) {
        if !names.endpoints.contains_key(&p)
            && let Ok(url) = session.chain().endpoint(p).await
        {
            names.endpoints.insert(p, url);
        }
    }
    state.names.write().await.endpoints.extend(names.endpoints.clone());
    Ok((session, shared, names))
}

/// `GET /`: every grant that names the viewer, as it stands now.
pub(crate) async fn shared(State(state): State<AppState>) -> PageResult {
    let (session, shared, names) = context(&state).await?;
    let mut chrome = Chrome::new(&state, "shared", "Shared with me", session.address().to_string());
    chrome.emergency = state.in_emergency_group().await;
    let code = medrec_primitives::code::encode(session.address());
    render(&SharedPage { chrome, grants: viewer::grants(&shared, &names), code })
}

/// The search and filter of the records.
#[derive(serde::Deserialize, Default)]
pub(crate) struct RecordsQuery {
    category: Option<String>,
    q: Option<String>,
}

/// What the viewer may read now, fetched and verified.
async fn fetch(
    session: &ViewerSession,
    shared: &[Shared],
) -> Result<
    (medrec_client::patient::records::Records, Vec<medrec_client::patient::records::Problem>),
    PageError,
> {
    if !shared.iter().any(|s| s.state == GrantState::Valid) {
        return Ok(Default::default());
    }
    let fetched = session.fetch(None).await.map_err(|e| {
        PageError::Failed(format!(
            "The shared records could not be fetched ({}). Reload to try again.",
            crate::error::sentence(&e).trim_end_matches('.')
        ))
    })?;
    let chain_id = session.chain().chain_id();
    Ok((viewer::records(&fetched, chain_id, unix_now()), viewer::mismatches(&fetched, shared)))
}

/// `GET /records`: the shared records, fetched afresh and each checked against the
/// chain; a grant not in force is a sentence instead.
pub(crate) async fn records(
    State(state): State<AppState>,
    Query(query): Query<RecordsQuery>,
) -> PageResult {
    let (session, shared, names) = context(&state).await?;
    let (held, problems) = fetch(&session, &shared).await?;
    let filter = Filter {
        category: query.category.as_deref().and_then(Category::parse),
        text: query.q.unwrap_or_default(),
    };
    let view = records::build(&held, &problems, &names, &filter);
    let trends = chart::for_records(&held, &filter);
    let refusals = shared
        .iter()
        .filter(|s| s.state != GrantState::Valid)
        .map(|s| format!("{}: {}", viewer::provider_words(s, &names), viewer::state_sentence(s)))
        .collect();
    let categories = Category::ALL
        .into_iter()
        .map(|c| (c.slug(), c.label(), filter.category == Some(c)))
        .collect();
    let mut chrome = Chrome::new(&state, "records", "Records", session.address().to_string());
    chrome.emergency = state.in_emergency_group().await;
    render(&RecordsPage {
        chrome,
        view,
        trends,
        refusals,
        categories,
        filtered: filter != Filter::default(),
        text: filter.text,
        checked: date(held.saved_at),
    })
}

/// `GET /records/export`: what the viewer may read now, as one FHIR R4 Bundle.
pub(crate) async fn export(State(state): State<AppState>) -> PageResult {
    let (session, shared, _) = context(&state).await?;
    let (held, _) = fetch(&session, &shared).await?;
    let day = date(unix_now());
    let name = format!("medrec-shared-{}.json", day.get(..10).unwrap_or("export"));
    Ok((
        [
            (header::CONTENT_TYPE, "application/fhir+json".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        held.bundle().to_string(),
    )
        .into_response())
}
